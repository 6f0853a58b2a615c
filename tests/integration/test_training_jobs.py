"""Training as real Ray jobs logging into a real MLflow server (the session's `services`).

The jobs that need workers are submitted together by one module fixture, so they overlap their
start-up costs (on a 2-core machine a Ray Train worker group takes longer to start than these models
take to train); each test then waits for its own. Waiting is always on a real condition (job status,
MLflow metric history), never on a fixed sleep.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

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

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

EPOCHS = 3
RESUME_EPOCHS = 8
JOB_TIMEOUT_S = 1200.0  # generous: a busy 2-core machine starts a worker group in 30 s or in 5 min


@dataclass
class Jobs:
    settings: Settings
    frame: str
    gpu_fallback: TrainingJob  # a GPU spec with allow_cpu_fallback: runs on CPU here
    to_resume: TrainingJob  # long enough to be stopped after its first epoch
    sweep: TrainingJob


def spec_for(frame: str, folder: Path, **changes: Any) -> TrainingSpec:
    base: dict[str, Any] = {"frame_path": frame, "feature_columns": list(SYNTHETIC_FEATURES), "epochs": EPOCHS,
                            "hidden_sizes": [16, 8], "batch_size": 128, "lr": 5e-3, "cpus_per_worker": 0.5,
                            "checkpoint_dir": str(folder / "checkpoints"), "dataset_version": "synthetic-v1",
                            "feature_service": "fraud_v1", "tags": {"suite": "test_training_jobs"}}
    return TrainingSpec(**{**base, **changes})


@pytest.fixture(scope="module")
def workdir(services: Settings) -> Iterator[Path]:
    """Frames and checkpoints the jobs read: not under /tmp/pytest-of-*, which any other pytest session
    on the machine may prune while a job still runs."""
    folder = services.state_dir / "training-tests" / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture()
def tmp_dir(workdir: Path, request: pytest.FixtureRequest) -> Path:
    folder = workdir / request.node.name[:60]
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def jobs(services: Settings, workdir: Path) -> Jobs:
    frame = workdir / "frame.parquet"
    synthetic_training_frame(4000, seed=3).to_parquet(frame)
    big_frame = workdir / "big_frame.parquet"
    synthetic_training_frame(60_000, seed=4).to_parquet(big_frame)
    to_resume = submit_training_job(services, spec_for(str(big_frame), workdir, run_name="resume",
                                                       epochs=RESUME_EPOCHS, batch_size=32, hidden_sizes=[64, 32]))
    gpu_fallback = submit_training_job(services, spec_for(str(frame), workdir, run_name="gpu-fallback",
                                                          use_gpu=True, allow_cpu_fallback=True))
    sweep = submit_training_job(services, spec_for(
        str(frame), workdir, run_name="sweep", epochs=2,
        sweep={"search_space": {"lr": {"loguniform": [1e-3, 1e-2]}, "hidden_sizes": {"choice": [[8], [16, 8]]}},
               "num_samples": 2, "max_concurrent_trials": 2}))
    return Jobs(services, str(frame), gpu_fallback, to_resume, sweep)


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


# (d) stop after the first checkpoint, resume into the same run ------------------------------------------
def test_resumed_job_continues_the_same_run_without_repeating_steps(jobs: Jobs) -> None:
    first = jobs.to_resume
    wait_until(lambda: len(steps(jobs.settings, first.run_id)) >= 1 or first.status() in ("FAILED", "SUCCEEDED"),
               JOB_TIMEOUT_S, "the first epoch's metrics")
    with pytest.raises(InvalidInput, match="is still RUNNING: stop it first"):
        resume_training_job(jobs.settings, first.run_id)
    assert stop_job(jobs.settings, first.job_id) == "STOPPED"
    before = steps(jobs.settings, first.run_id)
    assert 1 <= len(before) < RESUME_EPOCHS, f"the stop came too late to test resuming: {before}"
    assert client_for(jobs.settings).get_run(first.run_id).info.status == "KILLED"

    second = resume_training_job(jobs.settings, first.run_id)
    assert second.run_id == first.run_id and second.job_id != first.job_id
    assert second.wait(timeout_s=JOB_TIMEOUT_S, progress=False) == "SUCCEEDED"
    logged = steps(jobs.settings, first.run_id)
    assert Counter(logged) == Counter(range(RESUME_EPOCHS)), f"each step exactly once, got {sorted(logged)}"
    for key in ("roc_auc", "val_loss", "precision"):
        assert Counter(steps(jobs.settings, first.run_id, key)) == Counter(range(RESUME_EPOCHS)), key
    log = job_logs(jobs.settings, second.job_id)
    match = re.search(rf"resuming run {first.run_id} from the checkpoint of epoch (\d+) .*; next epoch (\d+)", log)
    assert match, log[-3000:]
    resumed_epoch, next_epoch = int(match.group(1)), int(match.group(2))
    assert next_epoch == resumed_epoch + 1 >= 1
    # every logged step had its checkpoint persisted first, so the resume never goes back before the log; the
    # checkpoint may be several epochs ahead (the driver's relay copies metric files into MLflow every so often,
    # and a stop can land between), and then the second job logs those steps: each exactly once, as checked above
    assert resumed_epoch >= max(before)
    assert set(range(max(before) + 1, resumed_epoch + 1)) <= set(logged) - set(before)
    assert f"resumed after epoch {resumed_epoch}" in log  # the worker started from that checkpoint
    run = client_for(jobs.settings).get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["workbench.job_ids"] == f"{first.job_id},{second.job_id}"
    assert run.data.tags["workbench.final_epoch"] == str(RESUME_EPOCHS - 1)
    assert run.data.tags["workbench.ran_on"] == "cpu" and "workbench.gpu_fallback" not in run.data.tags
    assert run.data.metrics["roc_auc"] > 0.7
    with pytest.raises(InvalidInput, match="has finished; there is nothing to resume"):
        resume_training_job(jobs.settings, first.run_id)


# (a) + (e) a job that succeeds; its spec asked for a GPU and fell back to CPU --------------------------
def test_job_trains_logs_every_epoch_and_a_loadable_model(jobs: Jobs) -> None:
    job = jobs.gpu_fallback
    assert job.spec.use_gpu is False and job.spec.allow_cpu_fallback
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
    assert run.data.tags["suite"] == "test_training_jobs"
    assert TrainingSpec.load(job.spec_path) == job.spec
    # (e) the GPU request was honoured as far as the cluster allows, and said so
    assert run.data.tags["workbench.ran_on"] == "cpu"
    assert "ran on CPU" in run.data.tags["workbench.gpu_fallback"]
    assert run.data.params["requested_gpu"] == "True" and run.data.params["use_gpu"] == "False"

    model_uri = run.data.tags["workbench.model_uri"]
    model = mlflow.pyfunc.load_model(model_uri)
    frame = pd.read_parquet(jobs.frame)
    probabilities = np.asarray(model.predict(frame[list(SYNTHETIC_FEATURES)].head(200)))
    assert probabilities.shape == (200,)
    assert np.all((probabilities >= 0) & (probabilities <= 1)) and probabilities.std() > 0.01
    assert roc_auc_score(frame["is_fraud"], model.predict(frame[list(SYNTHETIC_FEATURES)])) > 0.7
    info = mlflow.models.get_model_info(model_uri)
    assert [c["name"] for c in info.signature.inputs.to_dict()] == list(SYNTHETIC_FEATURES)
    example = mlflow.models.Model.load(model_uri).load_input_example(mlflow.artifacts.download_artifacts(model_uri))
    on_example = np.asarray(model.predict(example))
    assert len(on_example) == 5 and np.all((on_example >= 0) & (on_example <= 1))

    log = job_logs(jobs.settings, job.job_id)
    assert "workbench: starting run" in log and "timing fit_s=" in log
    assert "workbench: logged model" in "".join(stream_job_logs(jobs.settings, job.job_id))


def test_gpu_spec_without_fallback_is_refused_before_submission(services: Settings, tmp_dir: Path) -> None:
    frame = tmp_dir / "frame.parquet"
    synthetic_training_frame(200).to_parquet(frame)
    client = client_for(services)
    experiment = client.get_experiment_by_name(services.experiment)
    before = len(client.search_runs([experiment.experiment_id])) if experiment else 0
    with pytest.raises(InvalidInput, match="this cluster has no GPU .*; set allow_cpu_fallback=True"):
        submit_training_job(services, spec_for(str(frame), tmp_dir, use_gpu=True))
    with pytest.raises(InvalidInput, match="no GPU"):
        submit_training_job(services, spec_for(str(frame), tmp_dir, gpus=1))
    experiment = client.get_experiment_by_name(services.experiment)
    assert (len(client.search_runs([experiment.experiment_id])) if experiment else 0) == before  # nothing made


# (b) a failing job ---------------------------------------------------------------------------------
def test_failing_job_raises_with_the_python_error(services: Settings, tmp_dir: Path) -> None:
    broken = synthetic_training_frame(500, seed=5)
    broken.loc[10, "is_fraud"] = 7
    path = tmp_dir / "broken.parquet"
    broken.to_parquet(path)
    job = submit_training_job(services, spec_for(str(path), tmp_dir, run_name="broken-label"))
    with pytest.raises(JobFailed) as caught:
        wait_for_job(services, job.job_id, timeout_s=JOB_TIMEOUT_S, progress=False)
    failure = caught.value
    assert failure.job_id == job.job_id and failure.status == "FAILED"
    assert "InvalidInput: label column 'is_fraud' must hold 0/1 only; found [7]" in failure.log_tail
    assert "must hold 0/1 only" in str(failure)
    assert len(failure.log_tail.splitlines()) <= 40
    assert client_for(services).get_run(job.run_id).info.status == "FAILED"


# (c) a stopped job ---------------------------------------------------------------------------------
def test_stopped_job_ends_stopped_and_its_run_killed(services: Settings, tmp_dir: Path) -> None:
    frame = tmp_dir / "frame.parquet"
    synthetic_training_frame(1000, seed=6).to_parquet(frame)
    job = submit_training_job(services, spec_for(str(frame), tmp_dir, run_name="to-stop", epochs=50))
    wait_until(lambda: job.status() == "RUNNING", JOB_TIMEOUT_S, "the job to run")
    assert stop_job(services, job.job_id) == "STOPPED"
    assert job_status(services, job.job_id) == "STOPPED"
    with pytest.raises(JobFailed) as caught:
        wait_for_job(services, job.job_id, timeout_s=30, progress=False)
    assert caught.value.status == "STOPPED"
    assert client_for(services).get_run(job.run_id).info.status == "KILLED"
    assert stop_job(services, job.job_id) == "STOPPED"  # stopping twice is harmless


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
        assert child.data.tags["workbench.dataset_version"] == "synthetic-v1"
    best_id = parent.data.tags["workbench.best_child_run_id"]
    best = next(c for c in children if c.info.run_id == best_id)
    assert best.data.metrics["roc_auc"] == max(c.data.metrics["roc_auc"] for c in children)
    assert float(parent.data.params["best_lr"]) == pytest.approx(float(best.data.params["lr"]))
    assert parent.data.metrics["best_roc_auc"] == pytest.approx(best.data.metrics["roc_auc"])
    assert parent.info.status == "FINISHED" and parent.data.tags["workbench.kind"] == "sweep"
    probabilities = mlflow.pyfunc.load_model(parent.data.tags["workbench.model_uri"]).predict(
        pd.read_parquet(jobs.frame).head(20))
    assert np.all((np.asarray(probabilities) >= 0) & (np.asarray(probabilities) <= 1))


# errors --------------------------------------------------------------------------------------------
def test_unreachable_cluster_and_unknown_job(services: Settings) -> None:
    dead = services.replace(ray_dashboard_port=1, request_timeout_s=2.0)
    with pytest.raises(ServiceUnavailable, match=r"Ray at http://127.0.0.1:1 is not answering: run `workbench up`"):
        job_status(dead, "anything")
    with pytest.raises(NotFound, match="no job 'no-such-job'"):
        job_status(services, "no-such-job")
    with pytest.raises(NotFound):
        resume_training_job(services, "0" * 32)
