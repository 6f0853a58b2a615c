"""The prediction log: every served prediction, appended by the replica that served it.

One row per answered instance, for any model (:func:`log_record`): ``request_id``, ``timestamp`` (UTC, when
it was served), ``deployment``, ``model_version``, ``latency_ms``, ``event_timestamp`` (the request's
time), ``task`` (binary / multiclass / regression, or null for a model served as its signature says), the
task's outputs (binary ``score`` and ``predicted_label``; multiclass ``predicted_label`` and
``probabilities`` {class: p}; otherwise ``prediction``) and one column per input: the request's fields
and every model input, looked-up features included. The predicted class is ``predicted_label`` because
``label`` is the ground truth that arrives later and is joined on ``request_id``. An input whose name
is one of these bookkeeping columns is stored as ``input:<name>``.

Each replica process appends JSON lines to a file of its own (``<deployment>/<replica>-<pid>-<n>.jsonl``),
so replicas never contend for a file and a restarted replica starts a new one. A batch is written with
one ``os.write`` on an ``O_APPEND`` descriptor *before* its responses leave the replica: a prediction a
client has received is in the kernel's page cache, and survives the replica being killed. A line cut
short by a kill belongs to a request that was never answered; readers skip it and count it.

The log rotates and compacts: a writer starts segment ``n+1`` when segment ``n`` holds ``segment_bytes``
or is ``segment_age_s`` old, and converts the closed segment to ``<same name>.parquet`` in a background
thread (:func:`compact_segment`). Lines that do not parse go to ``<same name>.rejected`` rather than being
dropped, and monitoring counts them. Readers take a segment's Parquet file once it exists and its JSON
lines until then, so the log stays readable, without duplicates, while it is written and compacted; the
superseded JSON lines are deleted a grace period later (:func:`compact_log`), after any reader that
listed them before the Parquet file appeared has finished.

On a cluster whose nodes share no disk with the notebook (``Settings.state_in_bucket``) the log lives in the
bucket instead: a replica appends to a spool folder on its own node, as above, and *ships* each closed
segment's Parquet file (and its rejected lines) to ``<bucket>/predictions/<deployment>/``, deleting the local
copy once the upload is complete. A timer closes segments on age even when no request comes, so a quiet
deployment's last predictions still reach the bucket within ``segment_age_s``. Segments are immutable once
shipped, so a reader keeps a local mirror and fetches only the objects it has not seen (:func:`mirror_log`).

:func:`workbench.monitoring.read_log` (and every monitoring function) reads the folder directly.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from workbench import locations
from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound, ServiceUnavailable, WorkbenchError
from workbench.monitoring.prediction_log import REJECTED_SUFFIX

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def log_dir(settings: Settings, deployment: str) -> Path:
    """The folder holding ``deployment``'s prediction log (with the log in the bucket: the reader's mirror)."""
    return settings.predictions_dir / _SAFE.sub("_", deployment)


def log_location(settings: Settings, deployment: str) -> str:
    """Where ``deployment``'s prediction log is kept: its folder, or its prefix in the bucket."""
    return locations.join(settings.predictions_location, _SAFE.sub("_", deployment))


def spool_dir(deployment: str) -> Path:
    """A replica's local folder for the segments it has not shipped yet (its node's temp dir)."""
    return Path(tempfile.gettempdir()) / "workbench-predictions" / _SAFE.sub("_", deployment)


def mirror_log(settings: Settings, deployment: str) -> Path:
    """Bring the local mirror of a bucket-kept log up to date (new objects only; shipped segments never
    change) and return its folder, which every monitoring reader takes."""
    from workbench.storage import activate

    activate(settings)
    source = log_location(settings, deployment)
    folder = log_dir(settings, deployment)
    folder.mkdir(parents=True, exist_ok=True)
    for name, is_folder in locations.list_tree(source):
        target = folder / name
        if is_folder or name.startswith(".") or "/" in name or target.exists():
            continue
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        partial.write_bytes(locations.read_bytes(locations.join(source, name)))
        os.replace(partial, target)  # a reader of the mirror sees a whole file or none
    return folder


def _has_log(folder: Path) -> bool:
    return folder.is_dir() and (any(folder.rglob("*.jsonl")) or any(folder.rglob("*.parquet")))


