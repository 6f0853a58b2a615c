"""Metric files and their relay into MLflow (with a recording stand-in for MlflowClient), and the
submission helpers that need no cluster: entrypoint quoting and the GPU check."""

from __future__ import annotations

import math
import shlex
import types
from pathlib import Path
from typing import Any

import pytest

from workbench.config import Settings
from workbench.errors import InvalidInput
from workbench.training import TrainingSpec, jobs
from workbench.training.metric_files import (
    STATUS_FILE,
    STREAM_FILE,
    read_epoch_metrics,
    write_epoch_metrics,
    write_json,
)
from workbench.training.relay import MetricRelay
from workbench.training.synthetic import SYNTHETIC_FEATURES, synthetic_training_frame


class RecordingClient:
    """The few MlflowClient methods the relay uses, recording what they were asked."""

    def __init__(self, already_logged: dict[str, list[int]] | None = None) -> None:
        self.metrics: dict[str, list[tuple[str, float, int]]] = {}
        self.params: dict[str, dict[str, str]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.status: dict[str, str] = {}
        self.runs = 0
        for run_id, steps in (already_logged or {}).items():
            self.metrics[run_id] = [("loss", 1.0, s) for s in steps]

    def get_metric_history(self, run_id: str, key: str) -> list[Any]:
        return [types.SimpleNamespace(step=s) for k, _, s in self.metrics.get(run_id, []) if k == key]

    def log_batch(self, run_id: str, metrics: Any = (), params: Any = (), tags: Any = ()) -> None:
        self.metrics.setdefault(run_id, []).extend((m.key, m.value, m.step) for m in metrics)
        self.params.setdefault(run_id, {}).update({p.key: p.value for p in params})
        self.tags.setdefault(run_id, {}).update({t.key: t.value for t in tags})

    def create_run(self, experiment_id: str, run_name: str = "", tags: dict[str, str] | None = None) -> Any:
        self.runs += 1
        run_id = f"child-{self.runs}"
        self.tags[run_id] = dict(tags or {}, name=run_name)
        return types.SimpleNamespace(info=types.SimpleNamespace(run_id=run_id))

    def set_terminated(self, run_id: str, status: str = "FINISHED") -> None:
        self.status[run_id] = status

    def steps(self, run_id: str, key: str = "loss") -> list[int]:
        return [s for k, _, s in self.metrics.get(run_id, []) if k == key]


def test_metric_files_round_trip_and_drop_nan(tmp_path: Path) -> None:
    write_epoch_metrics(tmp_path, 1, {"loss": 0.5, "roc_auc": math.nan})
    write_epoch_metrics(tmp_path, 0, {"loss": 0.7, "roc_auc": 0.8})
    assert read_epoch_metrics(tmp_path) == [(0, {"loss": 0.7, "roc_auc": 0.8}), (1, {"loss": 0.5})]
    assert read_epoch_metrics(tmp_path / "missing") == []
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, nothing left behind


def test_relay_logs_each_epoch_once_in_order_and_skips_what_is_logged(tmp_path: Path) -> None:
    client = RecordingClient(already_logged={"run": [0]})  # a stopped job logged epoch 0
    for epoch in (0, 2, 1):
        write_epoch_metrics(tmp_path, epoch, {"loss": 1.0 - epoch / 10, "roc_auc": 0.7})
    relay = MetricRelay(client, "run", tmp_path)  # type: ignore[arg-type]
    assert relay.flush() == 2
    assert relay.flush() == 0
    assert client.steps("run") == [0, 1, 2]
    assert client.steps("run", "roc_auc") == [1, 2]
    write_epoch_metrics(tmp_path, 3, {"loss": 0.6})
    relay.start()
    relay.stop()  # the final flush after the background thread stops
    assert client.steps("run") == [0, 1, 2, 3]


def test_relay_turns_trial_folders_into_child_runs(tmp_path: Path) -> None:
    client = RecordingClient()
    relay = MetricRelay(client, "parent", tmp_path, trials=True, experiment_id="7",  # type: ignore[arg-type]
                        lineage={"dataset_version": "v1", "feature_service": "fs"})
    (tmp_path / "t-without-stream-yet").mkdir()
    for trial, status in (("t1", "FINISHED"), ("t2", None)):
        write_json(tmp_path / trial / STREAM_FILE, {"trial_id": trial, "run_name": f"sweep-{trial}",
                                                   "params": {"lr": 0.01, "hidden_sizes": [8]}})
        write_epoch_metrics(tmp_path / trial, 0, {"roc_auc": 0.8})
        if status:
            write_json(tmp_path / trial / STATUS_FILE, {"status": status})
    assert relay.flush() == 2
    first, second = relay.child_run_id("t1"), relay.child_run_id("t2")
    assert first and second and relay.child_run_id("t-without-stream-yet") is None
    assert client.tags[first]["mlflow.parentRunId"] == "parent"
    assert client.tags[first]["workbench.dataset_version"] == "v1"
    assert client.params[first] == {"lr": "0.01", "hidden_sizes": "[8]"}
    assert client.steps(first, "roc_auc") == [0]
    assert client.status == {first: "FINISHED"}
    relay.close_open_children("FAILED")  # t2 never said how it ended
    assert client.status == {first: "FINISHED", second: "FAILED"}


# submission helpers ---------------------------------------------------------------------------------
@pytest.fixture()
def gpu_spec(tmp_path: Path) -> TrainingSpec:
    path = tmp_path / "frame.parquet"
    synthetic_training_frame(100).to_parquet(path)
    return TrainingSpec(frame_path=str(path), feature_columns=SYNTHETIC_FEATURES, use_gpu=True, num_workers=2)


def test_entrypoint_is_quoted_argument_by_argument(settings: Settings, tmp_path: Path) -> None:
    nasty = str(tmp_path / "a dir; rm -rf ~" / "spec.json")
    command = jobs._entrypoint(settings, nasty, "run$(id)", "job`x`")
    args = shlex.split(command)
    assert args[1:] == ["-m", "workbench.training.entrypoint", "--spec", nasty, "--run-id", "run$(id)",
                        "--tracking-uri", settings.mlflow_uri, "--job-id", "job`x`"]
    assert jobs._entrypoint(settings.replace(profile="cluster"), nasty, "r", "j").startswith("python ")


def test_gpu_check(monkeypatch: pytest.MonkeyPatch, settings: Settings, gpu_spec: TrainingSpec) -> None:
    monkeypatch.setattr(jobs, "cluster_gpus", lambda s: 0.0)
    with pytest.raises(InvalidInput, match="this cluster has no GPU"):
        jobs._resolve_gpu(settings, gpu_spec)
    ran, fell_back = jobs._resolve_gpu(settings, gpu_spec.replace(allow_cpu_fallback=True))
    assert fell_back and not ran.use_gpu and ran.gpus == 0
    monkeypatch.setattr(jobs, "cluster_gpus", lambda s: 1.0)
    with pytest.raises(InvalidInput, match="asks for 2 GPUs but the cluster has 1"):
        jobs._resolve_gpu(settings, gpu_spec)
    monkeypatch.setattr(jobs, "cluster_gpus", lambda s: 4.0)
    assert jobs._resolve_gpu(settings, gpu_spec) == (gpu_spec, False)
    cpu_only = gpu_spec.replace(use_gpu=False)
    monkeypatch.setattr(jobs, "cluster_gpus", lambda s: pytest.fail("a CPU spec must not ask the cluster"))
    assert jobs._resolve_gpu(settings, cpu_only) == (cpu_only, False)
