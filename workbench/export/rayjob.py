"""A training spec as a KubeRay ``RayJob``: the same job ``submit_training_job`` sends to a Ray head,
written as the object a platform team applies, optionally queued by Kueue or Volcano.

The RayJob brings its own Ray cluster (head and one worker group sized from the spec) and deletes it
when the job ends (``shutdownAfterJobFinishes``). The driver runs today's entrypoint
(``python -m workbench.training.entrypoint --spec ... --run-id ...``) with today's runtime env; the spec
travels in a ConfigMap mounted into every Ray pod, so the job reads exactly what was exported. Paths the
job reads (the training frame, checkpoints, a custom trainer's code) must be URIs or lie on a volume the
target shares with the notebook: a path on the notebook's disk is refused here, not discovered in a log.
The MLflow run must exist beforehand (as ``submit_training_job`` creates it): pass its id.
"""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from workbench.config import Settings
from workbench.errors import InvalidInput
from workbench.export import _pods
from workbench.export.target import ClusterTarget
from workbench.export.validate import RAY_API, validate_manifest
from workbench.training.jobs import ENTRYPOINT_MODULE, SPEC_FILE, job_env
from workbench.training.spec import TrainingSpec
from workbench.training.trainers import get_trainer

SPEC_MOUNT = "/workbench/spec"
SPEC_VOLUME = "workbench-spec"


@dataclass(frozen=True)
class RayJobExport:
    """The objects of one exported training job, in the order to apply them."""

    configmap: dict[str, Any]
    rayjob: dict[str, Any]

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [self.configmap, self.rayjob]


def _resolved(path: str) -> str:
    return path if not path or _pods.is_remote_uri(path) else str(Path(path).resolve())


def _runtime_env(spec: TrainingSpec, target: ClusterTarget, env: dict[str, str]) -> dict[str, Any]:
    runtime = dict(get_trainer(spec.trainer).runtime_env(spec))
    if spec.working_dir and _pods.is_remote_uri(spec.working_dir):
        runtime["working_dir"] = spec.working_dir  # the trainer resolves it as a local path
    for key in ("working_dir", "py_modules"):
        values = runtime.get(key)
        for value in (values if isinstance(values, list) else [values] if values else []):
            if not _pods.is_remote_uri(str(value)):
                raise InvalidInput(f"runtime_env {key} {value!r} is a folder on this machine; on a cluster Ray "
                                   "fetches code from a URI: upload it as a zip (s3://bucket/code.zip) and set "
                                   "working_dir to that URI")
    return {**runtime, "env_vars": env}


