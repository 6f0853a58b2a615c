"""Pod templates shared by the RayJob and RayService exporters: sizing, placement, env, volumes."""

from __future__ import annotations

import copy
import math
import re
from typing import Any

from workbench.errors import InvalidInput
from workbench.export.target import ClusterTarget

MANAGED_BY = {"app.kubernetes.io/managed-by": "workbench"}
HEAD_PORTS = [{"containerPort": 6379, "name": "gcs-server"}, {"containerPort": 8265, "name": "dashboard"},
              {"containerPort": 10001, "name": "client"}]
SERVE_PORT = {"containerPort": 8000, "name": "serve"}
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_remote_uri(value: str) -> bool:
    """A URI a pod can fetch by itself (s3://, gs://, https://, …); ``file://`` is the notebook's disk."""
    return bool(_URI.match(value)) and not value.lower().startswith("file://")


def cpu_quantity(cpus: float) -> str:
    return str(int(cpus)) if float(cpus).is_integer() else f"{int(math.ceil(cpus * 1000))}m"


def whole(value: float) -> int:
    return int(math.ceil(value - 1e-9))


def check_shared(target: ClusterTarget, what: str, value: str) -> None:
    """A path the pods read must be a URI or lie on a volume the target shares with the notebook."""
    if not value or is_remote_uri(value):
        return
    if value.startswith("/") and target.shared_volume_for(value) is not None:
        return
    shared = [v.mount_path for v in target.shared_volumes] or "none declared"
    raise InvalidInput(f"{what} {value!r} is a path on this machine, which the cluster's pods cannot read: use a URI "
                       f"(s3://bucket/...) or a path on a volume the ClusterTarget shares (shared_volumes: {shared})")


def container_env(target: ClusterTarget) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(target.env.items())]
    env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
            for k, ref in sorted(target.secrets.items())]
    return env


def pod_template(target: ClusterTarget, container: str, *, cpus: float, memory_mib: int, gpus: int = 0,
                 ports: list[dict[str, Any]] | None = None, extra_volumes: list[dict[str, Any]] | None = None,
                 extra_mounts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One Ray node's pod: requests equal limits (Ray sizes itself from the limits), GPUs as
    ``nvidia.com/gpu`` limits, placed on the GPU pool (selector and tolerations) only when it has GPUs."""
    limits: dict[str, Any] = {"cpu": cpu_quantity(cpus), "memory": f"{memory_mib}Mi"}
    if gpus:
        limits["nvidia.com/gpu"] = gpus
    volumes = [{"name": f"shared-{i}", "persistentVolumeClaim": {"claimName": v.claim_name, "readOnly": v.read_only}}
               for i, v in enumerate(target.shared_volumes)] + copy.deepcopy(list(extra_volumes or []))
    mounts = [{"name": f"shared-{i}", "mountPath": v.mount_path, "readOnly": v.read_only}
              for i, v in enumerate(target.shared_volumes)] + copy.deepcopy(list(extra_mounts or []))
    spec_container: dict[str, Any] = {
        "name": container,
        "image": target.image,
        "resources": {"requests": {"cpu": limits["cpu"], "memory": limits["memory"]}, "limits": limits},
    }
    env = container_env(target)
    if env:
        spec_container["env"] = env
    if ports:
        spec_container["ports"] = ports
    if mounts:
        spec_container["volumeMounts"] = mounts
    pod: dict[str, Any] = {"containers": [spec_container]}
    selector = {**target.node_selector, **(target.gpu_node_selector if gpus else {})}
    tolerations = [*target.tolerations, *(target.gpu_tolerations if gpus else ())]
    if selector:
        pod["nodeSelector"] = selector
    if tolerations:
        pod["tolerations"] = [dict(t) for t in tolerations]
    if volumes:
        pod["volumes"] = volumes
    if target.service_account:
        pod["serviceAccountName"] = target.service_account
    return {"metadata": {"labels": {**target.labels, **MANAGED_BY}}, "spec": pod}
