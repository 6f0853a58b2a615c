"""What the cluster can give a training job now, what a spec asks of it, and the jobs it holds.

A launcher should say *before* submission that a request cannot be met: a job asking for a GPU on a
CPU-only cluster sits PENDING forever, and one asking for more CPUs than the cluster has never starts.
A request that fits the cluster but not what is free right now is different: it waits in Ray's queue
until other jobs finish, so it is a warning, not a refusal.

The free and total resources come from the Ray dashboard's REST API (``/api/cluster_status``, the same
report ``ray status`` prints), over HTTP with a timeout, so asking costs no Ray driver in the kernel.
The jobs come from ``JobSubmissionClient.list_jobs``; a job's epochs from MLflow's metric history of
the run the workbench created for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from mlflow.exceptions import MlflowException

from workbench.config import Settings
from workbench.errors import ServiceUnavailable
from workbench.training.cluster import check_mlflow
from workbench.training.spec import METRICS_BY_TASK, TrainingSpec
from workbench.training.tracking import tracking_client
from workbench.training.trainers import Trainer, get_trainer

GIB = 1024**3


@dataclass(frozen=True)
class ClusterCapacity:
    """Total and free CPUs, GPUs and memory (bytes) of the cluster's live nodes, at ``time``."""

    cpus_total: float
    cpus_free: float
    gpus_total: float
    gpus_free: float
    memory_total: float
    memory_free: float
    time: float = 0.0

    def summary(self) -> str:
        return (f"{_num(self.cpus_free)}/{_num(self.cpus_total)} CPUs free · {_num(self.gpus_free)}/"
                f"{_num(self.gpus_total)} GPUs free · {self.memory_free / GIB:.1f}/{self.memory_total / GIB:.1f} "
                "GiB memory free")


@dataclass(frozen=True)
class JobDemand:
    """What a spec needs placed at once to start: CPUs, GPUs and memory (bytes) over driver and workers."""

    cpus: float
    gpus: float
    memory: float
    what: str = ""  # how it adds up, for the message


@dataclass(frozen=True)
class CapacityVerdict:
    """``refusals``: the request can never run on this cluster (submit is refused); ``waits``: it fits
    the cluster but not what is free now (it will queue)."""

    demand: JobDemand
    capacity: ClusterCapacity
    refusals: tuple[str, ...] = ()
    waits: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.refusals

    def message(self) -> str:
        parts = list(self.refusals) or [f"fits: asks {_demand_text(self.demand)}; {self.capacity.summary()}"]
        return "; ".join([*parts, *self.waits])


@dataclass(frozen=True)
class JobSummary:
    """One training job as the Jobs API lists it, with the MLflow run it logs into."""

    job_id: str
    status: str
    run_id: str
    experiment_id: str
    trainer: str
    kind: str
    epochs: int
    start_time: float  # seconds since the epoch; 0 when not started
    end_time: float
    message: str = ""
    entrypoint: str = field(default="", repr=False)
    workbench: bool = True  # submitted by the workbench (False: anyone else's job on the cluster)


# capacity ---------------------------------------------------------------------------------------
def cluster_capacity(settings: Settings) -> ClusterCapacity:
    """Ask the dashboard for the cluster's resource usage (raises ServiceUnavailable when it cannot)."""
    url = f"{settings.ray_address}/api/cluster_status"
    try:
        response = requests.get(url, params={"format": "0"}, timeout=settings.request_timeout_s)
        response.raise_for_status()
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ServiceUnavailable(f"Ray at {settings.ray_address} did not report its resources: run `workbench up` "
                                 f"or check the address ({type(exc).__name__})") from exc
    return capacity_from_status(body)


