"""Per-epoch metrics handed from workers and trials to the job driver as small JSON files.

Workers do not talk to MLflow: rank 0 (or a Tune trial) writes ``epoch_00007.json`` into a stream
folder *after* ``report`` returned, i.e. after the checkpoint is persisted; the driver's
:class:`~workbench.training.relay.MetricRelay` copies new files into MLflow. That keeps one MLflow
writer per job, spares every worker process the MLflow client's start-up cost, and makes resuming
exact: a step is logged only if its checkpoint exists, and a stopped job's unlogged files are logged
by the next one. Files are written whole (:func:`workbench.locations.write_bytes`), so a reader never sees
half; a stream is a local folder or, on a cluster that shares no disk with the notebook, an ``s3://`` prefix.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from workbench import locations

STREAM_FILE = "stream.json"  # what the stream is (a trial's params), written first
STATUS_FILE = "status.json"  # how it ended, written last
_EPOCH_FILE = re.compile(r"^epoch_(\d{5,})\.json$")


def write_json(path: str | Path, payload: dict[str, Any]) -> None:
    locations.write_text(path, json.dumps(payload, allow_nan=False))


def write_epoch_metrics(stream: str | Path, epoch: int, metrics: dict[str, float]) -> None:
    """Record one epoch's metrics (NaN values, e.g. an undefined AUC, are left out)."""
    finite = {k: float(v) for k, v in metrics.items() if not math.isnan(float(v))}
    write_json(locations.join(stream, f"epoch_{epoch:05d}.json"), {"epoch": epoch, "metrics": finite})


def read_epoch_metrics(stream: str | Path) -> list[tuple[int, dict[str, float]]]:
    """All epochs recorded in ``stream``, in epoch order (none when the stream does not exist yet)."""
    found = []
    for name in locations.list_names(stream):
        match = _EPOCH_FILE.match(name)
        if match:
            payload = json.loads(locations.read_text(locations.join(stream, name)))
            found.append((int(match.group(1)), dict(payload["metrics"])))
    return sorted(found, key=lambda item: item[0])


def read_json(path: str | Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(locations.read_text(path)))
    except FileNotFoundError:
        return None