def rayjob_manifest(spec: TrainingSpec, target: ClusterTarget, *, run_id: str, experiment_id: str = "",
                    name: str = "", experiment: str = "fraud-detection", worker_memory_mib: int = 4096,
                    head_memory_mib: int = 4096, workers: int | None = None, ttl_seconds_after_finished: int = 600,
                    active_deadline_seconds: int | None = None) -> RayJobExport:
    """A validated RayJob (and the ConfigMap holding its spec) running ``spec`` on ``target``.

    ``run_id`` (and ``experiment_id``) name the MLflow run the job logs into, created beforehand.
    ``name`` defaults to a fresh job id (``workbench-train-<run>-<hex>``), also the Ray submission id.
    Workers: ``spec.num_workers`` pods (``workers`` overrides it, e.g. 0 for a custom trainer that
    trains in its driver) of ``ceil(cpus_per_worker)`` CPUs, one ``nvidia.com/gpu`` each with
    ``use_gpu``, ``worker_memory_mib`` MiB; the head holds the driver (its reserved CPUs/GPUs and
    ``memory_mb`` on top of ``head_memory_mib``).
    """
    if not isinstance(spec, TrainingSpec):
        raise InvalidInput(f"rayjob_manifest needs a TrainingSpec, got {type(spec).__name__}")
    if not isinstance(run_id, str) or not run_id:
        raise InvalidInput("rayjob_manifest needs the id of the MLflow run the job logs into (run_id)")
    checkpoint_dir = spec.checkpoint_dir or target.checkpoint_dir
    if not checkpoint_dir:
        raise InvalidInput("the job needs a checkpoint folder the cluster can write: set the spec's checkpoint_dir "
                           "or ClusterTarget.checkpoint_dir (a shared path)")
    resolved = {**spec.to_dict(), "experiment": spec.experiment or experiment,
                "frame_path": _resolved(spec.frame_path), "checkpoint_dir": _resolved(checkpoint_dir),
                "working_dir": _resolved(spec.working_dir)}
    _pods.check_shared(target, "the training frame (frame_path)", resolved["frame_path"])
    _pods.check_shared(target, "checkpoint_dir", resolved["checkpoint_dir"])
    name = name or f"workbench-train-{run_id[:8].lower()}-{secrets.token_hex(3)}"
    spec = TrainingSpec.from_dict(resolved)  # what the job will load: absolute paths, experiment filled in
    trainer = get_trainer(spec.trainer)
    tracking_uri = target.mlflow_uri
    remote = Settings(profile="cluster", mlflow_uri=tracking_uri)
    env = {**remote.engine_env(), **job_env(remote),
           **trainer.job_env(spec, run_id, experiment_id, tracking_uri)}
    for key, value in env.items():
        if value.startswith("/"):
            _pods.check_shared(target, f"environment variable {key}", value)
    runtime_env = _runtime_env(spec, target, env)
    driver = trainer.job_resources(spec)
    spec_path = f"{SPEC_MOUNT}/{SPEC_FILE}"
    entrypoint = " ".join(shlex.quote(a) for a in ["python", "-m", ENTRYPOINT_MODULE, "--spec", spec_path,
                                                   "--run-id", run_id, "--tracking-uri", tracking_uri,
                                                   "--job-id", name])
    configmap_name = f"{name}-spec"
    spec_volume = [{"name": SPEC_VOLUME, "configMap": {"name": configmap_name}}]
    spec_mount = [{"name": SPEC_VOLUME, "mountPath": SPEC_MOUNT, "readOnly": True}]
    head_cpus = _pods.whole(driver.get("num_cpus", 0.0))
    head_gpus = _pods.whole(driver.get("num_gpus", 0.0))
    head_params = {"dashboard-host": "0.0.0.0", "num-cpus": str(head_cpus)}
    if head_gpus:
        head_params["num-gpus"] = str(head_gpus)
    head = _pods.pod_template(target, "ray-head", cpus=max(1, head_cpus),
                              memory_mib=head_memory_mib + spec.memory_mb, gpus=head_gpus,
                              ports=_pods.HEAD_PORTS, extra_volumes=spec_volume, extra_mounts=spec_mount)
    count = spec.num_workers if workers is None else workers
    if not isinstance(count, int) or count < 0:
        raise InvalidInput(f"workers must be an integer >= 0, got {count!r}")
    worker_cpus = _pods.whole(spec.cpus_per_worker)
    worker = _pods.pod_template(target, "ray-worker", cpus=worker_cpus, memory_mib=worker_memory_mib,
                                gpus=1 if spec.use_gpu else 0, extra_volumes=spec_volume, extra_mounts=spec_mount)
    cluster: dict[str, Any] = {
        "rayVersion": target.ray_version,
        "headGroupSpec": {"rayStartParams": head_params, "template": head},
        "workerGroupSpecs": [{"groupName": "workers", "replicas": count, "minReplicas": count, "maxReplicas": count,
                              "rayStartParams": {"num-cpus": str(worker_cpus)}, "template": worker}],
    }
    job_spec: dict[str, Any] = {
        "entrypoint": entrypoint,
        "runtimeEnvYAML": yaml.safe_dump(runtime_env, sort_keys=True),
        "jobId": name,
        "metadata": {"workbench": "training", "mlflow_run_id": run_id, "experiment_id": experiment_id,
                     "epochs": str(trainer.total_steps(spec)), "kind": "sweep" if spec.sweep else "training",
                     "trainer": spec.trainer},
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": ttl_seconds_after_finished,
        "submissionMode": "K8sJobMode",
        "rayClusterSpec": cluster,
    }
    if driver.get("num_cpus"):
        job_spec["entrypointNumCpus"] = float(driver["num_cpus"])
    if driver.get("num_gpus"):
        job_spec["entrypointNumGpus"] = float(driver["num_gpus"])
    if active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = active_deadline_seconds
    if target.kueue_queue:
        job_spec["suspend"] = True  # Kueue owns it from here: it un-suspends the job on admission
    labels = {**target.labels, **_pods.MANAGED_BY, "workbench/mlflow-run": run_id[:63].lower(),
              **target.queue_labels}
    metadata = {"name": name, "namespace": target.namespace, "labels": labels}
    configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {**metadata, "name": configmap_name,
                              "labels": {**target.labels, **_pods.MANAGED_BY}},
                 "data": {SPEC_FILE: spec.to_json()}}
    rayjob = {"apiVersion": RAY_API, "kind": "RayJob", "metadata": metadata, "spec": job_spec}
    validate_manifest(configmap)
    validate_manifest(rayjob)
    return RayJobExport(configmap=configmap, rayjob=rayjob)
