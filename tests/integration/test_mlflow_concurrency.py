"""Eight processes logging runs to the MLflow server at once: every run, param and metric arrives."""

from __future__ import annotations

import multiprocessing
import uuid

import pytest
from mlflow.tracking import MlflowClient

from workbench.config import Settings

pytestmark = pytest.mark.integration

PROCESSES = 8
RUNS_PER_PROCESS = 3
STEPS = 25


def _log_runs(tracking_uri: str, experiment_id: str, worker: int, batch: str) -> None:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    for r in range(RUNS_PER_PROCESS):
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"{batch}-{worker}-{r}",
                              tags={"batch": batch, "worker": str(worker)}):
            mlflow.log_params({"worker": worker, "run": r, "lr": 0.001 * (r + 1)})
            for step in range(STEPS):  # one request per metric point: the worst case for the server
                mlflow.log_metric("loss", 1.0 / (step + 1) + worker, step=step)
            mlflow.log_metrics({"final": worker * 100 + r, "steps": STEPS})


def test_eight_processes_logging_at_once_lose_nothing(services: Settings) -> None:
    client = MlflowClient(services.mlflow_uri)
    experiment_id = client.create_experiment(f"concurrency-{uuid.uuid4().hex[:8]}")
    batch = uuid.uuid4().hex[:8]
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_log_runs, args=(services.mlflow_uri, experiment_id, w, batch))
             for w in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(600)
        assert proc.exitcode == 0, f"logger {proc.pid} exited with {proc.exitcode}"

    runs = client.search_runs([experiment_id], max_results=1000)
    assert len(runs) == PROCESSES * RUNS_PER_PROCESS
    assert {run.info.run_name for run in runs} == {f"{batch}-{w}-{r}" for w in range(PROCESSES)
                                                    for r in range(RUNS_PER_PROCESS)}
    for run in runs:
        worker, r = int(run.data.params["worker"]), int(run.data.params["run"])
        assert run.info.status == "FINISHED"
        assert run.data.metrics["final"] == worker * 100 + r
        history = client.get_metric_history(run.info.run_id, "loss")
        assert sorted(m.step for m in history) == list(range(STEPS))
        assert all(m.value == pytest.approx(1.0 / (m.step + 1) + worker) for m in history)
