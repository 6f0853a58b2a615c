"""The stage notebooks, as a user runs them: under nbval, and as a `workbench run` batch."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import mlflow
import nbformat
import numpy as np
import pandas as pd
import pytest

from workbench.config import Settings
from workbench.lineage import latest_record, trace
from workbench.pipeline import run_pipeline
from workbench.serving import delete_deployment, list_deployments, read_predictions

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ["01_data.ipynb", "02_features.ipynb", "03_train.ipynb", "04_registry.ipynb", "05_deploy.ipynb",
             "06_monitor.ipynb"]


SANITIZE = Path(__file__).with_name("nbval_sanitize.cfg")  # run-specific parts of a checked cell's output


def _checked(cell: nbformat.NotebookNode) -> bool:
    """A cell whose output nbval compares with the stored one (``# NBVAL_CHECK_OUTPUT`` on a line)."""
    return cell.cell_type == "code" and any(line.strip() == "# NBVAL_CHECK_OUTPUT" for line in cell.source.splitlines())


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
    sources = {name: nbformat.read(ROOT / "notebooks" / name, as_version=4) for name in NOTEBOOKS}
    checked = {name: [c for c in nb.cells if _checked(c)] for name, nb in sources.items()}
    # the cells whose output is the same on every run with the defaults are compared with the stored output
    # (nbval's NBVAL_CHECK_OUTPUT, strict even under --nbval-lax); every other cell has to run without error
    assert len(checked["01_data.ipynb"]) == 2 and len(checked["02_features.ipynb"]) == 2
    assert all(c.outputs for cells in checked.values() for c in cells), "record them: tools/record_checked_outputs.py"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-sanitize-with", str(SANITIZE),
         "-p", "no:cacheprovider", "-q", "--timeout=900", *paths],
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
    assert monitor.outputs["drift_column"] == "amount"
    assert "amount" in monitor.outputs["drifted_features"]  # the simulated drift was caught
    report = json.loads(Path(monitor.outputs["report_path"]).read_text())
    assert report["predictions"] == 800 and report["task"] == "binary"
    # no training/serving skew: streamed, every feature the replicas used equals the training frame's, and
    # the normal segment (training rows) looks like the training frame on every logged input (it was at
    # PSI 11 on ten-minute counts when the replay ran against a store materialized to the end of the data)
    assert monitor.outputs["features_streamed"] is True
    assert monitor.outputs["served_features_equal"] == monitor.outputs["served_features_checked"] == 400 * 18
    assert max(monitor.outputs["normal_psi"].values()) < 0.1, monitor.outputs["normal_psi"]
    # the report's quality equals a direct computation from the prediction log and the labels the notebook sent
    from sklearn.metrics import roc_auc_score

    log = read_predictions(settings, deploy.outputs["deployment"])
    labels = pd.read_parquet(monitor.outputs["labels_path"]).set_index("request_id")["label"]
    served = log[log.request_id.isin(labels.index)]
    assert len(served) == 800
    roc_auc = roc_auc_score(labels.loc[served.request_id].to_numpy(), served["score"].to_numpy(dtype=float))
    assert monitor.outputs["quality"]["roc_auc"] == pytest.approx(roc_auc, abs=1e-9)
    _clear_deployments(services)
    # the sources stay as they were: nbval writes no output back; only the checked cells hold one
    for name in NOTEBOOKS:
        nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        assert nb == sources[name], name
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code" and not _checked(c)), name


