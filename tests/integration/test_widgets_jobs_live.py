"""The job launcher against the real Ray head and MLflow server (the session's `services`).

Driven through the widget's own controls and model, headless: fill the form, submit, see the job listed
with its status, its log streamed, its curve equal to MLflow's metric history; stop a long job; a GPU
request on this CPU-only cluster is refused before anything is submitted. Both jobs are submitted by one
module fixture so their start-up overlaps. Waiting is on real conditions (job status, log chunks, MLflow
history), never on a fixed sleep.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from ray.job_submission import JobSubmissionClient

from workbench.config import Settings
from workbench.training import cluster_gpus, job_logs, job_status, wait_for_job
from workbench.training.capacity import resource_holders
from workbench.training.synthetic import synthetic_training_frame
from workbench.widgets.jobs import JobLauncher

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]
JOB_TIMEOUT_S = 1800.0  # a quiet 2-core machine needs ~20 s per job; a machine shared by many sessions, 20 min


@dataclass
class Launched:
    settings: Settings
    experiment: str
    frame: Path
    folder: Path
    launcher: JobLauncher  # submitted the small job
    small: str
    long: str
    seen_running_curve: list[bool]


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def launcher_for(settings: Settings, experiment: str, frame: Path, folder: Path, *,
                 spec_defaults: dict[str, object] | None = None, **form: object) -> JobLauncher:
    return JobLauncher(experiment, settings=settings, live=False, log_timeout_s=JOB_TIMEOUT_S,
                       spec_defaults={"checkpoint_dir": str(folder / "checkpoints"), "hidden_sizes": [8],
                                      "batch_size": 128, "lr": 5e-3, **(spec_defaults or {})},
                       tags={"suite": "wj-test_widgets_jobs"}, data=str(frame), label="is_fraud",
                       **{"epochs": 2, "cpus_per_worker": 0.5, **form})


@pytest.fixture(scope="module")
def launched(services: Settings) -> Iterator[Launched]:
    folder = services.state_dir / "wj-jobs-tests" / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True)
    frame = folder / "frame.parquet"
    synthetic_training_frame(600, seed=4).to_parquet(frame)
    experiment = f"wj-jobs-{uuid.uuid4().hex[:8]}"
    small = launcher_for(services, experiment, frame, folder, run_name="wj-small")
    assert small.error == "", small.error
    assert small.submit() is not None, small.error
    assert small.wait_idle(120), "submit did not return"
    assert small.last_job is not None, small.error
    long = launcher_for(services, experiment, frame, folder, run_name="wj-long")
    long.set_form(epochs=4000)  # ~0.25 s an epoch: still running when the stop test stops it
    assert long.submit() is not None, long.error
    assert long.wait_idle(120)
    assert long.last_job is not None, long.error
    try:
        yield Launched(services, experiment, frame, folder, small, small.last_job.job_id, long.last_job.job_id, [])
    finally:
        for launcher in (small, long):
            launcher.close()
        for job_id in (small.last_job.job_id, long.last_job.job_id):
            try:
                JobSubmissionClient(services.ray_address).stop_job(job_id)
            except Exception:  # noqa: BLE001, S110 - best effort: a finished job cannot be stopped
                pass
        shutil.rmtree(folder, ignore_errors=True)


def test_submitted_job_is_listed_streams_its_log_and_draws_mlflows_curve(launched: Launched) -> None:
    launcher, job_id, settings = launched.launcher, launched.small, launched.settings
    # the job's processes carry the workbench's report interval, not Ray Train's 2 s (see train_report_interval_s)
    env = JobSubmissionClient(settings.ray_address).get_job_info(job_id).runtime_env["env_vars"]
    assert env["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] == f"{settings.train_report_interval_s:g}" == "0.25"
    assert launcher.selected is not None and launcher.selected.job_id == job_id
    assert job_id in [value for _, value in launcher.jobs_list.options]
    listed = {j.submission_id for j in JobSubmissionClient(settings.ray_address).list_jobs()}
    assert job_id in listed
    # while it runs, refresh as the live thread would and note whether a point arrived before the end
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while job_status(settings, job_id) not in ("SUCCEEDED", "FAILED", "STOPPED") and time.monotonic() < deadline:
        launcher.refresh()
        if launcher.selected and launcher.selected.status == "RUNNING" and launcher.curve_points.get("loss"):
            launched.seen_running_curve.append(True)
        time.sleep(1.0)
    assert wait_for_job(settings, job_id, timeout_s=JOB_TIMEOUT_S, progress=False) == "SUCCEEDED"
    launcher.refresh()
    assert launcher.selected is not None and launcher.selected.status == "SUCCEEDED"
    assert 'data-status="SUCCEEDED"' in launcher.links.value

    # the log arrived through the tail, chunk by chunk, and ends as Ray's whole log ends
    tail = launcher.log_tail
    assert tail is not None and tail.job_id == job_id
    assert tail.wait(120), "the log stream did not end with the job"
    assert tail.error == "" and tail.chunks >= 1
    whole = job_logs(settings, job_id)
    last_line = whole.strip().splitlines()[-1]
    assert last_line in tail.text and "wb-jobs-log" in launcher.log_view.value

    # the curve is MLflow's metric history of the job's run, point for point
    run_id = launcher.selected.run_id
    client = MlflowClient(settings.mlflow_uri)
    history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "loss"))
    assert len(history) == 2
    assert launcher.curve_points["loss"] == history
    auc = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "roc_auc"))
    assert launcher.curve_points["roc_auc"] == auc and len(auc) == 2
    traces = {t.name: t for t in launcher.curve.data}
    assert list(zip(traces["loss"].x, traces["loss"].y, strict=True)) == history
    assert "rmse" not in launcher.curve_points  # the task's metrics only

    # links and the static snapshot
    assert f"/#/jobs/{job_id}" in launcher.links.value and f"/runs/{run_id}" in launcher.links.value
    bundle, _ = launcher._repr_mimebundle_()
    assert job_id in bundle["text/html"] and "MLflow run" in bundle["text/html"]
    assert "SUCCEEDED" in bundle["text/html"] and "plotly" in bundle["text/html"].lower()


def test_stop_button_stops_a_running_job(launched: Launched) -> None:
    settings, job_id = launched.settings, launched.long
    launcher = launcher_for(settings, launched.experiment, launched.frame, launched.folder)
    try:
        wait_until(lambda: job_status(settings, job_id) == "RUNNING", JOB_TIMEOUT_S, "the long job to run")
        # while it trains, Ray's state API names its worker as a holder of the 0.5 CPU it asked for
        def its_worker() -> list[str]:
            return [h.summary() for h in resource_holders(settings) if h.who == f"RayTrainWorker of job {job_id}"]
        wait_until(lambda: its_worker() != [], JOB_TIMEOUT_S, "the long job's worker to hold its CPU")
        assert its_worker() == [f"RayTrainWorker of job {job_id}: 0.5 CPU"]

        # a job whose driver asks more than is free now (but no more than the cluster has) waits PENDING,
        # and the launcher says what it waits behind: the long job's worker
        waiting = launcher_for(settings, launched.experiment, launched.frame, launched.folder, run_name="wj-waits",
                               cpus_per_worker=0.4, spec_defaults={"driver_cpus": 1.6})
        try:
            assert waiting.verdict is not None and waiting.verdict.ok and waiting.verdict.waits, waiting.verdict
            assert waiting.submit() is not None and waiting.wait_idle(120), waiting.error
            assert waiting.last_job is not None, waiting.error
            pending = waiting.last_job.job_id
            assert job_status(settings, pending) == "PENDING"
            waiting.refresh()
            waiting.select(pending)
            assert waiting.selected is not None and waiting.selected.status == "PENDING"
            assert "wb-jobs-waiting" in waiting.links.value, waiting.links.value
            assert f"RayTrainWorker of job {job_id}: 0.5 CPU" in waiting.links.value, waiting.links.value
        finally:
            if waiting.last_job is not None:
                JobSubmissionClient(settings.ray_address).stop_job(waiting.last_job.job_id)
            waiting.close()
        launcher.refresh()
        launcher.select(job_id)
        assert launcher.selected is not None and launcher.selected.job_id == job_id
        assert not launcher.stop_button.disabled
        launcher.stop_button.click()
        assert launcher.wait_idle(120), "stop did not return"
        assert job_status(settings, job_id) == "STOPPED"
        assert launcher.selected.status == "STOPPED", launcher.error
        assert launcher.stop_button.disabled and not launcher.resume_button.disabled
        run = MlflowClient(settings.mlflow_uri).get_run(launcher.selected.run_id)
        assert run.info.status == "KILLED"
    finally:
        launcher.close()


def test_gpu_request_is_refused_before_submission(launched: Launched) -> None:
    settings = launched.settings
    if cluster_gpus(settings) > 0:
        pytest.skip("this cluster has GPUs")
    launcher = launcher_for(settings, launched.experiment, launched.frame, launched.folder, run_name="wj-gpu")
    try:
        before = {j.submission_id for j in JobSubmissionClient(settings.ray_address).list_jobs()}
        launcher.set_form(use_gpu=True, workers=2)
        assert "asks 2 GPUs, the cluster has 0: untick GPU" in launcher.verdict_html.value  # before any click
        assert launcher.submit() is None
        assert launcher.error.startswith("not submitted: asks 2 GPUs, the cluster has 0")
        after = {j.submission_id for j in JobSubmissionClient(settings.ray_address).list_jobs()}
        assert after - before == set()
        runs = MlflowClient(settings.mlflow_uri).search_runs(
            [launcher.model.experiment_id() or "0"], "attributes.run_name = 'wj-gpu'")
        assert runs == []
        # more CPUs than the whole cluster has: refused too, naming the sum
        launcher.set_form(use_gpu=False, workers=64, cpus_per_worker=1.0)
        assert launcher.submit() is None
        assert "asks 64 CPUs (64 workers × 1 CPU)" in launcher.error
        # a spec error reads as a message
        launcher.set_form(workers=1, label="no_such_column")
        assert launcher.submit() is None
        assert "lacks columns ['no_such_column']" in launcher.error and "Traceback" not in launcher.message.value
    finally:
        launcher.close()


def test_capacity_shown_is_the_dashboards(launched: Launched) -> None:
    import requests

    launcher = launched.launcher
    launcher.refresh()
    body = requests.get(f"{launched.settings.ray_address}/api/cluster_status", params={"format": "0"},
                        timeout=10).json()
    used, total = body["data"]["clusterStatus"]["loadMetricsReport"]["usage"]["CPU"]
    assert launcher.capacity_now is not None and launcher.capacity_now.cpus_total == total
    assert f"<td>of {total:g}</td>" in launcher.capacity_html.value
