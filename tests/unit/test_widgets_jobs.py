"""Job launcher parts without services: capacity arithmetic, the form turned into a spec, readable
errors, the static snapshot. The real cluster is in tests/integration/test_widgets_jobs.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.errors import InvalidInput, ServiceUnavailable
from workbench.training.capacity import (
    GIB,
    ClusterCapacity,
    JobDemand,
    capacity_from_status,
    check_capacity,
    curve_metrics,
    job_demand,
)
from workbench.training.synthetic import SYNTHETIC_FEATURES, synthetic_training_frame
from workbench.widgets._jobs_model import JobForm, JobLauncherModel

CPU_ONLY = ClusterCapacity(cpus_total=2.0, cpus_free=0.5, gpus_total=0.0, gpus_free=0.0, memory_total=20 * GIB,
                           memory_free=4 * GIB)


@pytest.fixture()
def frame(tmp_path: Path) -> Path:
    path = tmp_path / "frame.parquet"
    synthetic_training_frame(200, seed=1).to_parquet(path)
    return path


@pytest.fixture()
def offline(tmp_path: Path) -> Settings:
    """Settings whose Ray and MLflow ports nothing listens on."""
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    return Settings(project_dir=tmp_path, ray_dashboard_port=ports[0], mlflow_port=ports[1], request_timeout_s=1.0)


def test_capacity_from_the_dashboards_status_report() -> None:
    body = {"data": {"clusterStatus": {"time": 5.0, "loadMetricsReport": {"usage": {
        "CPU": [1.5, 4.0], "GPU": [1.0, 2.0], "memory": [GIB, 8 * GIB],
        "CPUGroup0abc": [0.5, 0.5], "objectStoreMemory": [1.0, 2.0]}}}}}
    c = capacity_from_status(body)
    assert (c.cpus_total, c.cpus_free, c.gpus_total, c.gpus_free) == (4.0, 2.5, 2.0, 1.0)
    assert (c.memory_total, c.memory_free, c.time) == (8 * GIB, 7 * GIB, 5.0)
    no_gpu = capacity_from_status({"data": {"clusterStatus": {"loadMetricsReport": {"usage": {"CPU": [0, 2]}}}}})
    assert no_gpu.gpus_total == 0 and no_gpu.cpus_free == 2
    with pytest.raises(ServiceUnavailable, match="no resource usage"):
        capacity_from_status({"data": {}})


def test_demand_adds_workers_driver_and_sweep_trials(frame: Path) -> None:
    from workbench.training import SweepSpec, TrainingSpec

    base = TrainingSpec(frame_path=str(frame), feature_columns=list(SYNTHETIC_FEATURES), num_workers=3,
                        cpus_per_worker=0.5, driver_cpus=0.25, use_gpu=True, gpus=1, memory_mb=512)
    d = job_demand(base)
    assert (d.cpus, d.gpus, d.memory) == (1.75, 4.0, 512 * 1024 * 1024)
    assert d.what.startswith("3 workers × 0.5 CPU + 1 GPU each")
    sweep = base.replace(sweep=SweepSpec({"lr": {"choice": [0.01, 0.1]}}), use_gpu=False, gpus=0)
    assert (job_demand(sweep).cpus, job_demand(sweep).gpus) == (0.75, 0.0)  # one trial at least
    (frame.parent / "train.py").write_text("print(1)\n")
    custom = TrainingSpec(frame_path="", feature_columns=[], trainer="custom", entrypoint="train.py",
                          working_dir=str(frame.parent), cpus_per_worker=2.0, use_gpu=True, num_workers=4)
    assert (job_demand(custom).cpus, job_demand(custom).gpus) == (2.0, 1.0)  # its driver only


def test_verdict_refuses_what_never_fits_and_warns_what_waits() -> None:
    gpu = check_capacity(JobDemand(cpus=0.5, gpus=2.0, memory=0.0), CPU_ONLY)
    assert not gpu.ok
    assert gpu.refusals[0].startswith("asks 2 GPUs, the cluster has 0: untick GPU")
    big = check_capacity(JobDemand(cpus=3.0, gpus=0.0, memory=30 * GIB, what="6 workers × 0.5 CPU"), CPU_ONLY)
    assert [r.split(",")[0] for r in big.refusals] == ["asks 3 CPUs (6 workers × 0.5 CPU)", "asks 30.0 GiB memory"]
    queued = check_capacity(JobDemand(cpus=1.0, gpus=0.0, memory=8 * GIB), CPU_ONLY)
    assert queued.ok and len(queued.waits) == 2 and "will wait" in queued.message()
    fits = check_capacity(JobDemand(cpus=0.5, gpus=0.0, memory=0.0), CPU_ONLY)
    assert fits.ok and fits.waits == () and fits.message().startswith("fits")
    some_gpus = ClusterCapacity(8, 8, 2, 0, GIB, GIB)
    assert check_capacity(JobDemand(1, 1, 0), some_gpus).waits[0].startswith("0 of 2 GPUs are free now")


def test_form_becomes_the_spec(frame: Path, tmp_path: Path) -> None:
    model = JobLauncherModel(Settings(project_dir=tmp_path), "wj-exp", tags={"who": "wj"})
    spec = model.spec(JobForm(data=str(frame), label="is_fraud", workers=2, cpus_per_worker=0.5, epochs=3,
                              memory_mb=256, run_name="r"))
    assert spec.feature_columns == SYNTHETIC_FEATURES and spec.label_column == "is_fraud"
    assert (spec.num_workers, spec.cpus_per_worker, spec.epochs, spec.memory_mb) == (2, 0.5, 3, 256)
    assert spec.experiment == "wj-exp" and spec.tags == {"who": "wj"} and spec.sweep is None
    relative = model.spec(JobForm(data="frame.parquet", label="is_fraud", features="amount_z, velocity"))
    assert relative.frame_path == str(frame) and relative.feature_columns == ("amount_z", "velocity")
    trees = model.spec(JobForm(trainer="xgboost", data=str(frame), label="is_fraud", epochs=7))
    assert trees.n_estimators == 7
    swept = model.spec(JobForm(data=str(frame), label="is_fraud", sweep=True, num_samples=3,
                               search_space='{"lr": {"choice": [0.01, 0.1]}}'))
    assert swept.sweep is not None and swept.sweep.num_samples == 3 and swept.sweep.metric == "roc_auc"


@pytest.mark.parametrize(("changes", "message"), [
    ({"label": ""}, "label: name the column"),
    ({"data": ""}, "data: give the path"),
    ({"label": "nope"}, "lacks columns ['nope']"),
    ({"workers": 0}, "num_workers must be an integer >= 1"),
    ({"task": "regression"}, None),  # is_fraud is numeric: a regression is allowed
    ({"sweep": True, "search_space": "{lr: 1}"}, "search space is not JSON"),
    ({"sweep": True, "search_space": '{"momentum": {"choice": [1]}}'}, "'momentum' cannot be swept"),
    ({"trainer": "nope"}, "trainer must be one of"),
])
def test_form_errors_name_what_to_fix(frame: Path, tmp_path: Path, changes: dict[str, object],
                                      message: str | None) -> None:
    model = JobLauncherModel(Settings(project_dir=tmp_path))
    form = JobForm(data=str(frame), label="is_fraud").replace(**changes)
    if message is None:
        assert model.spec(form).task == "regression"
        return
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        model.spec(form)


def test_registered_dataset_version_fills_path_label_and_task(tmp_path: Path) -> None:
    from workbench.data import DatasetCatalog, Task

    settings = Settings(project_dir=tmp_path)
    folder = tmp_path / "ds"
    folder.mkdir()
    synthetic_training_frame(100, seed=2).to_parquet(folder / "part-0.parquet")
    version = DatasetCatalog(settings).register("wj-ds", folder, task=Task(label="is_fraud", kind="binary"))
    model = JobLauncherModel(settings)
    assert model.datasets() == ["wj-ds"] and model.versions("wj-ds") == [version.version]
    spec = model.spec(JobForm(dataset="wj-ds"))
    assert spec.dataset_version == version.version and spec.label_column == "is_fraud"
    assert spec.frame_path == version.path and set(spec.feature_columns) == set(SYNTHETIC_FEATURES)


def test_curve_metrics_are_the_tasks() -> None:
    assert curve_metrics("regression") == ("loss", "rmse", "mae", "r2", "val_loss")


def test_widget_without_services_shows_messages_not_tracebacks(frame: Path, offline: Settings) -> None:
    pytest.importorskip("ipywidgets")
    from workbench.widgets.jobs import JobLauncher

    launcher = JobLauncher("wj-offline", settings=offline, live=False, data=str(frame), label="is_fraud")
    assert "is not answering" in launcher.error or "did not report" in launcher.error
    assert "Traceback" not in launcher.message.value
    assert launcher.submit() is None and "did not report its resources" in launcher.error
    launcher.stop_button.click()
    assert launcher.error == "select a job to stop"
    launcher.source.value = "dataset"  # hides the path field only, never the fields beside it
    assert launcher.data.layout.display == "none" and launcher.dataset.layout.display == ""
    assert all(f.layout.display != "none" for f in (launcher.label, launcher.epochs, launcher.workers, launcher.task))
    assert launcher.sweep_box.layout.display == "none"
    launcher.sweep.value = True
    assert launcher.sweep_box.layout.display == "" and launcher.epochs.layout.display != "none"
    bundle, _ = launcher._repr_mimebundle_()
    assert "Training jobs" in bundle["text/html"] and "no jobs in this experiment yet" in bundle["text/html"]
    assert bundle["text/plain"] == "JobLauncher(experiment='wj-offline', jobs=0)"
    launcher.close()


def test_snapshot_lists_jobs_with_links_and_the_curve(frame: Path, offline: Settings) -> None:
    pytest.importorskip("ipywidgets")
    from workbench.training.capacity import JobSummary
    from workbench.widgets.jobs import JobLauncher

    launcher = JobLauncher("wj-snap", settings=offline, live=False)
    job = JobSummary("workbench-train-abc", "SUCCEEDED", "r" * 32, "7", "mlp", "training", 2, 1.0, 2.0)
    launcher.job_list = [job]
    launcher.selected = job
    launcher.curve_points = {"loss": [(0, 0.7), (1, 0.5)], "roc_auc": [(0, 0.6), (1, 0.8)]}
    launcher._draw_curve()
    assert [t.name for t in launcher.curve.data] == ["loss", "roc_auc"]
    assert list(launcher.curve.data[0].y) == [0.7, 0.5] and launcher.curve.data[1].yaxis == "y2"
    launcher.curve_points = {"loss": [(0, 0.7), (1, 0.5), (2, 0.4)], "roc_auc": [(0, 0.6), (1, 0.8), (2, 0.9)]}
    launcher._draw_curve()  # a new epoch: the same traces, restyled in place
    assert [t.name for t in launcher.curve.data] == ["loss", "roc_auc"]
    assert list(launcher.curve.data[0].x) == [0, 1, 2] and list(launcher.curve.data[1].y) == [0.6, 0.8, 0.9]
    html_out = launcher.snapshot_html()
    assert "workbench-train-abc" in html_out and f"{offline.mlflow_uri}/#/experiments/7/runs/{'r' * 32}" in html_out
    assert f"{offline.ray_address}/#/jobs/workbench-train-abc" in html_out
    assert "plotly" in html_out.lower() and "roc_auc" in html_out
    launcher.close()