def capacity_from_status(body: Any) -> ClusterCapacity:
    """Read ``/api/cluster_status?format=0``: ``data.clusterStatus.loadMetricsReport.usage`` maps each
    resource to ``[used, total]`` (CPU, GPU, memory in bytes; placement-group shares are left out)."""
    try:
        status = body["data"]["clusterStatus"]
        usage = status["loadMetricsReport"]["usage"]
    except (KeyError, TypeError) as exc:
        raise ServiceUnavailable(f"Ray's cluster status has no resource usage (an older or newer dashboard?): "
                                 f"{exc!r}") from exc

    def pair(*names: str) -> tuple[float, float]:
        for name in names:
            value = usage.get(name)
            if isinstance(value, list | tuple) and len(value) == 2:
                used, total = float(value[0]), float(value[1])
                return max(total - used, 0.0), total
        return 0.0, 0.0

    cpus_free, cpus = pair("CPU", "cpu")
    gpus_free, gpus = pair("GPU", "gpu")
    memory_free, memory = pair("memory", "Memory")
    return ClusterCapacity(cpus, _round(cpus_free), gpus, _round(gpus_free), memory, memory_free,
                           float(status.get("time") or 0.0))


def job_demand(spec: TrainingSpec) -> JobDemand:
    """What ``spec`` needs at once before its first step.

    The built-in trainers run ``num_workers`` workers of ``cpus_per_worker`` CPUs (and one GPU each with
    ``use_gpu``) beside a driver that reserves ``driver_cpus``/``gpus``/``memory_mb``; Ray Train places the
    workers as one group, so all must fit. A sweep needs at least one trial of the same size. A trainer
    whose driver reserves its own resources (it overrides ``job_resources``, like "custom") runs there.
    """
    trainer = get_trainer(spec.trainer)
    driver = trainer.job_resources(spec)
    cpus, gpus, memory = (float(driver.get("num_cpus", 0.0)), float(driver.get("num_gpus", 0.0)),
                          float(driver.get("memory", 0.0)))
    if type(trainer).job_resources is not Trainer.job_resources:
        return JobDemand(cpus, gpus, memory, "the job's driver")
    workers = 1 if spec.sweep is not None else spec.num_workers
    cpus += workers * spec.cpus_per_worker
    gpus += workers * (1.0 if spec.use_gpu else 0.0)
    unit = "trial" if spec.sweep is not None else "worker"
    what = f"{workers} {unit}{'s' if workers != 1 else ''} × {_num(spec.cpus_per_worker)} CPU"
    if spec.use_gpu:
        what += " + 1 GPU each"
    if spec.driver_cpus or spec.gpus:
        what += f", driver {_num(spec.driver_cpus)} CPU/{_num(spec.gpus)} GPU"
    return JobDemand(_round(cpus), _round(gpus), memory, what)


def check_capacity(demand: JobDemand, capacity: ClusterCapacity) -> CapacityVerdict:
    """Compare a demand with the cluster: never satisfiable (refuse, saying what to change) or only not now."""
    refusals: list[str] = []
    waits: list[str] = []
    if demand.gpus > capacity.gpus_total + 1e-9:
        fix = ("untick GPU (use_gpu) and set driver GPUs to 0, or run on a cluster with GPUs"
               if capacity.gpus_total == 0 else "lower workers or driver GPUs, or untick GPU")
        refusals.append(f"asks {_num(demand.gpus)} GPU{'s' if demand.gpus != 1 else ''}, the cluster has "
                        f"{_num(capacity.gpus_total)}: {fix}")
    elif demand.gpus > capacity.gpus_free + 1e-9:
        waits.append(f"{_num(capacity.gpus_free)} of {_num(capacity.gpus_total)} GPUs are free now: the job will "
                     "wait for running jobs to finish")
    if demand.cpus > capacity.cpus_total + 1e-9:
        refusals.append(f"asks {_num(demand.cpus)} CPUs ({demand.what}), the cluster has {_num(capacity.cpus_total)}:"
                        " lower workers or CPUs per worker")
    elif demand.cpus > capacity.cpus_free + 1e-9:
        waits.append(f"{_num(capacity.cpus_free)} of {_num(capacity.cpus_total)} CPUs are free now: the job will "
                     "wait for running jobs to finish")
    if demand.memory > capacity.memory_total + 1:
        refusals.append(f"asks {demand.memory / GIB:.1f} GiB memory, the cluster has "
                        f"{capacity.memory_total / GIB:.1f} GiB: lower memory")
    elif demand.memory > capacity.memory_free + 1:
        waits.append(f"{capacity.memory_free / GIB:.1f} GiB memory is free now: the job will wait")
    return CapacityVerdict(demand, capacity, tuple(refusals), tuple(waits))


