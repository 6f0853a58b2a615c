"""Where exported manifests run: the cluster-side facts a platform team knows and the notebook does not.

A :class:`ClusterTarget` is passed to every exporter instead of growing :class:`~workbench.config.Settings`:
node selectors, tolerations, queues, the in-cluster service addresses, the volumes shared with the
notebook and the Kubernetes Secrets that hold credentials are properties of one cluster, and a team may
export the same job for two clusters. Nothing here is a secret: a secret is named by the Secret and key
that hold it (:class:`SecretRef`), and only that reference is ever written into a manifest.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import InvalidInput
from workbench.secrets import split_credentials


def _ray_version() -> str:
    try:
        return importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - ray is a dependency
        return ""


@dataclass(frozen=True)
class SecretRef:
    """A key of a Kubernetes Secret, handed to containers as ``env[].valueFrom.secretKeyRef``."""

    name: str
    key: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or not isinstance(self.key, str) or not self.key:
            raise InvalidInput(f"a secret reference needs a Secret name and a key, got {self.name!r}/{self.key!r}")


@dataclass(frozen=True)
class SharedVolume:
    """A volume mounted at the same path in the notebook and in every pod (NFS, a ReadWriteMany PVC).

    A spec's local paths are acceptable in a manifest only below such a mount: the pod then sees the
    same file the notebook wrote.
    """

    mount_path: str
    claim_name: str
    read_only: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.mount_path, str) or not self.mount_path.startswith("/"):
            raise InvalidInput(f"SharedVolume.mount_path must be an absolute path, got {self.mount_path!r}")
        object.__setattr__(self, "mount_path", self.mount_path.rstrip("/") or "/")
        if not isinstance(self.claim_name, str) or not self.claim_name:
            raise InvalidInput("SharedVolume.claim_name must name a PersistentVolumeClaim")

    def holds(self, path: str) -> bool:
        return path == self.mount_path or path.startswith(self.mount_path.rstrip("/") + "/")


@dataclass(frozen=True)
class ClusterTarget:
    """One Kubernetes cluster that runs the workbench's engines (KubeRay, Kueue or Volcano, KServe).

    - ``image``: the container image of head and workers; it must hold ``workbench`` and Ray
      ``ray_version`` (default: the Ray installed here, so the job runs what was tested).
    - ``namespace`` / ``service_account``: where the objects live and who their pods run as.
    - ``mlflow_uri``: the tracking server *as pods reach it* (a Service name, never 127.0.0.1).
    - ``node_selector`` / ``tolerations``: for every pod; ``gpu_node_selector`` / ``gpu_tolerations``
      are added to pods that ask for ``nvidia.com/gpu`` (the GPU pool is usually tainted).
    - ``kueue_queue`` / ``kueue_priority_class``: a Kueue LocalQueue and WorkloadPriorityClass; the
      RayJob is labelled for them and created suspended (Kueue un-suspends it on admission).
    - ``volcano_queue`` / ``volcano_priority_class``: instead of Kueue, a Volcano queue (the KubeRay
      operator must run with ``--batch-scheduler=volcano``); a target uses one queueing system at most.
    - ``shared_volumes``: volumes mounted at the same path as in the notebook (see :class:`SharedVolume`).
    - ``secrets``: environment variable name -> :class:`SecretRef`, e.g.
      ``{"AWS_SECRET_ACCESS_KEY": SecretRef("s3-credentials", "secret-key")}``.
    - ``env``: further plain (non-secret) variables for every container, e.g. ``AWS_ENDPOINT_URL``.
    - ``checkpoint_dir``: where jobs write checkpoints when the spec does not say (a shared path).
    - ``labels``: added to every object (e.g. a team or cost-centre label).
    """

    image: str
    mlflow_uri: str
    namespace: str = "default"
    service_account: str = ""
    ray_version: str = field(default_factory=_ray_version)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    gpu_node_selector: Mapping[str, str] = field(default_factory=dict)
    gpu_tolerations: Sequence[Mapping[str, Any]] = (
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)
    kueue_queue: str = ""
    kueue_priority_class: str = ""
    volcano_queue: str = ""
    volcano_priority_class: str = ""
    shared_volumes: Sequence[SharedVolume] = ()
    secrets: Mapping[str, SecretRef] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    checkpoint_dir: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("image", "mlflow_uri", "namespace"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise InvalidInput(f"ClusterTarget.{name} must be a non-empty string")
        if split_credentials(self.mlflow_uri)[0] != self.mlflow_uri:  # never quote them back in the message
            raise InvalidInput("ClusterTarget.mlflow_uri carries credentials (user:password@), which every manifest "
                               "would show in plain text: give the URI without them and the credentials from a "
                               "Secret, secrets={'MLFLOW_TRACKING_USERNAME': SecretRef(...), "
                               "'MLFLOW_TRACKING_PASSWORD': SecretRef(...)}")
        if self.kueue_queue and self.volcano_queue:
            raise InvalidInput("a ClusterTarget queues with Kueue or with Volcano, not both: set kueue_queue or "
                               "volcano_queue")
        if self.kueue_priority_class and not self.kueue_queue:
            raise InvalidInput("ClusterTarget.kueue_priority_class needs kueue_queue (Kueue ignores a priority "
                               "class on a job it does not queue)")
        if self.volcano_priority_class and not self.volcano_queue:
            raise InvalidInput("ClusterTarget.volcano_priority_class needs volcano_queue")
        object.__setattr__(self, "node_selector", dict(self.node_selector))
        object.__setattr__(self, "gpu_node_selector", dict(self.gpu_node_selector))
        object.__setattr__(self, "tolerations", tuple(dict(t) for t in self.tolerations))
        object.__setattr__(self, "gpu_tolerations", tuple(dict(t) for t in self.gpu_tolerations))
        volumes = tuple(v if isinstance(v, SharedVolume) else SharedVolume(**v) for v in self.shared_volumes)
        object.__setattr__(self, "shared_volumes", volumes)
        secrets = {k: v if isinstance(v, SecretRef) else SecretRef(**v) for k, v in dict(self.secrets).items()}
        object.__setattr__(self, "secrets", secrets)
        overlap = sorted(set(secrets) & set(self.env))
        if overlap:
            raise InvalidInput(f"ClusterTarget: {overlap} are both in env and in secrets; a secret goes in "
                               "secrets only")
        object.__setattr__(self, "env", dict(self.env))
        object.__setattr__(self, "labels", dict(self.labels))

    @property
    def queue_labels(self) -> dict[str, str]:
        """The labels that put a RayJob/RayCluster into this target's queue (none without a queue)."""
        if self.kueue_queue:
            out = {"kueue.x-k8s.io/queue-name": self.kueue_queue}
            if self.kueue_priority_class:
                out["kueue.x-k8s.io/priority-class"] = self.kueue_priority_class
            return out
        if self.volcano_queue:
            out = {"ray.io/scheduler-name": "volcano", "volcano.sh/queue-name": self.volcano_queue}
            if self.volcano_priority_class:
                out["ray.io/priority-class-name"] = self.volcano_priority_class
            return out
        return {}

    def shared_volume_for(self, path: str) -> SharedVolume | None:
        return next((v for v in self.shared_volumes if v.holds(path)), None)