def find_log_dir(settings: Settings, deployment: str) -> tuple[Path, list[Path]]:
    """(the folder to read ``deployment``'s log from, every folder looked in).

    The replicas write under the *deploying* project's state folder. A reader with other settings (a notebook
    of another project, or the dashboard of the JupyterLab root when the deployment was made from a project
    folder) finds nothing in its own, so the folder the deployment records in its Serve config is tried
    next, when Serve answers. The reader's own folder wins when it holds a log.
    """
    own = log_dir(settings, deployment)
    if settings.state_in_bucket:
        return mirror_log(settings, deployment), [own]
    if _has_log(own):
        return own, [own]
    from workbench.serving.deployments import get_deployment

    try:
        recorded = get_deployment(settings, deployment).log_folder
    except WorkbenchError:  # no such deployment (any more), or no Ray to ask: the reader's folder is all there is
        return own, [own]
    if recorded is not None and recorded != own and _has_log(recorded):
        return recorded, [own, recorded]
    return own, [own] if recorded is None or recorded == own else [own, recorded]


LOG_FIELDS = ("request_id", "timestamp", "deployment", "model_version", "latency_ms", "event_timestamp", "task")
OUTPUT_FIELDS = ("score", "predicted_label", "probabilities", "prediction")
_OUTPUT_NAMES = {"label": "predicted_label"}
INPUT_PREFIX = "input:"


def log_record(*, request_id: str, timestamp: str, deployment: str, model_version: str, latency_ms: float,
               event_timestamp: str, task: str | None, outputs: Mapping[str, Any], inputs: Mapping[str, Any]
               ) -> dict[str, Any]:
    """One prediction log row (JSON-able values in, one flat dict out) in the layout described above."""
    record: dict[str, Any] = {"request_id": request_id, "timestamp": timestamp, "deployment": deployment,
                              "model_version": model_version, "latency_ms": latency_ms,
                              "event_timestamp": event_timestamp, "task": task}
    for key, value in outputs.items():
        record[_OUTPUT_NAMES.get(key, key)] = value
    for name, value in inputs.items():
        record[INPUT_PREFIX + name if name in record or name in OUTPUT_FIELDS else name] = value
    return record


SEGMENT_BYTES = 64 * 2**20
"""A segment this large is closed and compacted (about 100k rows of a model with a dozen inputs)."""
SEGMENT_AGE_S = 3600.0
"""A segment this old is closed and compacted, so a quiet deployment's log still becomes Parquet."""
GRACE_S = 300.0
"""How long superseded JSON lines stay beside their Parquet file, for readers that listed them earlier."""