@dataclass(frozen=True)
class ResourceHolder:
    """Live actors of one kind holding the cluster's CPUs/GPUs: a Serve replica set, a job's workers, ...

    ``who`` names them as a user knows them (``Serve replica fraud-v2/FraudModel``, ``RayTrainWorker of job
    workbench-train-…``), so a job that waits can say what it waits behind."""

    who: str
    actors: int
    cpus: float
    gpus: float

    def summary(self) -> str:
        parts = [f"{_num(self.cpus)} CPU"] + ([f"{_num(self.gpus)} GPU"] if self.gpus else [])
        count = f" ({self.actors} actors)" if self.actors > 1 else ""
        return f"{self.who}: {' + '.join(parts)}{count}"


def resource_holders(settings: Settings, limit: int = 10_000) -> list[ResourceHolder]:
    """Who holds the cluster's CPUs and GPUs now: alive actors with resources, grouped, largest first.

    Read from Ray's state API (the dashboard's ``/api/v0/actors``); actors that hold nothing (Serve's
    controller and proxies, job supervisors) are left out. A job waiting for resources shows this."""
    from ray.util.state import list_actors
    from ray.util.state.exception import RayStateApiException

    try:
        actors = list_actors(address=settings.ray_address, filters=[("state", "=", "ALIVE")], limit=limit,
                             detail=True, raise_on_missing_output=False, timeout=int(settings.request_timeout_s))
    except (RayStateApiException, ConnectionError, requests.RequestException, ValueError) as exc:
        raise ServiceUnavailable(f"Ray at {settings.ray_address} did not list its actors: {exc}") from exc
    submissions = _submission_ids(settings)
    groups: dict[str, list[float]] = {}
    for actor in actors:
        resources = getattr(actor, "required_resources", None) or {}
        cpus, gpus = _held(resources, "CPU"), _held(resources, "GPU")
        if cpus <= 0 and gpus <= 0:
            continue
        group = groups.setdefault(_holder_name(actor, submissions), [0, 0.0, 0.0])
        group[0] += 1
        group[1] += cpus
        group[2] += gpus
    holders = [ResourceHolder(who, int(n), _round(c), _round(g)) for who, (n, c, g) in groups.items()]
    return sorted(holders, key=lambda h: (-h.gpus, -h.cpus, h.who))


def _held(resources: dict[str, float], kind: str) -> float:
    """An actor's share of ``kind`` (CPU, GPU). Inside a placement group (Ray Train's workers, Tune's
    trials) Ray names it ``CPU_group_<pg>`` and ``CPU_group_<bundle>_<pg>``: the first is counted once."""
    if kind in resources:
        return float(resources[kind])
    prefix = f"{kind}_group_"
    return sum(float(v) for k, v in resources.items() if k.startswith(prefix) and "_" not in k[len(prefix):])


def _submission_ids(settings: Settings) -> dict[str, str]:
    """Ray's job ids (hex, what actors carry) to the submission ids users see; empty when Ray cannot say."""
    from ray.job_submission import JobSubmissionClient

    try:
        return {job.job_id: job.submission_id for job in JobSubmissionClient(settings.ray_address).list_jobs()
                if job.job_id and job.submission_id}
    except (ConnectionError, RuntimeError, requests.RequestException):
        return {}


def _holder_name(actor: Any, submissions: dict[str, str]) -> str:
    """A Serve replica by its application/deployment, anything else by its class and the job that made it."""
    name = str(getattr(actor, "name", "") or "")
    if name.startswith("SERVE_REPLICA::"):  # SERVE_REPLICA::<app>#<deployment>#<replica id>
        app, _, rest = name.removeprefix("SERVE_REPLICA::").partition("#")
        return f"Serve replica {app}/{rest.split('#', 1)[0]}" if rest else f"Serve replica {app}"
    cls = str(getattr(actor, "class_name", "") or "actor")
    job = str(getattr(actor, "job_id", "") or "")
    job = submissions.get(job, job)
    return f"{cls} of job {job}" if job else cls


