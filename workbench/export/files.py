"""Writing manifests: validated first, one YAML file per object, named so ``kubectl apply -f <folder>``
applies them in a working order (files sort as written)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import InvalidInput
from workbench.export.validate import validate_manifest


class _PlainDumper(yaml.SafeDumper):
    """No anchors and aliases: every object reads on its own, as kubectl and reviewers expect."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(manifest: Mapping[str, Any]) -> str:
    return yaml.dump(dict(manifest), Dumper=_PlainDumper, sort_keys=False)


def manifest_filename(index: int, manifest: Mapping[str, Any]) -> str:
    kind = str(manifest.get("kind", "object")).lower()
    name = str((manifest.get("metadata") or {}).get("name", "unnamed"))
    namespace = (manifest.get("metadata") or {}).get("namespace")
    return f"{index:02d}-{kind}-{namespace + '-' if namespace else ''}{name}.yaml"


def write_manifests(manifests: Iterable[Mapping[str, Any]], folder: str | Path) -> list[Path]:
    """Validate every manifest, then write each to ``folder`` (created); returns the paths in order.

    Nothing is written unless all of them pass, so a folder never holds half an export.
    """
    objects = [dict(m) for m in manifests]
    if not objects:
        raise InvalidInput("nothing to write: no manifests")
    for manifest in objects:
        validate_manifest(manifest)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, manifest in enumerate(objects):
        path = out / manifest_filename(i, manifest)
        path.write_text(to_yaml(manifest))
        paths.append(path)
    return paths


def read_manifests(folder: str | Path) -> list[dict[str, Any]]:
    """The manifests of a folder written by :func:`write_manifests`, in order."""
    return [yaml.safe_load(p.read_text()) for p in sorted(Path(folder).glob("*.yaml"))]