class PredictionLogWriter:
    """Appends prediction records (dicts of JSON-able values) for one replica process, in segments."""

    def __init__(self, folder: Path, writer_id: str, *, segment_bytes: int = SEGMENT_BYTES,
                 segment_age_s: float = SEGMENT_AGE_S, compact: bool = True, ship_to: str = "") -> None:
        self._fd = -1  # first, so that __del__ of a writer whose arguments were refused has nothing to close
        self._closed = threading.Event()
        if segment_bytes <= 0 or segment_age_s <= 0:
            raise InvalidInput("segment_bytes and segment_age_s must be positive")
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._stem = f"{_SAFE.sub('_', writer_id)}-{os.getpid()}"
        self.segment_bytes, self.segment_age_s, self.compact = segment_bytes, segment_age_s, compact or bool(ship_to)
        self.ship_to = ship_to
        self.segment = 0
        self.written = 0
        self._fd = -1
        self._compactions: list[threading.Thread] = []
        self._lock = threading.Lock()  # append and the shipping timer's rotate
        self._open()
        if ship_to:
            self._start(_ship_folder, folder, ship_to)  # what an earlier replica on this node left unshipped
            threading.Thread(target=self._rotate_when_due, name="prediction-log-timer", daemon=True).start()

    def _rotate_when_due(self) -> None:
        while not self._closed.wait(min(1.0, self.segment_age_s / 4)):
            with self._lock:
                if self._fd >= 0 and self._due():
                    self.rotate()

    def _open(self) -> None:
        self.path = self.folder / f"{self._stem}-{self.segment:06d}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # inputs may be personal data
        self._size = os.fstat(self._fd).st_size
        self._opened = time.monotonic()

    def _due(self) -> bool:
        return self._size >= self.segment_bytes or (
            self._size > 0 and time.monotonic() - self._opened >= self.segment_age_s)

    def append(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Write ``records`` in one system call; returns how many. Raises if the disk refuses."""
        lines = [json.dumps(record, separators=(",", ":"), allow_nan=False) for record in records]
        if not lines:
            return 0
        data = ("\n".join(lines) + "\n").encode()
        with self._lock:
            if self._due():
                self.rotate()
            view = memoryview(data)
            while view:  # a regular file takes it all at once; the loop only guards a short write
                done = os.write(self._fd, view)
                view = view[done:]
            self._size += len(data)
            self.written += len(lines)
        return len(lines)

    def rotate(self) -> Path:
        """Close the current segment, start the next one, and compact the closed one in the background
        (a replica's answers never wait for it); returns the closed segment's path."""
        closed = self.path
        os.close(self._fd)
        self.segment += 1
        self._open()
        if self.ship_to:
            self._start(_ship_segment, closed, self.ship_to)
        elif self.compact:
            self._start(_compact_quietly, closed)
        return closed

    def _start(self, target: Any, *args: Any) -> None:
        worker = threading.Thread(target=target, args=args, name="prediction-log-compact", daemon=True)
        worker.start()
        self._compactions = [t for t in self._compactions if t.is_alive()] + [worker]

    def wait_for_compaction(self, timeout_s: float = 60.0) -> None:
        """Wait for the background compactions started so far (tests, and a clean shutdown)."""
        for worker in self._compactions:
            worker.join(timeout_s)

    def close(self) -> None:
        self._closed.set()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def _compact_quietly(path: Path) -> None:
    try:
        compact_segment(path)
        compact_log(path.parent, closed_only=True)
    except Exception:  # noqa: BLE001 - a failed compaction leaves the JSON lines, which stay readable
        return


def _ship_segment(path: Path, target: str) -> None:
    """Compact a closed segment and move its files to the bucket; on failure the spool keeps them (the next
    replica started on this node ships them)."""
    try:
        compact_segment(path)
        _ship_folder(path.parent, target, only=path.stem)
    except Exception:  # noqa: BLE001 - nothing is lost: the JSON lines or Parquet file stay in the spool
        return


def _ship_folder(folder: Path, target: str, only: str = "") -> None:
    """Upload the spool's Parquet and rejected files (those of segment ``only``, or all) and delete each one,
    and its JSON lines, once its upload completed."""
    for path in sorted([*folder.glob(f"{only or '*'}.parquet"), *folder.glob(f"{only or '*'}{REJECTED_SUFFIX}")]):
        try:
            locations.upload_file(path, locations.join(target, path.name))
        except OSError:
            continue
        path.unlink(missing_ok=True)
        path.with_suffix(".jsonl").unlink(missing_ok=True)


def compact_segment(path: Path) -> Path | None:
    """Convert one closed JSON-lines segment to Parquet beside it; returns the Parquet path.

    Parseable rows go to ``<stem>.parquet`` (written to a temporary name, then renamed, so a reader sees
    the whole file or none); lines that do not parse (a cut line, a foreign line) go to
    ``<stem>.rejected``, where monitoring counts them. The JSON lines stay until :func:`compact_log`
    removes them after :data:`GRACE_S`. A segment with no rows is simply removed.
    """
    import duckdb

    target = path.with_suffix(".parquet")
    if target.exists():
        return target
    good: list[bytes] = []
    rejected: list[bytes] = []
    with path.open("rb") as handle:
        for raw in handle:
            line = raw.strip()
            if not line:
                continue
            try:
                parsed = json.loads(line)
            except ValueError:
                rejected.append(raw)
                continue
            (good if isinstance(parsed, dict) and parsed.get("request_id") is not None else rejected).append(raw)
    if rejected:
        _write_atomically(path.with_suffix(REJECTED_SUFFIX), b"".join(
            r if r.endswith(b"\n") else r + b"\n" for r in rejected))
    if not good:
        path.unlink(missing_ok=True)
        return None
    scratch = _scratch(path, ".jsonl")
    _write_atomically(scratch, b"".join(r if r.endswith(b"\n") else r + b"\n" for r in good))
    partial = _scratch(path, ".parquet")
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"COPY (SELECT * FROM read_json('{_sql_path(scratch)}', format='newline_delimited')) "
                    f"TO '{_sql_path(partial)}' (FORMAT parquet)")
    finally:
        con.close()
        scratch.unlink(missing_ok=True)
    os.chmod(partial, 0o600)
    os.replace(partial, target)
    return target


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _scratch(path: Path, suffix: str) -> Path:
    """A hidden temporary name beside ``path``, unique to this process and thread (two compactions of
    one segment may race; each writes its own file and the last rename wins with the same content)."""
    return path.with_name(f".{path.stem}{suffix}.{os.getpid()}-{threading.get_ident()}.tmp")


def _write_atomically(path: Path, data: bytes) -> None:
    partial = _scratch(path, path.suffix)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(partial, path)


def compact_log(folder: Path, *, closed_only: bool = True, grace_s: float = GRACE_S) -> list[Path]:
    """Compact the closed segments of a log folder and delete JSON lines their Parquet file superseded
    more than ``grace_s`` ago; returns the Parquet files written now.

    A segment is closed when its writer has started a later one, or when it has not been written for
    :data:`SEGMENT_AGE_S` (its replica is gone). ``closed_only=False`` compacts every segment: only for a
    deployment that is stopped.
    """
    written = []
    segments = sorted(folder.glob("*.jsonl"))
    latest: dict[str, str] = {}
    for seg in segments:
        writer, _, number = seg.stem.rpartition("-")
        latest[writer] = max(latest.get(writer, ""), number)
    now = time.time()
    for seg in segments:
        parquet = seg.with_suffix(".parquet")
        try:
            if parquet.exists():
                if now - parquet.stat().st_mtime >= grace_s:
                    seg.unlink(missing_ok=True)
                continue
            writer, _, number = seg.stem.rpartition("-")
            idle = now - seg.stat().st_mtime >= SEGMENT_AGE_S
            if not closed_only or number != latest[writer] or idle:
                done = compact_segment(seg)
                if done is not None:
                    written.append(done)
                    if grace_s <= 0:
                        seg.unlink(missing_ok=True)
        except FileNotFoundError:  # another compaction took it meanwhile
            continue
    return written


def read_predictions(settings: Settings, deployment: str, columns: list[str] | None = None) -> pd.DataFrame:
    """The whole prediction log of ``deployment`` as a DataFrame (oldest first)."""
    from workbench.monitoring import read_log

    folder, looked = find_log_dir(settings, deployment)
    if not folder.is_dir() or not (any(folder.glob("*.jsonl")) or any(folder.glob("*.parquet"))):
        raise NotFound(f"no predictions logged for deployment {deployment!r} yet (looked in "
                       f"{', '.join(map(str, looked))})")
    frame = read_log(folder, columns)
    if "timestamp" in frame.columns:
        frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return frame


def wait_for_predictions(settings: Settings, deployment: str, request_ids: Iterable[str], *,
                         timeout_s: float = 120.0, columns: list[str] | None = None) -> pd.DataFrame:
    """The log of ``deployment`` once it holds every one of ``request_ids`` (the requests you just sent).

    On a local head a prediction is in the log before its answer leaves the replica, so this returns at once;
    with the log in the bucket it arrives with the replica's next shipment (``prediction_log_ship_s``).
    Raises ServiceUnavailable naming how many are still missing after ``timeout_s``.
    """
    wanted = set(map(str, request_ids))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            frame = read_predictions(settings, deployment, columns)
            missing = wanted - set(frame["request_id"].astype(str)) if "request_id" in frame.columns else wanted
        except NotFound:
            frame, missing = pd.DataFrame(), wanted
        if not missing:
            return frame
        if time.monotonic() >= deadline:
            raise ServiceUnavailable(f"{len(missing)} of {len(wanted)} predictions of {deployment!r} are not in its "
                                     f"log after {timeout_s:g} s (e.g. {sorted(missing)[:3]})")
        time.sleep(min(1.0, settings.prediction_log_ship_s / 4))


def check_deployment_name(name: str) -> str:
    """Deployment names become URL paths and file names: keep them simple."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name):
        raise InvalidInput(f"deployment name {name!r} must be 1-63 lower-case letters, digits or '-', starting and "
                           "ending with a letter or digit (it becomes a URL path and a Kubernetes name)")
    return name
