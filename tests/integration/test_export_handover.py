"""The exported Argo steps hand each stage the same parameters `workbench run` does.

Stand-in notebooks carry the real stage notebooks' parameters cells and record the real output keys (with
values chosen to trip type guessing: '0123', '1e5', 'a: b'). run_pipeline runs them; then the Argo
WorkflowTemplate's steps run here, one by one, as Argo would run them: each container's argv with Argo's
substitutions (inputs from the producer step's output files, {{workflow.name}}), the training RayJob's
entrypoint from its manifest. What each notebook saw in its parameters must be equal in both runs.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

from workbench.config import Settings, load_settings
from workbench.export import argo
from workbench.export.pipelines import (
    NOTEBOOKS,
    ExportOptions,
    declared_parameters,
    plan_pipeline,
    recorded_outputs,
)
from workbench.lineage import STAGES, latest_record
from workbench.pipeline import run_pipeline

ROOT = Path(__file__).resolve().parents[2]
VALUES: dict[str, dict[str, Any]] = {
    "data": {"dataset_version": "0123", "dataset_name": "tx: 1", "task": {"kind": "binary", "label": "y"}},
    "features": {"training_frame_path": "/data/frame 1.parquet", "training_frame_version": "2026-12-01"},
    "train": {"run_id": "1e5", "model_uri": "runs:/1e5/model"},
    "registry": {"model_uri": "models:/fraud/3", "model_version": "3"},
    "deploy": {"deployment": "fraud", "endpoint": "http://x/fraud"},
}
RECORD = """
from workbench.config import load_settings
from workbench.lineage import record_stage
_names = {names!r}
record_stage(load_settings(), {stage!r}, {outputs}, pipeline_run_id=pipeline_run_id,
             parameters={{n: globals()[n] for n in _names}})
"""


def _stand_in(stage: str, target: Path) -> None:
    real = nbformat.read(ROOT / "notebooks" / NOTEBOOKS[stage], as_version=4)
    params = next(c for c in real.cells if "parameters" in c.metadata.get("tags", []))
    outputs = {k: VALUES.get(stage, {}).get(k, f"{stage}/{k}") for k in recorded_outputs(ROOT / "notebooks" /
                                                                                          NOTEBOOKS[stage])}
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params.source)
    cell.metadata["tags"] = ["parameters"]
    body = RECORD.format(stage=stage, outputs=repr(outputs),
                         names=list(declared_parameters(ROOT / "notebooks" / NOTEBOOKS[stage])))
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, target)


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    (tmp_path / "workbench.toml").write_text("experiment = 'pp-export'\n")
    (tmp_path / "notebooks").mkdir()
    for stage in STAGES:
        _stand_in(stage, tmp_path / "notebooks" / NOTEBOOKS[stage])
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    return load_settings(tmp_path)


def _run_argo_locally(settings: Settings, options: ExportOptions, run: str, scratch: Path) -> None:
    """Each step of the WorkflowTemplate in order, with Argo's parameter substitution, on this machine."""
    template, _ = argo.build(plan_pipeline(settings.project_dir / "notebooks",
                                           parameters={"data": {"n_rows": 11}}), options)
    doc = template.to_dict()
    templates = {t["name"]: t for t in doc["spec"]["templates"]}
    outputs: dict[str, dict[str, str]] = {}
    for (step,) in templates["lifecycle"]["steps"]:
        name, tmpl = step["name"], templates[step["template"]]
        out_dir = scratch / name

        def sub(text: str, inputs: dict[str, str], out_dir: Path = out_dir) -> str:
            text = text.replace("{{workflow.name}}", run).replace(argo.OUTPUTS_DIR, str(out_dir))
            text = re.sub(r"\{\{steps\.([\w-]+)\.outputs\.parameters\.(\w+)\}\}",
                          lambda m: outputs[m.group(1)][m.group(2)], text)
            return re.sub(r"\{\{inputs\.parameters\.(\w+)\}\}", lambda m: inputs[m.group(1)], text)

        inputs = {p["name"]: sub(p["value"], {}) for p in step.get("arguments", {}).get("parameters", [])}
        if "container" in tmpl:
            argv = [sub(a, inputs) for a in tmpl["container"]["command"] + tmpl["container"]["args"]]
        else:
            manifest = yaml.safe_load(sub(tmpl["resource"]["manifest"], inputs))
            argv = shlex.split(manifest["spec"]["entrypoint"])
        argv = [sys.executable if a == "python" else a for a in argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, f"step {name}: {done.stderr[-3000:]}"
        outputs[name] = {p["name"]: Path(sub(p["valueFrom"]["path"], {})).read_text()
                         for p in tmpl.get("outputs", {}).get("parameters", []) if "path" in p["valueFrom"]}


def test_the_argo_steps_hand_over_what_workbench_run_hands_over(project: Settings, tmp_path: Path) -> None:
    report = run_pipeline(project, parameters={"data": {"n_rows": 11}}, run_id="pp-run", progress=lambda _: None)
    assert report.ok
    options = ExportOptions(project_dir=str(project.project_dir), home_claim="")
    _run_argo_locally(project, options, "pp-argo-wf", tmp_path / "steps")
    for stage in STAGES:
        by_run = latest_record(project, stage, "pp-run").parameters
        by_argo = latest_record(project, stage, "pp-argo-wf").parameters
        assert by_run.pop("pipeline_run_id") == "pp-run" and by_argo.pop("pipeline_run_id") == "pp-argo-wf"
        assert by_argo == by_run, stage
    # the values went through unchanged, types too, and the later recording of model_uri won
    seen = {s: latest_record(project, s, "pp-argo-wf").parameters for s in STAGES}
    assert seen["data"]["n_rows"] == 11
    assert seen["features"]["dataset_version"] == "0123" and seen["features"]["dataset_name"] == "tx: 1"
    assert seen["train"]["training_frame_version"] == "2026-12-01"
    assert seen["registry"]["run_id"] == "1e5"
    assert seen["deploy"]["model_uri"] == "models:/fraud/3"
    assert seen["monitor"]["deployment"] == "fraud"
