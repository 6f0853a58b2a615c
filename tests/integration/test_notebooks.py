"""The stage notebooks, as a user runs them: under nbval, and as a `workbench run` batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import nbformat
import pytest

from workbench.config import Settings
from workbench.lineage import latest_record, trace
from workbench.pipeline import run_pipeline
from workbench.serving import delete_deployment, list_deployments, read_predictions

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ["01_data.ipynb", "02_features.ipynb", "03_train.ipynb", "04_registry.ipynb", "05_deploy.ipynb",
             "06_monitor.ipynb"]


def _env_for(settings: Settings, state_dir: Path) -> dict[str, str]:
    """WORKBENCH_* variables that point a notebook kernel at the test services and a fresh state."""
    return {
        "WORKBENCH_MLFLOW_PORT": str(settings.mlflow_port),
        "WORKBENCH_RAY_PORT": str(settings.ray_port),
        "WORKBENCH_RAY_DASHBOARD_PORT": str(settings.ray_dashboard_port),
        "WORKBENCH_RAY_METRICS_PORT": str(settings.ray_metrics_port),
        "WORKBENCH_SERVE_PORT": str(settings.serve_port),
        "WORKBENCH_STATE_DIR": str(state_dir),
        "WORKBENCH_EXPERIMENT": "workbench-notebook-tests",
    }


def _clear_deployments(settings: Settings) -> None:
    for deployment in list_deployments(settings):
        delete_deployment(settings, deployment.name)


def test_notebooks_pass_under_nbval(services: Settings, tmp_path: Path) -> None:
    _clear_deployments(services)
    env = {**os.environ, **services.engine_env(), **_env_for(services, tmp_path / "state")}
    paths = [str(ROOT / "notebooks" / name) for name in NOTEBOOKS]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "--timeout=900", *paths],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    tail = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    assert " failed" not in proc.stdout.splitlines()[-1], tail
    # every stage recorded its outputs, and they chain back to the dataset version
    settings = services.replace(state_dir=tmp_path / "state")
    train = latest_record(settings, "train")
    chain = trace(settings, train)
    assert [r.stage for r in chain] == ["train", "features", "data"]
    assert chain[1].inputs["dataset_version"] == chain[2].outputs["dataset_version"]
    registry, deploy, monitor = (latest_record(settings, s) for s in ("registry", "deploy", "monitor"))
    assert registry.inputs["train_run_id"] == train.outputs["run_id"]
    assert deploy.outputs["model_version"] == registry.outputs["model_version"]
    assert "amount" in monitor.outputs["drifted_features"]  # the simulated drift was caught
    report = json.loads(Path(monitor.outputs["report_path"]).read_text())
    assert report["predictions"] == 800 and report["performance"]["requests"] == 800
    _clear_deployments(services)
    # the sources stay clean: nbval does not write outputs back
    for name in NOTEBOOKS:
        nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), name


def test_workbench_run_executes_the_stages_in_order(services: Settings, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in _env_for(services, tmp_path / "state").items():
        monkeypatch.setenv(key, value)  # inherited by the notebook kernels papermill starts
    settings = services.replace(state_dir=tmp_path / "state", experiment="workbench-notebook-tests")
    _clear_deployments(settings)
    report = run_pipeline(settings, parameters={
        "data": {"n_rows": 4000, "seed": 3}, "train": {"epochs": 2}, "deploy": {"deployment_name": "fraud-batch",
                                                                             "smoke_requests": 50},
        "monitor": {"normal_requests": 200, "drifted_requests": 200}}, progress=lambda _: None)
    assert report.ok, report.summary()
    assert [s.stage for s in report.stages] == ["data", "features", "train", "registry", "deploy", "monitor"]
    run_dir = Path(report.run_dir)
    assert run_dir.parent == settings.runs_dir
    assert {p.name for p in run_dir.glob("*.ipynb")} == set(NOTEBOOKS)
    saved = json.loads((run_dir / "report.json").read_text())
    assert [s["status"] for s in saved["stages"]] == ["succeeded"] * 6
    data, features, train, registry, deploy, monitor = report.stages
    assert features.parameters["dataset_version"] == data.outputs["dataset_version"]
    assert train.parameters["training_frame_path"] == features.outputs["training_frame_path"]
    run = mlflow.MlflowClient(services.mlflow_uri).get_run(train.outputs["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags.get("workbench.dataset_version") == data.outputs["dataset_version"]
    assert 0.5 < run.data.metrics["roc_auc"] <= 1.0
    # the later stages received what the earlier ones recorded, and served what was registered
    assert registry.parameters["run_id"] == train.outputs["run_id"]
    assert deploy.parameters["model_uri"] == registry.outputs["model_uri"]
    assert monitor.parameters["deployment"] == "fraud-batch" == deploy.outputs["deployment"]
    log = read_predictions(settings, "fraud-batch")
    assert set(log.model_version.astype(str)) == {registry.outputs["model_version"]}
    assert len(log) == 50 + 400 + 3  # smoke requests, simulated traffic, the notebook's first request
    _clear_deployments(settings)
