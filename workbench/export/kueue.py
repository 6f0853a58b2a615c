"""The Kueue objects a platform team creates once for a GPU pool, so RayJobs can queue for it.

One ``ResourceFlavor`` describes the pool's nodes (their labels; the tolerations Kueue adds to admitted
pods), one ``ClusterQueue`` holds the pool's CPU, memory and GPU quotas, a ``LocalQueue`` per namespace
lets that namespace's jobs queue there (the RayJob's ``kueue.x-k8s.io/queue-name``), and
``WorkloadPriorityClass`` objects order waiting jobs (``kueue.x-k8s.io/priority-class``). The API is
``kueue.x-k8s.io/v1beta2``, the version Kueue 0.19 stores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import InvalidInput
from workbench.export._pods import MANAGED_BY
from workbench.export.validate import KUEUE_API, validate_manifest

GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class GpuPool:
    """A pool of GPU nodes and its quotas (Kubernetes quantities: ``"64"``, ``"256Gi"``, GPUs whole).

    ``namespaces`` get a LocalQueue named ``local_queue`` each; ``priority_classes`` maps names to
    values (higher runs first; with ``preemption`` "LowerPriority" a higher one may evict a lower one).
    """

    name: str = "gpu-pool"
    cpu: str = "64"
    memory: str = "256Gi"
    gpus: int = 8
    node_labels: Mapping[str, str] = field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    tolerations: Sequence[Mapping[str, Any]] = (
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)
    namespaces: Sequence[str] = ("default",)
    local_queue: str = "training"
    priority_classes: Mapping[str, int] = field(default_factory=lambda: {"training-high": 1000,
                                                                          "training-low": 100})
    preemption: str = "LowerPriority"
    cohort: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int) or self.gpus < 0:
            raise InvalidInput(f"GpuPool.gpus must be a whole number >= 0, got {self.gpus!r}")
        if self.preemption not in ("Never", "LowerPriority", "LowerOrNewerEqualPriority"):
            raise InvalidInput(f"GpuPool.preemption must be Never, LowerPriority or LowerOrNewerEqualPriority, "
                               f"got {self.preemption!r}")
        if not self.namespaces:
            raise InvalidInput("GpuPool.namespaces must name at least one namespace (each gets a LocalQueue)")


def kueue_manifests(pool: GpuPool) -> list[dict[str, Any]]:
    """The validated objects, in the order to apply them (flavor and priorities before the queues)."""
    labels = dict(MANAGED_BY)
    flavor: dict[str, Any] = {"apiVersion": KUEUE_API, "kind": "ResourceFlavor",
                              "metadata": {"name": pool.name, "labels": labels},
                              "spec": {"nodeLabels": dict(pool.node_labels),
                                       "tolerations": [dict(t) for t in pool.tolerations]}}
    if not pool.tolerations:
        del flavor["spec"]["tolerations"]
    quotas = [("cpu", pool.cpu), ("memory", pool.memory), (GPU_RESOURCE, str(pool.gpus))]
    queue_spec: dict[str, Any] = {
        "namespaceSelector": {},  # every namespace that has a LocalQueue pointing here
        "queueingStrategy": "BestEffortFIFO",
        "preemption": {"withinClusterQueue": pool.preemption},
        "resourceGroups": [{"coveredResources": [r for r, _ in quotas],
                            "flavors": [{"name": pool.name,
                                         "resources": [{"name": r, "nominalQuota": q} for r, q in quotas]}]}],
    }
    if pool.cohort:
        queue_spec["cohortName"] = pool.cohort
    cluster_queue = {"apiVersion": KUEUE_API, "kind": "ClusterQueue", "metadata": {"name": pool.name, "labels": labels},
                     "spec": queue_spec}
    priorities = [{"apiVersion": KUEUE_API, "kind": "WorkloadPriorityClass",
                   "metadata": {"name": name, "labels": labels}, "value": value,
                   "description": f"workbench jobs at priority {value}"}
                  for name, value in sorted(pool.priority_classes.items())]
    local_queues = [{"apiVersion": KUEUE_API, "kind": "LocalQueue",
                     "metadata": {"name": pool.local_queue, "namespace": namespace, "labels": labels},
                     "spec": {"clusterQueue": pool.name}} for namespace in pool.namespaces]
    objects = [flavor, *priorities, cluster_queue, *local_queues]
    for manifest in objects:
        validate_manifest(manifest)
    return objects


_SUFFIXES = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
             "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60}


def parse_quantity(value: Any) -> float:
    """A Kubernetes quantity as a number (``"500m"`` -> 0.5, ``"4Gi"`` -> 4294967296)."""
    text = str(value).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            number, scale = text[: -len(suffix)], _SUFFIXES[suffix]
            break
    else:
        number, scale = text, 1.0
    try:
        return float(number) * scale
    except ValueError as exc:
        raise InvalidInput(f"{value!r} is not a Kubernetes quantity") from exc


def rayjob_requests(rayjob: Mapping[str, Any]) -> dict[str, float]:
    """What Kueue counts for a RayJob: the requests (else limits) of the head and of every worker replica."""
    cluster = rayjob["spec"]["rayClusterSpec"]
    pods = [(cluster["headGroupSpec"]["template"], 1)]
    pods += [(g["template"], int(g.get("replicas", g.get("minReplicas", 0))))
             for g in cluster.get("workerGroupSpecs") or []]
    total: dict[str, float] = {}
    for template, count in pods:
        for container in template["spec"]["containers"]:
            resources = container.get("resources") or {}
            wanted = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
            for name, quantity in wanted.items():
                total[name] = total.get(name, 0.0) + count * parse_quantity(quantity)
    return total


def check_job_fits(rayjob: Mapping[str, Any], pool: GpuPool) -> None:
    """InvalidInput when a RayJob asks for more than the pool's whole quota: Kueue would never admit it
    (it waits in the queue forever, without an error on the RayJob)."""
    quotas = {"cpu": parse_quantity(pool.cpu), "memory": parse_quantity(pool.memory), GPU_RESOURCE: float(pool.gpus)}
    for name, needed in rayjob_requests(rayjob).items():
        if name in quotas and needed > quotas[name] + 1e-9:
            raise InvalidInput(f"RayJob {rayjob['metadata']['name']} needs {needed:g} {name} in all, more than the "
                               f"ClusterQueue {pool.name} can ever admit ({quotas[name]:g}): Kueue would keep it "
                               "waiting; use fewer or smaller workers, or a larger quota")
