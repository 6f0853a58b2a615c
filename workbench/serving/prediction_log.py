"""The prediction log: every served prediction, appended by the replica that served it.

Each replica process appends JSON lines to a file of its own (``<deployment>/<replica>-<pid>.jsonl``),
so replicas never contend for a file and a restarted replica starts a new one. A batch is written with
one ``os.write`` on an ``O_APPEND`` descriptor *before* its responses leave the replica: a prediction a
client has received is in the kernel's page cache, and survives the replica being killed. A line cut
short by a kill belongs to a request that was never answered; readers skip it.

:func:`workbench.monitoring.read_log` (and every monitoring function) reads the folder directly.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def log_dir(settings: Settings, deployment: str) -> Path:
    """The folder holding ``deployment``'s prediction log."""
    return settings.predictions_dir / _SAFE.sub("_", deployment)


class PredictionLogWriter:
    """Appends prediction records (dicts of JSON-able values) for one replica process."""

    def __init__(self, folder: Path, writer_id: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{_SAFE.sub('_', writer_id)}-{os.getpid()}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.written = 0

    def append(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Write ``records`` in one system call; returns how many. Raises if the disk refuses."""
        lines = [json.dumps(record, separators=(",", ":"), allow_nan=False) for record in records]
        if not lines:
            return 0
        data = ("\n".join(lines) + "\n").encode()
        view = memoryview(data)
        while view:  # a regular file takes it all at once; the loop only guards a short write
            done = os.write(self._fd, view)
            view = view[done:]
        self.written += len(lines)
        return len(lines)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def read_predictions(settings: Settings, deployment: str, columns: list[str] | None = None) -> pd.DataFrame:
    """The whole prediction log of ``deployment`` as a DataFrame (oldest first)."""
    from workbench.monitoring import read_log

    folder = log_dir(settings, deployment)
    if not folder.is_dir() or not any(folder.glob("*.jsonl")):
        raise NotFound(f"no predictions logged for deployment {deployment!r} yet (looked in {folder})")
    frame = read_log(folder, columns)
    if "timestamp" in frame.columns:
        frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return frame


def check_deployment_name(name: str) -> str:
    """Deployment names become URL paths and file names: keep them simple."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name):
        raise InvalidInput(f"deployment name {name!r} must be 1-63 lower-case letters, digits or '-', starting and "
                           "ending with a letter or digit (it becomes a URL path and a Kubernetes name)")
    return name