def test_workbench_run_carries_the_regression_example_through_all_six_stages(
        services: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second built-in example (deliveries: regression, columns with spaces, dots and non-ASCII letters,
    a categorical with nulls, no feature store) through all six stages by parameters only, with XGBoost."""
    for key, value in _env_for(services, tmp_path / "state").items():
        monkeypatch.setenv(key, value)  # inherited by the notebook kernels papermill starts
    settings = services.replace(state_dir=tmp_path / "state", experiment="workbench-notebook-tests")
    _clear_deployments(settings)
    report = run_pipeline(settings, parameters={
        "data": {"example": "deliveries", "n_rows": 3000, "seed": 3},
        "train": {"trainer": "xgboost", "n_estimators": 60},
        # a model name of its own: a kept MLflow server holds other tests' and sessions' champions
        "registry": {"model_name": f"deliveries-{uuid.uuid4().hex[:8]}"},
        "deploy": {"deployment_name": "deliveries-batch", "smoke_requests": 50},
        "monitor": {"normal_requests": 200, "drifted_requests": 200}}, progress=lambda _: None)
    assert report.ok, report.summary()
    assert [s.stage for s in report.stages] == ["data", "features", "train", "registry", "deploy", "monitor"]
    run_dir = Path(report.run_dir)
    assert run_dir.parent == settings.runs_dir
    assert {p.name for p in run_dir.glob("*.ipynb")} == set(NOTEBOOKS)
    saved = json.loads((run_dir / "report.json").read_text())
    assert [s["status"] for s in saved["stages"]] == ["succeeded"] * 6
    data, features, train, registry, deploy, monitor = report.stages
    assert data.outputs["task"]["kind"] == "regression" and data.outputs["task"]["label"] == "delivery minutes"
    assert features.parameters["dataset_version"] == data.outputs["dataset_version"]
    assert features.outputs["feature_service"] == ""  # no feature store: the dataset's columns
    assert {"distance km", "items.count", "météo"} <= set(features.outputs["feature_columns"])
    assert train.parameters["training_frame_path"] == features.outputs["training_frame_path"]
    run = mlflow.MlflowClient(services.mlflow_uri).get_run(train.outputs["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags.get("workbench.task") == "regression"
    assert run.data.tags.get("workbench.dataset_version") == data.outputs["dataset_version"]
    assert run.data.metrics["r2"] > 0.5  # the label follows the columns
    assert registry.parameters["run_id"] == train.outputs["run_id"]
    assert deploy.parameters["model_uri"] == registry.outputs["model_uri"]
    assert monitor.parameters["deployment"] == "deliveries-batch" == deploy.outputs["deployment"]
    log = read_predictions(settings, "deliveries-batch")
    assert set(log.model_version.astype(str)) == {registry.outputs["model_version"]}  # the registered version
    assert len(log) == 50 + 400 + 3  # smoke requests, replayed traffic, the notebook's first request
    # served predictions equal the registered model's own predict on the same logged inputs, computed here
    # (not through the replica's code)
    model = mlflow.pyfunc.load_model(registry.outputs["model_uri"])
    inputs = features.outputs["feature_columns"]
    mine = log[log.request_id.str.startswith(f"{report.run_id}-")]
    assert len(mine) == 400
    expected = np.asarray(model.predict(mine[inputs].reset_index(drop=True)), dtype=float)
    np.testing.assert_allclose(mine["prediction"].to_numpy(dtype=float), expected, rtol=1e-6)
    # the report's quality equals a direct computation from the log and the labels the notebook sent
    labels = pd.read_parquet(monitor.outputs["labels_path"]).set_index("request_id")["label"]
    truth = labels.loc[mine.request_id].to_numpy(dtype=float)
    rmse = float(np.sqrt(np.mean((mine["prediction"].to_numpy(dtype=float) - truth) ** 2)))
    mae = float(np.mean(np.abs(mine["prediction"].to_numpy(dtype=float) - truth)))
    assert monitor.outputs["quality"]["rmse"] == pytest.approx(rmse, rel=1e-6)
    assert monitor.outputs["quality"]["mae"] == pytest.approx(mae, rel=1e-6)
    assert "distance km" in monitor.outputs["drifted_features"]
    _clear_deployments(settings)
    _assert_the_executed_copies_are_reports(run_dir, log, monitor.outputs)
    _assert_the_stage_figures_show_what_was_recorded(run_dir, settings, label="delivery minutes", n_rows=3000,
                                                      run_id=train.outputs["run_id"], smoke_requests=50)


PLOTLY = "application/vnd.plotly.v1+json"
RAW_REPR = re.compile(r"^[A-Z][A-Za-z]+\([a-z_]+=")  # Dataclass(field=...): a repr nobody can read


def _outputs(path: Path) -> list[dict]:
    nb = nbformat.read(path, as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def _values(data: object) -> np.ndarray:
    """A figure's x or y as numbers: a JSON list, or Plotly's binary form ``{"dtype", "bdata"}``."""
    import base64

    if isinstance(data, dict) and "bdata" in data:
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
    return np.asarray(data)


def _figures(path: Path) -> dict[str, dict]:
    """The Plotly figures a notebook shows, by title."""
    found = {}
    for out in _outputs(path):
        fig = out.get("data", {}).get(PLOTLY)
        if fig:
            found[str((fig["layout"].get("title") or {}).get("text", ""))] = fig
    return found


def _assert_the_stage_figures_show_what_was_recorded(run_dir: Path, settings: Settings, *, label: str, n_rows: int,
                                                     run_id: str, smoke_requests: int) -> None:
    """01's label distribution counts every row; 03's curves are the run's metric history in MLflow; 05's
    latency histogram holds one value per smoke request."""
    from mlflow.tracking import MlflowClient

    (dist,) = [f for t, f in _figures(run_dir / "01_data.ipynb").items() if t == f"{label}: distribution"]
    assert dist["layout"]["xaxis"]["title"]["text"] == label
    assert _values(dist["data"][0]["y"]).sum() == n_rows

    (curves,) = [f for t, f in _figures(run_dir / "03_train.ipynb").items() if t.startswith(f"run {run_id[:8]}:")]
    client = MlflowClient(settings.mlflow_uri)
    assert curves["data"], "03 draws no metric curve"
    for curve in curves["data"]:
        history = {m.step: m.value for m in client.get_metric_history(run_id, curve["name"])}
        drawn = dict(zip(_values(curve["x"]).astype(int).tolist(), _values(curve["y"]).astype(float), strict=True))
        assert drawn == pytest.approx(history), curve["name"]

    (latency,) = [f for f in _figures(run_dir / "05_deploy.ipynb").values() if f["data"][0]["type"] == "histogram"]
    assert len(_values(latency["data"][0]["x"])) == smoke_requests


def _assert_the_executed_copies_are_reports(run_dir: Path, served: object, recorded: dict) -> None:
    """What a user opens afterwards (issue 10 part 11): each executed copy shows its results as figures and
    tables, never an error or a raw repr, and the figures carry the values the stage recorded."""
    import pandas as pd

    assert isinstance(served, pd.DataFrame)
    for name in NOTEBOOKS:
        outputs = _outputs(run_dir / name)
        assert outputs, f"{name} shows nothing"
        assert [o for o in outputs if o.output_type == "error"] == [], name
        plain = [o["data"]["text/plain"] for o in outputs if set(o.get("data", {})) == {"text/plain"}]
        assert [t for t in plain if RAW_REPR.match(t)] == [], f"{name} prints a raw repr"
        for out in outputs:  # every figure and rich result can be seen without a kernel (HTML export)
            if PLOTLY in out.get("data", {}):
                assert "text/html" in out["data"], f"{name}: a figure without its offline HTML"

    figures = _figures(run_dir / "06_monitor.ipynb")
    latency = next(f for t, f in figures.items() if t.startswith("Latency percentiles"))
    assert [t["name"] for t in latency["data"]] == ["p50", "p90", "p99"]
    assert latency["layout"]["xaxis"]["title"]["text"] == "window start (UTC)"
    p50, p99 = (_values(t["y"]).astype(float) for t in (latency["data"][0], latency["data"][2]))
    assert (p50 <= p99 + 1e-9).all() and p99.max() <= served["latency_ms"].max() * 1.0001
    throughput = next(f for t, f in figures.items() if t.startswith("Throughput"))
    assert _values(throughput["data"][0]["y"]).sum() > 0
    drift = next(f for t, f in figures.items() if t.startswith("Drift per feature"))
    bars = dict(zip(_values(drift["data"][0]["x"]), _values(drift["data"][0]["y"]).astype(float), strict=True))
    assert drift["layout"]["xaxis"]["title"]["text"] == "feature"
    assert set(recorded["drifted_features"]) <= set(bars)
    assert max(bars, key=bars.__getitem__) in recorded["drifted_features"]  # the tallest bar is a drifted one
    tables = [o["data"]["text/html"] for o in _outputs(run_dir / "06_monitor.ipynb")
              if "text/html" in o.get("data", {})]
    assert any("rmse" in t.lower() and "<table" in t for t in tables), "06 shows no quality table"


def test_plain_papermill_from_another_folder_records_into_the_project(services: Settings, tmp_path: Path) -> None:
    """A stage notebook run by plain papermill, from a folder outside the project, finds the project through
    WORKBENCH_HOME and writes its state and lineage there, not a fresh .workbench/ in the working folder."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "workbench.toml").write_text(f'experiment = "workbench-notebook-tests"\nmlflow_port = '
                                            f'{services.mlflow_port}\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, **services.engine_env(), "WORKBENCH_HOME": str(project)}
    env.pop("WORKBENCH_STATE_DIR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "01_data.ipynb"), str(elsewhere / "out.ipynb"),
         "-p", "n_rows", "500", "-p", "example", "deliveries", "-k", "python3", "--cwd", str(elsewhere)],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = latest_record(Settings(project_dir=project), "data")
    assert record.outputs["dataset_name"] == "deliveries" and record.outputs["task"]["kind"] == "regression"
    assert Path(record.outputs["dataset_path"]).is_relative_to(project / ".workbench")
    assert not (elsewhere / ".workbench").exists()
