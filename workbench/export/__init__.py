"""What a Kubernetes cluster applies: KubeRay RayJobs (queued by Kueue or Volcano) and RayServices,
the Kueue objects of a GPU pool, Argo/KFP pipelines; validated before they are written (see
:mod:`.validate`), and checkable against the real CRDs offline (:mod:`.crd_schema`). Generating them
needs no cluster.

The names below are imported on first use, so importing one exporter (``workbench.export.argo``)
does not pay for the others' imports (the training spec, Ray's job client, MLflow).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.export.files import read_manifests, write_manifests
    from workbench.export.kueue import GpuPool, check_job_fits, kueue_manifests
    from workbench.export.rayjob import RayJobExport, rayjob_manifest
    from workbench.export.rayservice import rayservice_manifest
    from workbench.export.target import ClusterTarget, SecretRef, SharedVolume
    from workbench.export.validate import OPERATOR_RULES, validate_manifest

_WHERE = {
    "read_manifests": "files", "write_manifests": "files", "GpuPool": "kueue", "kueue_manifests": "kueue",
    "check_job_fits": "kueue",
    "RayJobExport": "rayjob", "rayjob_manifest": "rayjob", "rayservice_manifest": "rayservice",
    "ClusterTarget": "target", "SecretRef": "target", "SharedVolume": "target", "OPERATOR_RULES": "validate",
    "validate_manifest": "validate",
}
__all__ = ["OPERATOR_RULES", "ClusterTarget", "GpuPool", "RayJobExport", "SecretRef", "SharedVolume",
           "check_job_fits", "kueue_manifests", "rayjob_manifest", "rayservice_manifest", "read_manifests",
           "validate_manifest", "write_manifests"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench.export' has no attribute {name!r}")
    return getattr(importlib.import_module(f"workbench.export.{module}"), name)
