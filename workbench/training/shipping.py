"""What a job needs on a cluster that shares no disk with the notebook: its frame in the bucket, its code shipped.

On a local head the job reads the notebook's files and imports the notebook's ``workbench``. On a cluster
(``profile = "cluster"``) neither holds: the job's Python is the cluster image's, and with
``storage = "s3"`` (``Settings.state_in_bucket``) the only place both sides see is the bucket. So:

- a local training frame is copied into ``<bucket>/frames/<content hash>/`` once (the same frame submitted
  again is not copied again) and the job gets that ``s3://`` URI;
- this process's ``workbench`` package travels in the job's ``runtime_env`` (``py_modules``,
  :mod:`workbench.runtime_env`): the job runs the same code as the notebook, whatever version the image holds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from workbench import locations
from workbench.config import Settings
from workbench.errors import InvalidInput

_CHUNK = 1 << 20


def _frame_files(frame: Path) -> list[tuple[str, str]]:
    """``(local file, name in the bucket)`` of a Parquet file or folder (hidden and ``_`` files left out, as
    pyarrow's dataset reader leaves them out)."""
    if frame.is_file():
        return [(str(frame), frame.name)]
    files = sorted(p for p in frame.rglob("*") if p.is_file()
                   and not any(part.startswith((".", "_")) for part in p.relative_to(frame).parts))
    if not files:
        raise InvalidInput(f"the training frame {frame} holds no files")
    return [(str(p), p.relative_to(frame).as_posix()) for p in files]


def _digest(files: list[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for local, name in files:
        digest.update(name.encode() + b"\0")
        with open(local, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()[:32]


def frame_for_cluster(settings: Settings, frame_path: str) -> str:
    """The location the job reads the frame from: a URI as it is; a local frame, when run state lives in the
    bucket, copied there by content (``s3://.../frames/<hash>/...``); otherwise its absolute path."""
    if not frame_path or locations.is_remote(frame_path):
        return frame_path
    local = Path(frame_path).resolve()
    if not settings.state_in_bucket:
        return str(local)
    if not local.exists():
        raise InvalidInput(f"frame_path {local} does not exist: build the training frame first")
    from workbench.storage import copy_into_bucket

    files = _frame_files(local)
    target = locations.join(settings.frames_location, _digest(files))
    copy_into_bucket(settings, files, target)
    return locations.join(target, local.name) if local.is_file() else target


