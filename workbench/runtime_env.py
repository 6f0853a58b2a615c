"""The code a Ray job or a Serve application runs on a cluster: this process's ``workbench``, shipped.

On a local head, jobs and replicas import the very files the notebook imports. A cluster's image holds
whatever ``workbench`` it was built with, or none; so in any other profile the package travels in the
``runtime_env`` (``py_modules``), and the cluster runs the notebook's code:

- a job's ``runtime_env`` may name the local folder: Ray's job client uploads it (once per content hash);
- a Serve config accepts remote URIs only, so the package is zipped here and uploaded to the cluster's own
  package store through the dashboard's package API (``/api/packages/gcs/...``, the endpoint Ray's job client
  uploads through), once per content hash. It stays there while an application uses it.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import requests

import workbench
from workbench.config import Settings
from workbench.errors import ServiceUnavailable

#: Left out of the shipped package: caches, and the JupyterLab front end and templates (no job imports them).
PACKAGE_EXCLUDES = ["__pycache__", "*.pyc", "labextension", "templates"]
_SKIP_PARTS = {"__pycache__", "labextension", "templates"}


def package_dir() -> Path:
    return Path(workbench.__file__).parent


def code_runtime_env(settings: Settings) -> dict[str, Any]:
    """``runtime_env`` keys that ship this process's ``workbench`` in a job (none on a local head)."""
    if settings.profile == "local":
        return {}
    return {"py_modules": [str(package_dir())], "excludes": list(PACKAGE_EXCLUDES)}


def _package_files() -> list[Path]:
    root = package_dir()
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".pyc"
                  and not _SKIP_PARTS.intersection(p.relative_to(root).parts))


def package_zip() -> tuple[str, bytes]:
    """(content hash, zip bytes) of the package, ``workbench/...`` at the top as ``py_modules`` expects."""
    root = package_dir()
    files = _package_files()
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.writestr(zipfile.ZipInfo(f"workbench/{path.relative_to(root).as_posix()}",
                                             date_time=(2020, 1, 1, 0, 0, 0)), path.read_bytes())
    return digest.hexdigest()[:32], buffer.getvalue()


def serve_runtime_env(settings: Settings) -> dict[str, Any]:
    """``runtime_env`` keys for a Serve application: the package's ``gcs://`` URI on the cluster, uploaded
    unless the cluster holds it already (none on a local head)."""
    if settings.profile == "local":
        return {}
    digest, content = package_zip()
    name = f"_ray_pkg_workbench_{digest}.zip"
    url = f"{settings.ray_address.rstrip('/')}/api/packages/gcs/{name}"
    try:
        found = requests.get(url, timeout=settings.request_timeout_s)
        if found.status_code == 404:
            stored = requests.put(url, data=content, timeout=max(60.0, settings.request_timeout_s))
            if stored.status_code != 200:
                raise ServiceUnavailable(f"Ray at {settings.ray_address} refused the workbench package "
                                         f"({stored.status_code}): {stored.text[:300]}")
        elif found.status_code != 200:
            raise ServiceUnavailable(f"Ray at {settings.ray_address} could not say whether it holds the workbench "
                                     f"package ({found.status_code}): {found.text[:300]}")
    except requests.RequestException as exc:
        raise ServiceUnavailable(f"Ray at {settings.ray_address} is not answering: {exc}") from exc
    return {"py_modules": [f"gcs://{name}"]}
