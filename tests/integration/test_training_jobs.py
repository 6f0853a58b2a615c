"""Training as real Ray jobs logging into a real MLflow server (the session's `services`).

The jobs that only need to finish are submitted together by one module fixture, so they share the
cluster's start-up costs; each test then waits for its own. Waiting is always on a real condition
(job status, MLflow metric history), never on a fixed sleep.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from workbench.config import Settings
from workbench.errors import InvalidInput, JobFailed, NotFound, ServiceUnavailable
from workbench.training import (
    TrainingJob,
    TrainingSpec,
    job_logs,
    job_status,
    resume_training_job,
    stop_job,
    stream_job_logs,
    submit_training_job,
    wait_for_job,
)
from workbench.training.synthetic import SYNTHETIC_FEATURES, synthetic_training_frame

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

EPOCHS = 3
JOB_TIMEOUT_S = 420.0


@dataclass
class Jobs:
    settings: Settings
    frame: str
    big_frame: str
    plain: TrainingJob
    fallback: TrainingJob
    sweep: TrainingJob


def spec_for(frame: str, tmp: Path, **changes: Any) -> TrainingSpec:
    base: dict[str, Any] = {"frame_path": frame, "feature_columns": list(SYNTHETIC_FEATURES), "epochs": EPOCHS,
                            "hidden_sizes": [16, 8], "batch_size": 128, "lr": 5e-3, "cpus_per_worker": 0.5,
                            "checkpoint_dir": str(tmp / "checkpoints"), "dataset_version": "synthetic-v1",
                            "feature_service": "fraud_v1", "tags": {"suite": "test_training_jobs"}}
    return TrainingSpec(**{**base, **changes})


@pytest.fixture(scope="module")
def jobs(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> Jobs:
    tmp = tmp_path_factory.mktemp("training")
    frame = tmp / "frame.parquet"
    synthetic_training_frame(4000, seed=3).to_parquet(frame)
    big_frame = tmp / "big_frame.parquet"
    synthetic_training_frame(60_000, seed=4).to_parquet(big_frame)
    plain = submit_training_job(services, spec_for(str(frame), tmp, run_name="plain"))
    fallback = submit_training_job(services, spec_for(str(frame), tmp, run_name="gpu-fallback", use_gpu=True,
                                                      allow_cpu_fallback=True, epochs=1))
    sweep = submit_training_job(services, spec_for(
        str(frame), tmp, run_name="sweep", epochs=2,
        sweep={"search_space": {"lr": {"loguniform": [1e-3, 1e-2]}, "hidden_sizes": {"choice": [[8], [16, 8]]}},
               "num_samples": 2, "max_concurrent_trials": 2}))
    return Jobs(services, str(frame), str(big_frame), plain, fallback, sweep)


def client_for(settings: Settings) -> MlflowClient:
    return MlflowClient(settings.mlflow_uri)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.3)


def steps(settings: Settings, run_id: str, key: str = "loss") -> list[int]:
    return [m.step for m in client_for(settings).get_metric_history(run_id, key)]


# (a) a job that succeeds ----------------------------------------------------------------------------
def test_job_trains_logs_every_epoch_and_a_loadable_model(jobs: Jobs) -> None:
    job = jobs.plain
    assert job.wait(timeout_s=JOB_TIMEOUT_S, progress=True) == "SUCCEEDED"
    assert job_status(jobs.settings, job.job_id) == "SUCCEEDED"
    client = client_for(jobs.settings)
    run = client.get_run(job.run_id)
    assert run.info.status == "FINISHED"
    for key in ("loss", "val_loss", "roc_auc", "pr_auc", "precision", "recall"):
        assert sorted(steps(jobs.settings, job.run_id, key)) == list(range(EPOCHS)), key
    assert run.data.metrics["roc_auc"] > 0.7
    assert 0 <= run.data.metrics["precision"] <= 1 and 0 <= run.data.metrics["recall"] <= 1
    assert run.data.params["lr"] == "0.005" and run.data.params["hidden_sizes"] == "[16, 8]"
    assert run.data.tags["workbench.dataset_version"] == "synthetic-v1"
    assert run.data.tags["workbench.feature_service"] == "fraud_v1"
    assert run.data.tags["workbench.job_id"] == job.job_id
    assert run.data.tags["workbench.ran_on"] == "cpu" and "workbench.gpu_fallback" not in run.data.tags
    assert run.data.tags["suite"] == "test_training_jobs"
    assert Path(job.spec_path).is_file() and TrainingSpec.load(job.spec_path) == job.spec

    model_uri = run.data.tags["workbench.model_uri"]
    model = mlflow.pyfunc.load_model(model_uri)
    frame = pd.read_parquet(jobs.frame)
    example = frame[list(SYNTHETIC_FEATURES)].head(200)
    probabilities = np.asarray(model.predict(example))
    assert probabilities.shape == (200,)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    assert probabilities.std() > 0.01  # not a constant
    # the logged input example and signature come with the model
    info = mlflow.models.get_model_info(model_uri)
    assert info.signature is not None
    assert [c["name"] for c in info.signature.inputs.to_dict()] == list(SYNTHETIC_FEATURES)
    logged_example = mlflow.models.Model.load(model_uri).load_input_example(
        mlflow.artifacts.download_artifacts(model_uri))
    assert logged_example is not None
    assert np.all(np.asarray(model.predict(logged_example)) >= 0)
    # the model ranks like the run said it would (validation split: ROC-AUC well above chance)
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(frame["is_fraud"], model.predict(frame[list(SYNTHETIC_FEATURES)])) > 0.7

    log = job_logs(jobs.settings, job.job_id)
    assert "workbench: starting run" in log and "timing fit_s=" in log
    with pytest.raises(InvalidInput, match="has finished; there is nothing to resume"):
        resume_training_job(jobs.settings, job.run_id)


# (b) a failing job ---------------------------------------------------------------------------------
def test_failing_job_raises_with_the_python_error(services: Settings, tmp_path: Path) -> None:
    broken = synthetic_training_frame(500, seed=5)
    broken.loc[10, "is_fraud"] = 7
    path = tmp_path / "broken.parquet"
    broken.to_parquet(path)
    job = submit_training_job(services, spec_for(str(path), tmp_path, run_name="broken-label"))
    with pytest.raises(JobFailed) as caught:
        wait_for_job(services, job.job_id, timeout_s=JOB_TIMEOUT_S, progress=False)
    failure = caught.value
    assert failure.job_id == job.job_id and failure.status == "FAILED"
    assert "InvalidInput: label column 'is_fraud' must hold 0/1 only; found [7]" in failure.log_tail
    assert "must hold 0/1 only" in str(failure)
    assert len(failure.log_tail.splitlines()) <= 40
    assert client_for(services).get_run(job.run_id).info.status == "FAILED"


# (c) a stopped job ---------------------------------------------------------------------------------
def test_stopped_job_ends_stopped_and_its_run_killed(services: Settings, tmp_path: Path) -> None:
    frame = tmp_path / "frame.parquet"
    synthetic_training_frame(1000, seed=6).to_parquet(frame)
    job = submit_training_job(services, spec_for(str(frame), tmp_path, run_name="to-stop", epochs=50))
    wait_until(lambda: job.status() == "RUNNING", 120, "the job to run")
    assert stop_job(services, job.job_id) == "STOPPED"
    assert job_status(services, job.job_id) == "STOPPED"
    with pytest.raises(JobFailed) as caught:
        wait_for_job(services, job.job_id, timeout_s=30, progress=False)
    assert caught.value.status == "STOPPED"
    assert client_for(services).get_run(job.run_id).info.status == "KILLED"
    assert stop_job(services, job.job_id) == "STOPPED"  # stopping twice is harmless


# (d) resume ----------------------------------------------------------------------------------------
def test_resumed_job_continues_the_same_run_without_repeating_steps(jobs: Jobs, tmp_path: Path) -> None:
    epochs = 8
    spec = spec_for(jobs.big_frame, tmp_path, run_name="resume", epochs=epochs, batch_size=32, hidden_sizes=[64, 32])
    first = submit_training_job(jobs.settings, spec)
    wait_until(lambda: len(steps(jobs.settings, first.run_id)) >= 1 or first.status() in ("FAILED", "SUCCEEDED"),
               JOB_TIMEOUT_S, "the first epoch's metrics")
    with pytest.raises(InvalidInput, match="is still RUNNING: stop it first"):
        resume_training_job(jobs.settings, first.run_id)
    assert stop_job(jobs.settings, first.job_id) == "STOPPED"
    before = steps(jobs.settings, first.run_id)
    assert 1 <= len(before) < epochs, f"stop came too late to test resuming: {before}"

    second = resume_training_job(jobs.settings, first.run_id)
    assert second.run_id == first.run_id and second.job_id != first.job_id
    assert second.wait(timeout_s=JOB_TIMEOUT_S, progress=False) == "SUCCEEDED"
    logged = steps(jobs.settings, first.run_id)
    assert Counter(logged) == Counter(range(epochs)), f"each step exactly once, got {sorted(logged)}"
    for key in ("roc_auc", "val_loss"):
        assert Counter(steps(jobs.settings, first.run_id, key)) == Counter(range(epochs))
    log = job_logs(jobs.settings, second.job_id)
    match = re.search(rf"resuming run {first.run_id} from the checkpoint of epoch (\d+).*next epoch (\d+)", log)
    assert match, log[-3000:]
    resumed_epoch, next_epoch = int(match.group(1)), int(match.group(2))
    assert next_epoch == resumed_epoch + 1 >= 1
    # every logged step had its checkpoint persisted first; at most one checkpoint may be ahead of the log
    assert max(before) <= resumed_epoch <= max(before) + 1
    run = client_for(jobs.settings).get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["workbench.job_ids"] == f"{first.job_id},{second.job_id}"
    assert run.data.tags["workbench.final_epoch"] == str(epochs - 1)
    assert run.data.metrics["roc_auc"] > 0.7


# (e) GPU requests on a CPU-only cluster --------------------------------------------------------------
def test_gpu_spec_without_fallback_is_refused_before_submission(services: Settings, tmp_path: Path) -> None:
    frame = tmp_path / "frame.parquet"
    synthetic_training_frame(200).to_parquet(frame)
    before = len(client_for(services).search_runs(
        [client_for(services).get_experiment_by_name(services.experiment).experiment_id]))
    with pytest.raises(InvalidInput, match="this cluster has no GPU; set allow_cpu_fallback=True"):
        submit_training_job(services, spec_for(str(frame), tmp_path, use_gpu=True))
    with pytest.raises(InvalidInput, match="no GPU"):
        submit_training_job(services, spec_for(str(frame), tmp_path, gpus=1))
    after = len(client_for(services).search_runs(
        [client_for(services).get_experiment_by_name(services.experiment).experiment_id]))
    assert after == before  # nothing was created


def test_gpu_spec_with_fallback_runs_on_cpu_and_says_so(jobs: Jobs) -> None:
    job = jobs.fallback
    assert job.spec.use_gpu is False and job.spec.allow_cpu_fallback
    assert job.wait(timeout_s=JOB_TIMEOUT_S, progress=False) == "SUCCEEDED"
    run = client_for(jobs.settings).get_run(job.run_id)
    assert run.data.tags["workbench.ran_on"] == "cpu"
    assert "ran on CPU" in run.data.tags["workbench.gpu_fallback"]
    assert run.data.params["requested_gpu"] == "True" and run.data.params["use_gpu"] == "False"
    assert steps(jobs.settings, job.run_id) == [0]


# (f) a sweep ---------------------------------------------------------------------------------------
def test_sweep_logs_each_trial_as_a_child_run(jobs: Jobs) -> None:
    job = jobs.sweep
    assert job.wait(timeout_s=JOB_TIMEOUT_S, progress=False) == "SUCCEEDED"
    client = client_for(jobs.settings)
    parent = client.get_run(job.run_id)
    children = client.search_runs([job.experiment_id], f"tags.`mlflow.parentRunId` = '{job.run_id}'")
    assert len(children) == 2
    for child in children:
        assert child.info.status == "FINISHED"
        assert sorted(m.step for m in client.get_metric_history(child.info.run_id, "roc_auc")) == [0, 1]
        assert 1e-3 <= float(child.data.params["lr"]) <= 1e-2
        assert child.data.params["hidden_sizes"] in ("[8]", "[16, 8]")
    best_id = parent.data.tags["workbench.best_child_run_id"]
    best = next(c for c in children if c.info.run_id == best_id)
    assert best.data.metrics["roc_auc"] == max(c.data.metrics["roc_auc"] for c in children)
    assert parent.data.params["best_lr"] == best.data.params["lr"]
    assert parent.data.metrics["best_roc_auc"] == pytest.approx(best.data.metrics["roc_auc"])
    assert parent.info.status == "FINISHED" and parent.data.tags["workbench.kind"] == "sweep"
    probabilities = mlflow.pyfunc.load_model(parent.data.tags["workbench.model_uri"]).predict(
        pd.read_parquet(jobs.frame).head(20))
    assert np.all((np.asarray(probabilities) >= 0) & (np.asarray(probabilities) <= 1))


# errors and logs -------------------------------------------------------------------------------------
def test_unreachable_cluster_and_unknown_job(services: Settings) -> None:
    dead = services.replace(ray_dashboard_port=1, request_timeout_s=2.0)
    with pytest.raises(ServiceUnavailable, match=r"Ray at http://127.0.0.1:1 is not answering: run `workbench up`"):
        job_status(dead, "anything")
    with pytest.raises(NotFound, match="no job 'no-such-job'"):
        job_status(services, "no-such-job")
    with pytest.raises(NotFound):
        resume_training_job(services, "0" * 32)


def test_stream_job_logs_yields_the_log_until_the_end(jobs: Jobs) -> None:
    jobs.fallback.wait(timeout_s=JOB_TIMEOUT_S, progress=False)
    text = "".join(stream_job_logs(jobs.settings, jobs.fallback.job_id))
    assert "workbench: logged model" in text
