"""`workbench export rayjob | kueue | rayservice`: write manifests into a folder.

``register_cli(subparsers)`` adds the ``export`` command to the workbench parser; the handler it sets
(``args.export_handler``) takes ``(settings, args)`` like every other command, so ``workbench.cli``
dispatches it with ``COMMANDS["export"] = run_export``. The cluster's facts come from a ClusterTarget
file (YAML or JSON, the fields of :class:`~workbench.export.target.ClusterTarget`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from workbench.config import Settings
from workbench.errors import InvalidInput
from workbench.export.files import write_manifests
from workbench.export.kueue import GpuPool, kueue_manifests
from workbench.export.target import ClusterTarget


def _read_mapping(path: str, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"cannot read the {what} {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"the {what} {path} must hold a mapping")
    return data


def load_target(path: str) -> ClusterTarget:
    data = _read_mapping(path, "cluster target")
    try:
        return ClusterTarget(**data)
    except TypeError as exc:
        raise InvalidInput(f"the cluster target {path}: {exc}") from exc


def _rayjob(settings: Settings, args: argparse.Namespace) -> list[dict[str, Any]]:
    from workbench.export.rayjob import rayjob_manifest
    from workbench.training.spec import TrainingSpec

    export = rayjob_manifest(TrainingSpec.load(args.spec), load_target(args.target), run_id=args.run_id,
                             experiment_id=args.experiment_id, name=args.name or "", experiment=settings.experiment)
    return export.objects


def _kueue(settings: Settings, args: argparse.Namespace) -> list[dict[str, Any]]:
    data = _read_mapping(args.pool, "GPU pool") if args.pool else {}
    try:
        return kueue_manifests(GpuPool(**data))
    except TypeError as exc:
        raise InvalidInput(f"the GPU pool {args.pool}: {exc}") from exc


def _rayservice(settings: Settings, args: argparse.Namespace) -> list[dict[str, Any]]:
    from workbench.export.rayservice import rayservice_manifest

    app = json.loads(Path(args.app_config).read_text()) if args.app_config.endswith(".json") else \
        _read_mapping(args.app_config, "Serve application config")
    return [rayservice_manifest(app, load_target(args.target), name=args.name or "")]


def register_cli(subparsers: Any) -> Any:
    """Add ``export`` (with ``rayjob``, ``kueue``, ``rayservice``) to the workbench's subparsers.

    Returns the export command's own subparsers, so other exporters (argo, kfp) add theirs there with
    ``set_defaults(export_handler=...)``; a handler returns the manifests to validate and write, or an
    exit status when it wrote its files itself.
    """
    export = subparsers.add_parser("export", help="write Kubernetes manifests (RayJob, Kueue, RayService)")
    kinds = export.add_subparsers(dest="export_kind", required=True)
    rayjob = kinds.add_parser("rayjob", help="a training spec as a KubeRay RayJob (+ its spec ConfigMap)")
    rayjob.add_argument("--spec", required=True, help="a TrainingSpec JSON file")
    rayjob.add_argument("--run-id", required=True, help="the MLflow run the job logs into (created beforehand)")
    rayjob.add_argument("--experiment-id", default="")
    rayjob.set_defaults(export_handler=_rayjob)
    kueue = kinds.add_parser("kueue", help="ResourceFlavor, ClusterQueue, LocalQueues, WorkloadPriorityClasses")
    kueue.add_argument("--pool", help="a YAML/JSON file of GpuPool fields (default: an 8-GPU pool)")
    kueue.set_defaults(export_handler=_kueue)
    service = kinds.add_parser("rayservice", help="a Serve application config as a KubeRay RayService")
    service.add_argument("--app-config", required=True, help="the application config (JSON or YAML)")
    service.set_defaults(export_handler=_rayservice)
    for sub in (rayjob, service):
        sub.add_argument("--target", required=True, help="a YAML/JSON file of ClusterTarget fields")
        sub.add_argument("--name", help="the object's name (default: derived)")
    for sub in (rayjob, kueue, service):
        sub.add_argument("-o", "--out", required=True, help="the folder to write the YAML files into")
    return kinds


def run_export(settings: Settings, args: argparse.Namespace) -> int:
    """Build, validate and write the manifests; prints one line per file."""
    result = args.export_handler(settings, args)
    if isinstance(result, int):
        return result
    paths = write_manifests(result, args.out)
    for path in paths:
        print(path)
    return 0
