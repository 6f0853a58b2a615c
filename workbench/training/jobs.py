"""Training as Ray jobs: submit, watch, stream logs, stop, wait, resume — from a notebook or a handler.

The MLflow run is created *before* the job is submitted, so its id is known up front (to link in the
notebook, to resume into) and the job only ever logs into it. The spec is written as JSON next to the
run's checkpoints; the entrypoint is an argument list quoted with ``shlex``, never a string built from
user input.
"""

from __future__ import annotations

import asyncio
import queue
import secrets
import shlex
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from ray.job_submission import JobDetails, JobStatus, JobSubmissionClient

from workbench import locations
from workbench.config import Settings
from workbench.data.task import TAG_TASK
from workbench.errors import InvalidInput, JobFailed, NotFound, ServiceUnavailable, WorkbenchError
from workbench.runtime_env import code_runtime_env
from workbench.training.cluster import check_mlflow, check_ray, cluster_gpus
from workbench.training.shipping import frame_for_cluster
from workbench.training.spec import TrainingSpec
from workbench.training.tracking import (
    TAG_DATASET_VERSION,
    TAG_FEATURE_SERVICE,
    TAG_GPU_FALLBACK,
    TAG_JOB_ID,
    TAG_JOB_IDS,
    TAG_KIND,
    TAG_RAN_ON,
    TAG_SPEC_PATH,
    log_params,
    set_tags,
    tracking_client,
)
from workbench.training.trainers import get_trainer