# jobs and their curves --------------------------------------------------------------------------
def list_ray_jobs(settings: Settings) -> list[JobSummary]:
    """Every job submitted to the cluster's Jobs API, newest first: the workbench's training jobs with their
    MLflow run, and anyone else's (``workbench=False``, kind ``ray job``), which have a log and can be
    stopped the same way. A driver that is not a submitted job (a notebook's own ``ray.init``) has neither
    and is left out."""
    from ray.job_submission import JobSubmissionClient

    from workbench.training.cluster import check_ray

    check_ray(settings)
    try:
        jobs = JobSubmissionClient(settings.ray_address).list_jobs()
    except (ConnectionError, RuntimeError, requests.RequestException) as exc:
        raise ServiceUnavailable(f"Ray at {settings.ray_address} did not list its jobs: {exc}") from exc
    out = []
    for job in jobs:
        if not job.submission_id:
            continue
        meta = job.metadata or {}
        ours = meta.get("workbench") == "training"
        out.append(JobSummary(job.submission_id, str(job.status.value), meta.get("mlflow_run_id", "") if ours else "",
                              meta.get("experiment_id", "") if ours else "", meta.get("trainer", "") if ours else "",
                              meta.get("kind", "") if ours else "ray job",
                              int(meta.get("epochs", "0") or 0) if ours else 0, (job.start_time or 0) / 1000.0,
                              (job.end_time or 0) / 1000.0, job.message or "", job.entrypoint or "", workbench=ours))
    return sorted(out, key=lambda j: j.start_time, reverse=True)


def list_training_jobs(settings: Settings, experiment_id: str | None = None) -> list[JobSummary]:
    """The cluster's workbench training jobs (of one MLflow experiment when given), newest first."""
    return [j for j in list_ray_jobs(settings)
            if j.workbench and (experiment_id is None or j.experiment_id == experiment_id)]


def experiment_id(settings: Settings, name: str) -> str | None:
    """The id of MLflow experiment ``name``, or None when it does not exist yet."""
    check_mlflow(settings)
    try:
        found = tracking_client(settings.mlflow_uri).get_experiment_by_name(name)
    except MlflowException as exc:
        raise ServiceUnavailable(f"MLflow at {settings.mlflow_uri} could not look up {name!r}: {exc}") from exc
    return found.experiment_id if found else None


def curve_metrics(task: str) -> tuple[str, ...]:
    """The per-epoch metrics of a task's curve: the training loss, then the task's validation metrics."""
    return ("loss", *METRICS_BY_TASK.get(task, ()))


def epoch_metrics(settings: Settings, run_id: str, keys: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
    """MLflow's metric history of ``run_id``: (step, value) per key, by step; keys never logged are left out."""
    client = tracking_client(settings.mlflow_uri)
    out: dict[str, list[tuple[int, float]]] = {}
    try:
        for key in keys:
            history = client.get_metric_history(run_id, key)
            if history:
                out[key] = sorted((int(m.step), float(m.value)) for m in history)
    except MlflowException as exc:
        raise ServiceUnavailable(f"MLflow at {settings.mlflow_uri} could not send the metrics of run {run_id}: "
                                 f"{exc}") from exc
    except requests.RequestException as exc:
        raise ServiceUnavailable(f"MLflow at {settings.mlflow_uri} is not answering: run `workbench up`") from exc
    return out


def _round(value: float) -> float:
    return round(value, 6)


def _num(value: float) -> str:
    return f"{value:g}" if math.isfinite(value) else str(value)


def _demand_text(demand: JobDemand) -> str:
    text = f"{_num(demand.cpus)} CPU, {_num(demand.gpus)} GPU"
    return text + (f", {demand.memory / GIB:.1f} GiB" if demand.memory else "")
