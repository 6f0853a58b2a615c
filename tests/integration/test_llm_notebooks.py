"""The LLM path's notebooks under nbval, with the real SmolLM2 served by the real vLLM (CPU build)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from workbench.config import Settings
from workbench.errors import NotFound
from workbench.lineage import latest_record
from workbench.serving import list_llm_deployments, stop_llm

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ["01_model.ipynb", "02_deploy.ipynb", "03_monitor.ipynb"]
VLLM_PORT_ABOVE_SERVE = 600  # 27600 (+ WORKBENCH_TEST_PORT_OFFSET): apart from test_llm_vllm's 27500


def _vllm_port(settings: Settings) -> int:
    return settings.serve_port + VLLM_PORT_ABOVE_SERVE


def _env_for(settings: Settings, state_dir: Path) -> dict[str, str]:
    return {
        "WORKBENCH_MLFLOW_PORT": str(settings.mlflow_port),
        "WORKBENCH_RAY_PORT": str(settings.ray_port),
        "WORKBENCH_RAY_DASHBOARD_PORT": str(settings.ray_dashboard_port),
        "WORKBENCH_RAY_METRICS_PORT": str(settings.ray_metrics_port),
        "WORKBENCH_SERVE_PORT": str(settings.serve_port),
        "WORKBENCH_VLLM_PORT": str(_vllm_port(settings)),
        "WORKBENCH_STATE_DIR": str(state_dir),
        "WORKBENCH_EXPERIMENT": "workbench-notebook-tests",
    }


FEAST_FIRST = """\
# Written by test_llm_notebooks: every kernel imports Feast before the notebook runs, as a kernel that has
# used the feature store has. feast.metrics points PROMETHEUS_MULTIPROC(ESS)_DIR at a temp dir of its own,
# deleted when the kernel exits: a vLLM server that inherited it would fail every /metrics call later.
import os
import feast.metrics  # noqa: F401
assert os.path.isdir(os.environ["PROMETHEUS_MULTIPROCESS_DIR"])
with open(os.environ["WB_TEST_FEAST_MARKER"], "a") as marker:
    marker.write(os.environ["PROMETHEUS_MULTIPROCESS_DIR"] + "\\n")
"""


def test_llm_notebooks_pass_under_nbval_with_smollm2(services: Settings, tmp_path: Path) -> None:
    """The three notebooks in separate kernels, one after another as papermill runs them, each kernel with
    Feast imported first (an IPython startup file): 03 scrapes vLLM's /metrics after 02's kernel is gone."""
    state = tmp_path / "state"
    settings = services.replace(state_dir=state, vllm_port=_vllm_port(services))
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-feast-first.py").write_text(FEAST_FIRST)
    env = {**os.environ, **services.engine_env(), **_env_for(services, state), "IPYTHONDIR": str(tmp_path / "ipython"),
           "WB_TEST_FEAST_MARKER": str(tmp_path / "feast-first.txt")}
    for name in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR"):  # this process may have imported Feast
        env.pop(name, None)
    paths = [str(ROOT / "notebooks" / "llm" / name) for name in NOTEBOOKS]
    try:
        for path in paths:  # one kernel per notebook, one after another, as papermill runs them
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "--timeout=900", path],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
            )
            tail = proc.stdout[-5000:] + proc.stderr[-2000:]
            assert proc.returncode == 0, tail
            marker = tmp_path / "feast-first.txt"
            for folder in marker.read_text().split():  # what Feast's exit handler does when a kernel ends
                shutil.rmtree(folder, ignore_errors=True)
        feast_dirs = marker.read_text().split()
        assert len(feast_dirs) == 3 and len(set(feast_dirs)) == 3  # each kernel imported Feast, its own dir
        registry, deploy, monitor = (latest_record(settings, s, path="llm") for s in ("registry", "deploy", "monitor"))
        for stage in ("registry", "deploy", "monitor"):  # the tabular notebooks would read these: none may exist
            with pytest.raises(NotFound):
                latest_record(settings, stage)
        # SmolLM2 registered as champion, served by vLLM, and it answers a real question correctly
        assert registry.outputs["model_uri"] == deploy.outputs["model_uri"] == monitor.inputs["model_uri"]
        assert registry.outputs["eval_keyword_match"] > 0.5
        assert "paris" in deploy.outputs["answer"].lower(), deploy.outputs["answer"]
        manifest = yaml.safe_load(Path(deploy.outputs["kserve_manifest"]).read_text())
        assert manifest["spec"]["predictor"]["model"]["modelFormat"]["name"] == "huggingface"
        assert "--backend=vllm" in manifest["spec"]["predictor"]["model"]["args"]
        ray_config = yaml.safe_load(Path(deploy.outputs["ray_serve_config"]).read_text())
        assert ray_config["applications"][0]["import_path"] == "ray.serve.llm:build_openai_app"
        report = json.loads(Path(monitor.outputs["report_path"]).read_text())
        assert report["requests"] == 8 and report["metrics"]["llm.requests"] == 8
        assert report["metrics"]["llm.generation_tokens"] > 0 and monitor.outputs["output_tokens_per_s"] > 0
        assert report["cost_estimate"]["cost_per_1m_tokens_usd"] > 0
    finally:
        for deployment in list_llm_deployments(settings):
            stop_llm(settings, deployment.name)
    assert not any(d.running for d in list_llm_deployments(settings))
    for name in NOTEBOOKS:  # nbval does not write outputs back
        nb = nbformat.read(ROOT / "notebooks" / "llm" / name, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), name