ENTRYPOINT_MODULE = "workbench.training.entrypoint"
SPEC_FILE = "spec.json"
SPEC_ARTIFACT = "workbench/spec.json"
LOG_TAIL_LINES = 40
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
#: Ray Train gives up starting a worker group after 60 s by default and starts over; on a busy small
#: machine a worker's imports alone can take longer, so the job waits longer instead of thrashing.
JOB_ENV = {"PYTHONUNBUFFERED": "1", "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "600"}
#: On one local machine nothing is preempted: skip Ray Train's preemption-watcher actor (one process less).
LOCAL_JOB_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


def job_env(settings: Settings) -> dict[str, str]:
    """What every training job's processes carry, on a local head or in a RayJob: the fixed JOB_ENV and
    Ray Train's report interval (``train_report_interval_s``: with Ray's 2 s, every quick epoch took 2 s)."""
    return {**JOB_ENV, "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": f"{settings.train_report_interval_s:g}",
            **(LOCAL_JOB_ENV if settings.profile == "local" else {})}
TAG_TRAINER = "workbench.trainer"


class TrainingTimeout(WorkbenchError, TimeoutError):
    """A job did not finish within the time waited for it; it keeps running (stop it with stop_job)."""


@dataclass(frozen=True)
class TrainingJob:
    """A submitted training job and the MLflow run it logs into."""

    settings: Settings
    job_id: str
    run_id: str
    experiment_id: str
    spec: TrainingSpec
    spec_path: str  # a local path, or an s3:// URI when run state lives in the bucket

    @property
    def run_url(self) -> str:
        return f"{self.settings.mlflow_uri}/#/experiments/{self.experiment_id}/runs/{self.run_id}"

    def status(self) -> str:
        return job_status(self.settings, self.job_id)

    def logs(self) -> str:
        return job_logs(self.settings, self.job_id)

    def stream_logs(self) -> Iterator[str]:
        return stream_job_logs(self.settings, self.job_id)

    def wait(self, timeout_s: float = 1800.0, progress: bool = True) -> str:
        return wait_for_job(self.settings, self.job_id, timeout_s=timeout_s, progress=progress)

    def stop(self, wait: bool = True) -> str:
        return stop_job(self.settings, self.job_id, wait=wait)


# clients ----------------------------------------------------------------------------------------
def _jobs_client(settings: Settings) -> JobSubmissionClient:
    check_ray(settings)
    try:
        return JobSubmissionClient(settings.ray_address)
    except (ConnectionError, RuntimeError, requests.RequestException) as exc:
        raise ServiceUnavailable(f"Ray at {settings.ray_address} is not answering: run `workbench up` "
                                 f"({exc})") from exc


def _mlflow(settings: Settings) -> MlflowClient:
    check_mlflow(settings)
    return tracking_client(settings.mlflow_uri)


def _job_info(client: JobSubmissionClient, settings: Settings, job_id: str) -> JobDetails:
    try:
        return client.get_job_info(job_id)
    except RuntimeError as exc:
        if "404" in str(exc) or "does not exist" in str(exc):
            raise NotFound(f"no job {job_id!r} on Ray at {settings.ray_address}") from exc
        raise ServiceUnavailable(f"Ray at {settings.ray_address} could not report job {job_id}: {exc}") from exc
    except (ConnectionError, requests.RequestException) as exc:
        raise ServiceUnavailable(f"Ray at {settings.ray_address} is not answering: run `workbench up`") from exc


# submit -----------------------------------------------------------------------------------------
def _resolve_gpu(settings: Settings, spec: TrainingSpec) -> tuple[TrainingSpec, bool]:
    """Check a GPU request against the cluster; return the spec to run and whether it fell back to CPU."""
    if not spec.wants_gpu:
        return spec, False
    available = cluster_gpus(settings)
    needed = max(spec.num_workers if spec.use_gpu else 0, 0) + spec.gpus
    if available >= needed:
        return spec, False
    if not spec.allow_cpu_fallback:
        if available == 0:
            raise InvalidInput(f"this cluster has no GPU (Ray at {settings.ray_address}); set "
                               "allow_cpu_fallback=True to run on CPU, or use_gpu=False")
        raise InvalidInput(f"the spec asks for {needed:g} GPUs but the cluster has {available:g}; lower "
                           "num_workers or gpus, or set allow_cpu_fallback=True to run on CPU")
    return spec.replace(use_gpu=False, gpus=0.0), True


def _checkpoint_root(settings: Settings, spec: TrainingSpec) -> str:
    """The spec's checkpoint folder, else the settings' (a bucket URI as it is, a local path made absolute)."""
    root = spec.checkpoint_dir or settings.checkpoints_location
    return root if locations.is_remote(root) else str(Path(root).resolve())


def _new_job_id(run_id: str) -> str:
    return f"workbench-train-{run_id[:8]}-{secrets.token_hex(3)}"


def _entrypoint(settings: Settings, spec_path: str, run_id: str, job_id: str) -> str:
    python = sys.executable if settings.profile == "local" and sys.executable else "python"
    args = [python, "-m", ENTRYPOINT_MODULE, "--spec", spec_path, "--run-id", run_id,
            "--tracking-uri", settings.mlflow_uri, "--job-id", job_id]
    return " ".join(shlex.quote(a) for a in args)


def _submit(settings: Settings, spec: TrainingSpec, spec_path: str, run_id: str, experiment_id: str,
            job_id: str, jobs: JobSubmissionClient) -> None:
    trainer = get_trainer(spec.trainer)
    options: dict[str, Any] = {f"entrypoint_{k}": v for k, v in trainer.job_resources(spec).items()}
    env = {**settings.engine_env(), **job_env(settings), **settings.job_storage_env(),
           **trainer.job_env(spec, run_id, experiment_id, settings.mlflow_uri)}
    try:
        jobs.submit_job(
            entrypoint=_entrypoint(settings, spec_path, run_id, job_id),
            submission_id=job_id,
            runtime_env={**code_runtime_env(settings), **trainer.runtime_env(spec), "env_vars": env},
            metadata={"workbench": "training", "mlflow_run_id": run_id, "experiment_id": experiment_id,
                      "epochs": str(trainer.total_steps(spec)), "kind": "sweep" if spec.sweep else "training",
                      "trainer": spec.trainer},
            **options,
        )
    except (ConnectionError, RuntimeError, requests.RequestException) as exc:
        raise ServiceUnavailable(f"Ray at {settings.ray_address} did not accept the job: {exc}") from exc


def submit_training_job(settings: Settings, spec: TrainingSpec, *, job_id: str | None = None) -> TrainingJob:
    """Create the MLflow run, write the spec, submit the Ray job; return at once (see :func:`wait_for_job`).

    A GPU spec on a cluster without (enough) GPUs raises InvalidInput, unless ``allow_cpu_fallback``:
    then it runs on CPU and the run is tagged ``workbench.gpu_fallback`` and ``workbench.ran_on=cpu``.
    """
    jobs = _jobs_client(settings)
    client = _mlflow(settings)
    spec, fell_back = _resolve_gpu(settings, spec)
    if settings.state_in_bucket:
        from workbench.storage import activate

        activate(settings)  # this process writes the spec and the frame into the bucket
    checkpoint_dir = _checkpoint_root(settings, spec)
    # the job runs in another working directory (on a cluster, another machine): every location it reads must
    # be absolute, and on a cluster sharing no disk with this one, in the bucket
    spec = spec.replace(experiment=spec.experiment or settings.experiment, checkpoint_dir=checkpoint_dir,
                        frame_path=frame_for_cluster(settings, spec.frame_path),
                        working_dir=str(Path(spec.working_dir).resolve()) if spec.working_dir else "")
    experiment = client.get_experiment_by_name(spec.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(spec.experiment)
    kind = "sweep" if spec.sweep else "training"
    run = client.create_run(experiment_id, run_name=spec.run_name or None,
                            tags={**spec.tags, TAG_KIND: kind, TAG_DATASET_VERSION: spec.dataset_version,
                                  TAG_FEATURE_SERVICE: spec.feature_service,
                                  TAG_RAN_ON: "gpu" if spec.use_gpu else "cpu", TAG_TASK: spec.task,
                                  TAG_TRAINER: spec.trainer})
    run_id = run.info.run_id
    job_id = job_id or _new_job_id(run_id)
    spec_path = spec.save(locations.join(checkpoint_dir, run_id, SPEC_FILE))
    try:
        tags = {TAG_SPEC_PATH: str(spec_path), TAG_JOB_ID: job_id, TAG_JOB_IDS: job_id}
        if fell_back:
            tags[TAG_GPU_FALLBACK] = "asked for a GPU, ran on CPU: the cluster has no (free) GPU"
        set_tags(client, run_id, tags)
        log_params(client, run_id, {**spec.hyperparameters(), "num_workers": spec.num_workers,
                                    "use_gpu": spec.use_gpu, "requested_gpu": spec.wants_gpu or fell_back,
                                    "cpus_per_worker": spec.cpus_per_worker,
                                    "n_features": len(spec.feature_columns),
                                    "feature_columns": list(spec.feature_columns),
                                    "categorical_columns": list(spec.categorical_columns or ()),
                                    "label_column": spec.label_column, "frame_path": spec.frame_path,
                                    "dataset_version": spec.dataset_version,
                                    "feature_service": spec.feature_service,
                                    **({"sweep": spec.sweep.to_dict()} if spec.sweep else {})})
        client.log_text(run_id, spec.to_json(), SPEC_ARTIFACT)
        _submit(settings, spec, spec_path, run_id, experiment_id, job_id, jobs)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return TrainingJob(settings, job_id, run_id, experiment_id, spec, spec_path)


def resume_training_job(settings: Settings, run_id: str, *, job_id: str | None = None) -> TrainingJob:
    """Submit a new job that continues run ``run_id`` from its newest checkpoint, logging into the same run.

    The run's metric steps continue where the checkpoint left off (no step is logged twice).
    """
    jobs = _jobs_client(settings)
    client = _mlflow(settings)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise NotFound(f"no MLflow run {run_id!r} at {settings.mlflow_uri}") from exc
    if run.info.status == "FINISHED":
        raise InvalidInput(f"run {run_id} has finished; there is nothing to resume (submit a new job to train "
                           "more)")
    previous = run.data.tags.get(TAG_JOB_ID, "")
    if previous:
        try:
            status = _job_info(jobs, settings, previous).status.value
        except NotFound:
            status = "GONE"
        if status not in (*TERMINAL, "GONE"):
            raise InvalidInput(f"job {previous} of run {run_id} is still {status}: stop it first "
                               "(stop_job) or wait for it")
    if settings.state_in_bucket:
        from workbench.storage import activate

        activate(settings)
    spec_path = run.data.tags.get(TAG_SPEC_PATH, "")
    if not spec_path or not locations.exists(spec_path):
        try:
            text = client.download_artifacts(run_id, SPEC_ARTIFACT)
        except MlflowException as exc:
            raise NotFound(f"run {run_id} has no training spec (not a workbench training run?)") from exc
        spec = TrainingSpec.load(text)
        spec_path = spec.save(locations.join(_checkpoint_root(settings, spec), run_id, SPEC_FILE))
    else:
        spec = TrainingSpec.load(spec_path)
    if spec.sweep is not None:
        raise InvalidInput("a sweep cannot be resumed; submit it again")
    if not get_trainer(spec.trainer).resumable:
        raise InvalidInput(f"a run of trainer {spec.trainer!r} cannot be resumed; submit it again")
    spec, fell_back = _resolve_gpu(settings, spec)  # the cluster may have changed since the first job
    if fell_back:
        spec.save(spec_path)
        set_tags(client, run_id, {TAG_RAN_ON: "cpu", TAG_GPU_FALLBACK: "asked for a GPU, resumed on CPU: the "
                                                                       "cluster has no (free) GPU"})
    job_id = job_id or _new_job_id(run_id)
    history = [j for j in run.data.tags.get(TAG_JOB_IDS, previous).split(",") if j]
    client.update_run(run_id, status="RUNNING")
    set_tags(client, run_id, {TAG_JOB_ID: job_id, TAG_JOB_IDS: ",".join([*history, job_id]),
                              "workbench.resumed": "true"})
    try:
        _submit(settings, spec, spec_path, run_id, run.info.experiment_id, job_id, jobs)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return TrainingJob(settings, job_id, run_id, run.info.experiment_id, spec, spec_path)


# watch ------------------------------------------------------------------------------------------
def job_status(settings: Settings, job_id: str) -> str:
    """PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""
    return str(_job_info(_jobs_client(settings), settings, job_id).status.value)


def job_logs(settings: Settings, job_id: str) -> str:
    """The whole log of the job so far (driver and workers)."""
    jobs = _jobs_client(settings)
    _job_info(jobs, settings, job_id)
    try:
        return str(jobs.get_job_logs(job_id))
    except (RuntimeError, ConnectionError, requests.RequestException) as exc:
        raise ServiceUnavailable(f"Ray at {settings.ray_address} could not send the log of {job_id}: {exc}") from exc


def stream_job_logs(settings: Settings, job_id: str) -> Iterator[str]:
    """Yield chunks of the job's log as they are written, until the job ends.

    Works in a notebook (whose event loop is already running): Ray's async ``tail_job_logs`` runs on an
    event loop in a helper thread and hands the chunks over through a queue. Closing the generator
    leaves the job running.
    """
    jobs = _jobs_client(settings)
    _job_info(jobs, settings, job_id)
    chunks: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1000)
    done = threading.Event()

    async def tail() -> None:
        async for chunk in jobs.tail_job_logs(job_id):
            if done.is_set():
                return
            chunks.put(("chunk", chunk))

    def pump() -> None:
        try:
            asyncio.run(tail())
            chunks.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            chunks.put(("error", exc))

    threading.Thread(target=pump, name=f"tail-{job_id}", daemon=True).start()
    try:
        while True:
            kind, value = chunks.get()
            if kind == "chunk":
                yield str(value)
            elif kind == "end":
                return
            else:
                raise ServiceUnavailable(f"lost the log stream of {job_id} from Ray at {settings.ray_address}: "
                                         f"{value}") from value
    finally:
        done.set()


def _log_tail(jobs: JobSubmissionClient, job_id: str, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = str(jobs.get_job_logs(job_id))
    except Exception as exc:  # noqa: BLE001 - a missing log must not hide the failure itself
        return f"(the job log could not be read: {exc})"
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _close_run(settings: Settings, info: JobDetails) -> None:
    """Mark the job's MLflow run FAILED/KILLED if the driver could not (killed hard, never started)."""
    run_id = (info.metadata or {}).get("mlflow_run_id")
    if not run_id:
        return
    try:
        client = tracking_client(settings.mlflow_uri)
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, "KILLED" if info.status == JobStatus.STOPPED else "FAILED")
    except MlflowException:
        pass


def wait_for_job(settings: Settings, job_id: str, timeout_s: float = 1800.0, progress: bool = True,
                 poll_s: float = 1.0) -> str:
    """Block until the job ends; return "SUCCEEDED".

    Raises JobFailed (with the last ~40 log lines in ``log_tail``) when it ends FAILED or STOPPED,
    TrainingTimeout when ``timeout_s`` passes first (the job keeps running), ServiceUnavailable when Ray
    stops answering. ``progress`` shows a bar of finished epochs (from MLflow) in notebooks and terminals.
    """
    jobs = _jobs_client(settings)
    info = _job_info(jobs, settings, job_id)
    bar = _EpochProgress(settings, info) if progress else None
    deadline = time.monotonic() + timeout_s
    try:
        while info.status.value not in TERMINAL:
            if time.monotonic() > deadline:
                raise TrainingTimeout(f"job {job_id} is still {info.status.value} after {timeout_s:.0f} s; it keeps "
                                      "running: wait again, or stop it with stop_job")
            if bar is not None:
                bar.update(info.status.value)
            time.sleep(poll_s)
            info = _job_info(jobs, settings, job_id)
        if bar is not None:
            bar.update(info.status.value)
    finally:
        if bar is not None:
            bar.close()
    if info.status == JobStatus.SUCCEEDED:
        return "SUCCEEDED"
    _close_run(settings, info)
    tail = _log_tail(jobs, job_id)
    reason = info.message or ""
    last_error = next((line for line in reversed(tail.splitlines()) if "Error" in line or "Exception" in line), "")
    raise JobFailed(f"training job {job_id} ended {info.status.value}: {last_error or reason}\n"
                    f"--- last {LOG_TAIL_LINES} log lines ---\n{tail}",
                    job_id=job_id, status=info.status.value, log_tail=tail)


def stop_job(settings: Settings, job_id: str, *, wait: bool = True, timeout_s: float = 60.0) -> str:
    """Ask Ray to stop the job (SIGTERM, then SIGKILL); with ``wait`` return its final status."""
    jobs = _jobs_client(settings)
    info = _job_info(jobs, settings, job_id)
    if info.status.value in TERMINAL:
        return str(info.status.value)
    try:
        jobs.stop_job(job_id)
    except (RuntimeError, ConnectionError, requests.RequestException) as exc:
        raise ServiceUnavailable(f"Ray at {settings.ray_address} could not stop {job_id}: {exc}") from exc
    if not wait:
        return str(_job_info(jobs, settings, job_id).status.value)
    deadline = time.monotonic() + timeout_s
    while (info := _job_info(jobs, settings, job_id)).status.value not in TERMINAL:
        if time.monotonic() > deadline:
            raise TrainingTimeout(f"job {job_id} did not stop within {timeout_s:.0f} s (status "
                                  f"{info.status.value})")
        time.sleep(0.5)
    _close_run(settings, info)
    return str(info.status.value)


class _EpochProgress:
    """A tqdm bar of epochs logged to MLflow, labelled with the job status."""

    def __init__(self, settings: Settings, info: JobDetails) -> None:
        from tqdm.auto import tqdm

        metadata = info.metadata or {}
        self.run_id = metadata.get("mlflow_run_id", "")
        epochs = int(metadata.get("epochs", "0") or 0)
        self.client = tracking_client(settings.mlflow_uri) if self.run_id else None
        self.bar = tqdm(total=epochs or None, desc=f"{info.submission_id}", unit="epoch")
        self.last_poll = 0.0

    def update(self, status: str) -> None:
        if self.client is not None and time.monotonic() - self.last_poll > 2.0:
            self.last_poll = time.monotonic()
            try:
                done = len({m.step for m in self.client.get_metric_history(self.run_id, "loss")})
            except MlflowException:
                done = self.bar.n
            if done > self.bar.n:
                self.bar.update(done - self.bar.n)
        self.bar.set_postfix_str(status)

    def close(self) -> None:
        self.bar.close()
