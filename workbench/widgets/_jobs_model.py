"""The job launcher's state without any widget: the form's values, turned into a checked spec; the
experiment's jobs; a job's curve; a log tail in a background thread. Tested headless.

The form holds plain values; :meth:`JobLauncherModel.spec` turns them into a
:class:`~workbench.training.TrainingSpec` (whose own validation names the field) and
:meth:`JobLauncherModel.check` compares what it asks with the cluster (workbench.training.capacity), so
a request the cluster can never meet is refused with the reason before anything is submitted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from workbench.config import Settings
from workbench.data.catalog import DatasetCatalog
from workbench.data.task import TASK_KINDS, Task
from workbench.errors import InvalidInput, WorkbenchError
from workbench.training import (
    SweepSpec,
    TrainingJob,
    TrainingSpec,
    get_trainer,
    resume_training_job,
    stop_job,
    stream_job_logs,
    submit_training_job,
    trainer_names,
)
from workbench.training.capacity import (
    CapacityVerdict,
    ClusterCapacity,
    JobSummary,
    ResourceHolder,
    check_capacity,
    cluster_capacity,
    curve_metrics,
    epoch_metrics,
    experiment_id,
    job_demand,
    list_training_jobs,
    resource_holders,
)

DEFAULT_SEARCH_SPACE = '{"lr": {"loguniform": [0.0001, 0.01]}}'
LOG_KEEP_CHARS = 200_000  # the log pane keeps the tail; the whole log stays in Ray


@dataclass(frozen=True)
class JobForm:
    """What the launcher's form holds. ``data`` is a Parquet path; or ``dataset`` (+ ``version``, default
    latest) names a registered dataset version, whose declared task fills ``label``/``task`` when empty."""

    trainer: str = "mlp"
    data: str = ""
    dataset: str = ""
    version: str = ""
    task: str = "binary"
    label: str = ""
    features: str = ""  # comma-separated; empty: every column but the label (and the task's keys)
    workers: int = 1
    cpus_per_worker: float = 1.0
    use_gpu: bool = False
    driver_gpus: float = 0.0
    memory_mb: int = 0
    epochs: int = 5
    sweep: bool = False
    search_space: str = DEFAULT_SEARCH_SPACE
    num_samples: int = 4
    run_name: str = ""
    entrypoint: str = ""  # the custom trainer's script or module:function
    working_dir: str = ""

    def replace(self, **changes: Any) -> JobForm:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobLauncherModel:
    """Build, check and submit training jobs of one experiment; list them, read their curves, stop, resume."""

    def __init__(self, settings: Settings, experiment: str | None = None, *, tags: dict[str, str] | None = None,
                 spec_defaults: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.experiment = experiment or settings.experiment
        self.tags = dict(tags or {})
        self.spec_defaults = dict(spec_defaults or {})  # e.g. checkpoint_dir, hidden_sizes, batch_size
        self._experiment_id: str | None = None
        self.submitted: dict[str, TrainingJob] = {}

    # the form -> a spec ---------------------------------------------------------------------------
    @staticmethod
    def trainers() -> list[str]:
        return trainer_names()

    @staticmethod
    def tasks() -> tuple[str, ...]:
        return TASK_KINDS

    def datasets(self) -> list[str]:
        return DatasetCatalog(self.settings).names()

    def versions(self, dataset: str) -> list[str]:
        return [v.version for v in reversed(DatasetCatalog(self.settings).versions(dataset))]

    def spec(self, form: JobForm) -> TrainingSpec:
        """The spec the form describes; InvalidInput names what to fix."""
        frame, version, declared = self._data(form)
        label = form.label.strip() or (declared.label if declared else "")
        if not label:
            raise InvalidInput("label: name the column to predict")
        kind = form.task if form.task else (declared.kind if declared else "binary")
        if declared is not None and declared.label == label and declared.kind == kind:
            task = declared
        else:
            task = Task(label=label, kind=kind)  # type: ignore[arg-type]  # checked by Task
        features = [f.strip() for f in form.features.split(",") if f.strip()] or None
        trainer = get_trainer(form.trainer)
        steps = "n_estimators" if "n_estimators" in trainer.hyperparameters else "epochs"
        changes: dict[str, Any] = {
            **self.spec_defaults, "trainer": form.trainer, steps: form.epochs, "num_workers": form.workers,
            "cpus_per_worker": form.cpus_per_worker, "use_gpu": form.use_gpu, "gpus": form.driver_gpus,
            "memory_mb": form.memory_mb, "experiment": self.experiment, "run_name": form.run_name,
            "tags": {**self.tags, **self.spec_defaults.get("tags", {})}, "dataset_version": version,
            "sweep": self._sweep(form) if form.sweep else None}
        if form.trainer == "custom" or form.entrypoint:
            changes.update(entrypoint=form.entrypoint, working_dir=form.working_dir)
        if not trainer.uses_frame and not frame:
            return TrainingSpec.from_dict({"frame_path": "", "feature_columns": features or [],
                                           "label_column": label, "task": kind, **changes})
        return TrainingSpec.from_task(task, frame, features, **changes)

    def _data(self, form: JobForm) -> tuple[str, str, Task | None]:
        """(frame path, dataset version id, the version's declared task) of the form's data."""
        if form.dataset:
            found = DatasetCatalog(self.settings).get(form.dataset, form.version or None)
            if found.format != "parquet":
                raise InvalidInput(f"dataset {found.name} {found.version} is {found.format}; training reads Parquet: "
                                   "register a Parquet version or build a training frame (workbench.features)")
            return found.path, found.version, found.task_spec
        path = form.data.strip()
        if not path:
            raise InvalidInput("data: give the path of a training frame (Parquet) or pick a registered dataset")
        resolved = Path(path).expanduser()
        if not resolved.is_absolute():
            resolved = self.settings.project_dir / resolved
        return str(resolved), "", None

    @staticmethod
    def _sweep(form: JobForm) -> SweepSpec:
        try:
            space = json.loads(form.search_space)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"search space is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                               f"write it like {DEFAULT_SEARCH_SPACE}") from exc
        return SweepSpec(search_space=space, num_samples=form.num_samples)

    # capacity -------------------------------------------------------------------------------------
    def capacity(self) -> ClusterCapacity:
        return cluster_capacity(self.settings)

    def holders(self) -> list[ResourceHolder]:
        """Who holds the cluster's CPUs and GPUs now (shown beside a job that waits for them)."""
        return resource_holders(self.settings)

    def check(self, form: JobForm, capacity: ClusterCapacity | None = None) -> tuple[TrainingSpec, CapacityVerdict]:
        spec = self.spec(form)
        return spec, check_capacity(job_demand(spec), capacity or self.capacity())

    # submit, stop, resume ----------------------------------------------------------------------
    def submit(self, form: JobForm) -> TrainingJob:
        """Check, then submit; a request the cluster cannot meet raises InvalidInput (nothing submitted)."""
        spec, verdict = self.check(form)
        if not verdict.ok:
            raise InvalidInput(verdict.message())
        job = submit_training_job(self.settings, spec)
        self._experiment_id = job.experiment_id
        self.submitted[job.job_id] = job
        return job

    def stop(self, job_id: str) -> str:
        return stop_job(self.settings, job_id, wait=True)

    def resume(self, job: JobSummary) -> TrainingJob:
        if not job.run_id:
            raise InvalidInput(f"job {job.job_id} has no MLflow run to resume")
        resumed = resume_training_job(self.settings, job.run_id)
        self.submitted[resumed.job_id] = resumed
        return resumed

    # what runs --------------------------------------------------------------------------------------
    def experiment_id(self) -> str | None:
        if self._experiment_id is None:
            self._experiment_id = experiment_id(self.settings, self.experiment)
        return self._experiment_id

    def jobs(self) -> list[JobSummary]:
        """This experiment's training jobs on the cluster, newest first (none before its first run)."""
        eid = self.experiment_id()
        return [] if eid is None else list_training_jobs(self.settings, eid)

    def task_of(self, job: JobSummary) -> str:
        known = self.submitted.get(job.job_id)
        return known.spec.task if known is not None else ""

    def curve(self, job: JobSummary, task: str = "") -> dict[str, list[tuple[int, float]]]:
        """The job's per-epoch loss and task metrics from MLflow (all tasks' metrics when the task is unknown)."""
        if not job.run_id:
            return {}
        task = task or self.task_of(job)
        keys = curve_metrics(task) if task else tuple(dict.fromkeys(
            k for t in TASK_KINDS for k in curve_metrics(t)))
        return epoch_metrics(self.settings, job.run_id, keys)

    def dashboard_url(self, job_id: str) -> str:
        return f"{self.settings.ray_address}/#/jobs/{job_id}"

    def run_url(self, job: JobSummary) -> str:
        return f"{self.settings.mlflow_uri}/#/experiments/{job.experiment_id}/runs/{job.run_id}"


class LogTail:
    """A job's log, streamed in a daemon thread (``stream_job_logs``) so the kernel never waits on it.

    ``on_chunk(text_so_far)`` is called from that thread. It ends when the job ends, when ``stop()`` is
    called or after ``timeout_s``; the log's tail (``LOG_KEEP_CHARS``) is kept in ``text``. Ray's tail
    blocks between chunks, so after ``stop`` the thread itself exits at the next chunk or the job's end,
    delivering nothing more.
    """

    def __init__(self, settings: Settings, job_id: str, *, on_chunk: Callable[[str], Any] | None = None,
                 timeout_s: float = 1800.0) -> None:
        self.settings = settings
        self.job_id = job_id
        self.on_chunk = on_chunk
        self.timeout_s = timeout_s
        self.text = ""
        self.chunks = 0
        self.error = ""
        self.ended = threading.Event()  # set when the stream ended, stopped, failed or timed out
        self.reason = ""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"wb-logs-{job_id}", daemon=True)
        self._timer = threading.Timer(timeout_s, self._time_out)
        self._timer.daemon = True

    def start(self) -> LogTail:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self, reason: str = "stopped") -> None:
        if not self._stop.is_set():
            self.reason = self.reason or reason
            self._stop.set()
            self._timer.cancel()
            self.ended.set()

    def _time_out(self) -> None:
        self.stop(f"stopped after {self.timeout_s:.0f} s")

    @property
    def running(self) -> bool:
        return not self.ended.is_set()

    def wait(self, timeout_s: float) -> bool:
        return self.ended.wait(timeout_s)

    def _run(self) -> None:
        stream = None
        try:
            stream = stream_job_logs(self.settings, self.job_id)
            for chunk in stream:
                if self._stop.is_set():
                    break
                with self._lock:
                    self.text = (self.text + chunk)[-LOG_KEEP_CHARS:]
                    self.chunks += 1
                    text = self.text
                if self.on_chunk is not None:
                    try:
                        self.on_chunk(text)
                    except Exception:  # noqa: BLE001, S110 - a display failure must not end the stream
                        pass
            self.reason = self.reason or "the job ended"
        except WorkbenchError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - shown in the widget, never raised into the kernel
            self.error = f"unexpected {type(exc).__name__}: {exc}"
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            self._timer.cancel()
            self.ended.set()


def wait_until(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.2) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
