"""A local cache of an experiment's runs, synced incrementally from MLflow, so 10,000 runs open in a second.

Fetching 10,000 runs (20 params, 10 metrics) through the MLflow server costs 20-45 s whatever the client
(TOOLCHAIN.md); reading them back from a local SQLite file costs well under a second. The cache keeps,
per run, what a comparison needs: info, params, latest metrics, tags. It lives under
``settings.state_dir/run_cache/<server>/<experiment id>.sqlite`` (one file per server and experiment,
so a recreated experiment of the same name never mixes with the old one).

:meth:`RunCache.sync` asks MLflow (``MlflowClient.search_runs`` only) for

- runs started at or after the newest start time already cached (``attributes.start_time >= t``, in
  start-time order): the new runs; and
- the cached runs not yet finished (``RUNNING`` / ``SCHEDULED``), by id: their metrics move and their
  status ends. One that MLflow no longer returns (deleted) leaves the cache.

A finished run (``FINISHED``, ``FAILED``, ``KILLED``) is never fetched again. What this misses, by
design: a run logged later with a ``start_time`` older than the newest cached one (pass ``lookback_ms``
to look further back), tags or metrics written to a run after it finished, and deletion of finished runs;
``sync(full=True)`` rebuilds from scratch. Metric histories (for curves) are cached on first use, and
for finished runs kept for good.

Opening a filled cache asks nothing of the server: the experiment's id is remembered in a small index
next to the files, so a notebook can draw from the cache first and sync afterwards.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.entities import Run

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound
from workbench.registry.client import experiment_ids, mlflow_client, mlflow_errors
from workbench.registry.runs import TAG_COLUMNS, fetch_runs, iter_runs

FINISHED_STATUSES = frozenset({"FINISHED", "FAILED", "KILLED"})
UNFINISHED_STATUSES = ("RUNNING", "SCHEDULED")
SCHEMA_VERSION = 1
#: Run ids per ``attributes.run_id IN (...)`` query when refetching unfinished runs.
ID_CHUNK = 100
_TAG_SQL_COLUMNS = tuple(TAG_COLUMNS)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    run_name TEXT,
    experiment_id TEXT NOT NULL,
    status TEXT NOT NULL,
    start_time INTEGER,
    end_time INTEGER,
    {", ".join(f"{c} TEXT" for c in _TAG_SQL_COLUMNS)},
    params TEXT NOT NULL,
    metrics TEXT NOT NULL,
    tags TEXT NOT NULL,
    fetched_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_start ON runs (start_time);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
CREATE TABLE IF NOT EXISTS history (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    final INTEGER NOT NULL,
    steps TEXT NOT NULL,
    timestamps TEXT NOT NULL,
    "values" TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
"""
_INDEX_FILE = "experiments.json"


@dataclass(frozen=True)
class CachedRun:
    """One run as the cache holds it (times in ms since the epoch, as MLflow gives them)."""

    run_id: str
    run_name: str
    experiment_id: str
    status: str
    start_time: int | None
    end_time: int | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES


@dataclass(frozen=True)
class SyncResult:
    """What one :meth:`RunCache.sync` changed and what it cost."""

    added: int
    updated: int
    removed: int
    total: int
    fetched: int  # runs MLflow sent
    seconds: float
    full: bool

    def summary(self) -> str:
        kind = "full" if self.full else "incremental"
        return (f"{kind} sync: {self.added} new, {self.updated} updated, {self.removed} removed "
                f"({self.fetched} runs fetched in {self.seconds:.2f} s); {self.total} runs cached")


def cache_dir(settings: Settings) -> Path:
    """The folder of the caches of ``settings.mlflow_uri`` (one per tracking server)."""
    digest = hashlib.sha1(settings.mlflow_uri.encode()).hexdigest()[:12]
    return settings.state_dir / "run_cache" / digest


def _read_index(folder: Path) -> dict[str, str]:
    try:
        data = json.loads((folder / _INDEX_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_index(folder: Path, name: str, experiment_id: str) -> None:
    index = _read_index(folder)
    if index.get(name) == experiment_id:
        return
    index[name] = experiment_id
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{_INDEX_FILE}.{threading.get_ident()}"
    tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
    tmp.replace(folder / _INDEX_FILE)


def open_run_cache(settings: Settings, experiment: str | None = None, *, sync: bool = False,
                   offline: bool = False) -> RunCache:
    """The cache of ``experiment`` (default: the settings'), synced first when ``sync``.

    A cache opened before is found by name without asking MLflow, so a filled cache opens even while
    the server is down (``offline=True`` insists on that: NotFound when there is no cache yet).
    Otherwise the name is resolved through MLflow (NotFound names a missing experiment).
    """
    name = settings.experiment if experiment is None else experiment
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"experiment must be an experiment name, got {experiment!r}")
    folder = cache_dir(settings)
    experiment_id = _read_index(folder).get(name)
    if experiment_id is None or not (folder / f"{experiment_id}.sqlite").is_file():
        if offline:
            raise NotFound(f"no run cache of experiment {name!r} under {folder}; open it once with the "
                           f"MLflow server at {settings.mlflow_uri} running")
        client = mlflow_client(settings)
        experiment_id = experiment_ids(client, settings, name)[0]
        _write_index(folder, name, experiment_id)
    cache = RunCache(settings, experiment_id, name)
    if sync:
        cache.sync()
    return cache


class RunCache:
    """The runs of one experiment in a local SQLite file; see the module docstring for the sync rules."""

    def __init__(self, settings: Settings, experiment_id: str, experiment_name: str = "") -> None:
        self.settings = settings
        self.experiment_id = str(experiment_id)
        self.experiment_name = experiment_name or self.experiment_id
        self.path = cache_dir(settings) / f"{self.experiment_id}.sqlite"
        self._write_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)
            found = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if found is None:
                db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
                    ("schema", str(SCHEMA_VERSION)), ("mlflow_uri", settings.mlflow_uri),
                    ("experiment_id", self.experiment_id), ("experiment_name", self.experiment_name)])
            elif found[0] != str(SCHEMA_VERSION):
                raise InvalidInput(f"the run cache {self.path} has schema {found[0]}, this workbench writes "
                                   f"{SCHEMA_VERSION}: delete the file and open it again")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            with db:
                yield db
        finally:
            db.close()

    # ---- reading ------------------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT count(*) FROM runs").fetchone()[0])

    @property
    def last_sync(self) -> datetime | None:
        """When the last sync finished (UTC), None before the first."""
        with self._connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'last_sync'").fetchone()
        return datetime.fromtimestamp(float(row[0]), tz=UTC) if row else None

    def run_ids(self) -> set[str]:
        with self._connect() as db:
            return {r[0] for r in db.execute("SELECT run_id FROM runs")}

    def runs(self, run_ids: Iterable[str] | None = None) -> list[CachedRun]:
        """The cached runs (all, or those of ``run_ids`` that are cached), newest start first."""
        query = ("SELECT run_id, run_name, experiment_id, status, start_time, end_time, params, metrics, tags "
                 "FROM runs")
        with self._connect() as db:
            if run_ids is None:
                rows = db.execute(query + " ORDER BY start_time DESC, run_id").fetchall()
            else:
                ids = list(dict.fromkeys(run_ids))
                rows = []
                for chunk in _chunks(ids, 500):
                    rows += db.execute(query + f" WHERE run_id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
                order = {rid: i for i, rid in enumerate(ids)}
                rows.sort(key=lambda r: order[r[0]])
        return [CachedRun(r[0], r[1] or "", r[2], r[3], r[4], r[5], json.loads(r[6]), json.loads(r[7]),
                          json.loads(r[8])) for r in rows]

    @property
    def revision(self) -> int:
        """A counter that every change of the cached runs increases."""
        with self._connect() as db:
            return _revision(db)

    def frame(self, *, numeric_params: bool = True) -> pd.DataFrame:
        """The cached runs as the table :func:`workbench.registry.compare_runs` returns, newest first.

        Same columns (info, tag columns, ``params.<name>``, ``metrics.<name>``); no request reaches MLflow.
        Built from the rows once per revision of the cache and kept as Parquet beside it: decoding 10,000
        runs' JSON costs about a second, reading the Parquet copy some tens of milliseconds.
        """
        if not numeric_params:
            return self._build_frame(numeric_params=False)
        revision = self.revision
        snapshot = self.path.with_name(f"{self.experiment_id}.frame-{revision}.parquet")
        if snapshot.is_file():
            try:
                return pd.read_parquet(snapshot)
            except (OSError, ValueError):
                pass  # a damaged copy: rebuild it
        frame = self._build_frame(numeric_params=True)
        tmp = snapshot.with_name(f".{snapshot.name}.{threading.get_ident()}")
        try:
            frame.to_parquet(tmp, index=False)
            tmp.replace(snapshot)
        except (OSError, ValueError, TypeError):  # a column pyarrow cannot store: serve it unkept
            tmp.unlink(missing_ok=True)
            return frame
        for old in self.path.parent.glob(f"{self.experiment_id}.frame-*.parquet"):
            if old != snapshot:
                old.unlink(missing_ok=True)
        return frame

    def _build_frame(self, *, numeric_params: bool) -> pd.DataFrame:
        cols = ", ".join(_TAG_SQL_COLUMNS)
        with self._connect() as db:
            rows = db.execute(f"SELECT run_id, run_name, experiment_id, status, start_time, end_time, {cols}, "
                              "params, metrics FROM runs ORDER BY start_time DESC, run_id").fetchall()
        n = len(rows)
        n_tags = len(_TAG_SQL_COLUMNS)
        starts = np.array([np.nan if r[4] is None else r[4] for r in rows], dtype=float)
        ends = np.array([np.nan if r[5] is None else r[5] for r in rows], dtype=float)
        param_cols: dict[str, list[str | None]] = {}
        metric_cols: dict[str, np.ndarray] = {}
        loads = json.loads
        p_at, m_at = 6 + n_tags, 7 + n_tags
        for i, row in enumerate(rows):
            for key, value in loads(row[p_at]).items():
                col = param_cols.get(key)
                if col is None:
                    col = param_cols[key] = [None] * n
                col[i] = value
            for key, number in loads(row[m_at]).items():
                arr = metric_cols.get(key)
                if arr is None:
                    arr = metric_cols[key] = np.full(n, np.nan)
                arr[i] = np.nan if number is None else number
        columns: dict[str, Any] = {
            "run_id": [r[0] for r in rows],
            "run_name": [r[1] for r in rows],
            "experiment_id": [r[2] for r in rows],
            "status": [r[3] for r in rows],
            "start_time": pd.to_datetime(starts, unit="ms", utc=True),
            "end_time": pd.to_datetime(ends, unit="ms", utc=True),
            "duration_s": (ends - starts) / 1000.0,
        }
        for j, name in enumerate(_TAG_SQL_COLUMNS):
            columns[name] = [r[6 + j] for r in rows]
        for key in sorted(param_cols):
            columns[f"params.{key}"] = _numeric_or_text(param_cols[key]) if numeric_params else param_cols[key]
        for key in sorted(metric_cols):
            columns[f"metrics.{key}"] = metric_cols[key]
        return pd.DataFrame(columns, index=pd.RangeIndex(n))

    # ---- syncing ------------------------------------------------------------------------------------

    def sync(self, *, full: bool = False, lookback_ms: int = 0, threads: int = 4,
             progress: Callable[[int], None] | None = None) -> SyncResult:
        """Fetch new and unfinished runs from MLflow (everything when ``full`` or the cache is empty).

        ``progress`` is called with the number of runs received so far. Writes are one transaction per
        step, so an interrupted sync leaves a consistent cache that the next sync completes.
        """
        began = time.perf_counter()
        client = mlflow_client(self.settings)
        ids = [self.experiment_id]
        with self._connect() as db:
            newest = db.execute("SELECT max(start_time) FROM runs").fetchone()[0]
            unfinished = [r[0] for r in db.execute(
                f"SELECT run_id FROM runs WHERE status IN ({','.join('?' * len(UNFINISHED_STATUSES))})",
                UNFINISHED_STATUSES)]
        known = self.run_ids()
        full = full or newest is None
        fetched: list[Run] = []
        removed = 0
        with mlflow_errors(f"syncing the run cache of experiment {self.experiment_name!r}"):
            if full:
                # Every run: the partitioned fetch overlaps the server's work with the client's parsing.
                fetched = fetch_runs(client, ids, order_by=("attributes.start_time ASC",), max_results=None,
                                     threads=threads)
                if progress:
                    progress(len(fetched))
            else:
                since = int(newest) - max(0, int(lookback_ms))
                for run in iter_runs(client, ids, filter_string=f"attributes.start_time >= {since}",
                                     order_by=("attributes.start_time ASC",), max_results=None, page_size=1000):
                    fetched.append(run)
                    if progress and len(fetched) % 1000 == 0:
                        progress(len(fetched))
                seen = {r.info.run_id for r in fetched}
                todo = [rid for rid in unfinished if rid not in seen]
                for chunk in _chunks(todo, ID_CHUNK):
                    quoted = ", ".join(f"'{rid}'" for rid in chunk)
                    got = list(iter_runs(client, ids, filter_string=f"attributes.run_id IN ({quoted})",
                                         order_by=(), max_results=None, page_size=len(chunk)))
                    fetched += got
                    gone = set(chunk) - {r.info.run_id for r in got}
                    if gone:
                        removed += self._delete(gone)
                if progress:
                    progress(len(fetched))
        if full:
            stale = known - {r.info.run_id for r in fetched}
            removed += self._delete(stale)
        written = self._upsert(fetched)
        added = len(written - known)
        with self._write_lock, self._connect() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('last_sync', ?)", (str(time.time()),))
        return SyncResult(added=added, updated=len(written & known), removed=removed, total=len(self),
                          fetched=len(fetched), seconds=time.perf_counter() - began, full=full)

    def _upsert(self, runs: Sequence[Run]) -> set[str]:
        now = int(time.time() * 1000)
        rows = [_row(run, now) for run in runs]
        marks = ", ".join("?" * (10 + len(_TAG_SQL_COLUMNS)))
        with self._write_lock, self._connect() as db:
            _bump(db)
            db.executemany(f"INSERT OR REPLACE INTO runs VALUES ({marks})", rows)
            # a run that moved on since its history was cached: drop the history, it is fetched again
            db.executemany("DELETE FROM history WHERE run_id = ? AND final = 0", [(r[0],) for r in rows])
        return {r[0] for r in rows}

    def _delete(self, run_ids: Iterable[str]) -> int:
        ids = list(run_ids)
        if not ids:
            return 0
        with self._write_lock, self._connect() as db:
            _bump(db)
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                db.execute(f"DELETE FROM runs WHERE run_id IN ({marks})", chunk)
                db.execute(f"DELETE FROM history WHERE run_id IN ({marks})", chunk)
        return len(ids)

    # ---- metric histories ---------------------------------------------------------------------------

    def metric_history(self, run_ids: Sequence[str], key: str, *, threads: int = 8) -> dict[str, pd.DataFrame]:
        """Each run's whole history of metric ``key`` (columns step, timestamp, value), cached.

        Histories of finished runs are fetched once (``MlflowClient.get_metric_history``) and kept; those
        of unfinished runs are fetched on every call. A run without the metric gets an empty frame.
        """
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"key must be a metric name, got {key!r}")
        ids = list(dict.fromkeys(run_ids))
        out: dict[str, pd.DataFrame] = {}
        with self._connect() as db:
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                for rid, steps, stamps, values in db.execute(
                        f'SELECT run_id, steps, timestamps, "values" FROM history WHERE key = ? AND final = 1 '
                        f"AND run_id IN ({marks})", [key, *chunk]):
                    out[rid] = _history_frame(json.loads(steps), json.loads(stamps), json.loads(values))
            status: dict[str, str] = {}
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                status.update(db.execute(f"SELECT run_id, status FROM runs WHERE run_id IN ({marks})", chunk))
        todo = [rid for rid in ids if rid not in out]
        if not todo:
            return {rid: out[rid] for rid in ids}
        client = mlflow_client(self.settings)

        def fetch(rid: str) -> tuple[str, list[int], list[int], list[float]]:
            with mlflow_errors(f"reading the history of metric {key!r} of run {rid}"):
                points = sorted(client.get_metric_history(rid, key), key=lambda m: (m.step, m.timestamp))
            return rid, [m.step for m in points], [m.timestamp for m in points], [m.value for m in points]

        with ThreadPoolExecutor(max_workers=max(1, min(threads, len(todo)))) as pool:
            got = list(pool.map(fetch, todo))
        rows = []
        for rid, steps, stamps, values in got:
            out[rid] = _history_frame(steps, stamps, values)
            final = 1 if status.get(rid, "") in FINISHED_STATUSES else 0
            rows.append((rid, key, final, json.dumps(steps), json.dumps(stamps), json.dumps(values)))
        with self._write_lock, self._connect() as db:
            db.executemany('INSERT OR REPLACE INTO history VALUES (?, ?, ?, ?, ?, ?)', rows)
        return {rid: out[rid] for rid in ids}


def _revision(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
    return int(row[0]) if row else 0


def _bump(db: sqlite3.Connection) -> None:
    db.execute("INSERT OR REPLACE INTO meta VALUES ('revision', ?)", (str(_revision(db) + 1),))


def _history_frame(steps: Sequence[int], stamps: Sequence[int], values: Sequence[float | None]) -> pd.DataFrame:
    return pd.DataFrame({"step": np.asarray(steps, dtype=np.int64),
                         "timestamp": np.asarray(stamps, dtype=np.int64),
                         "value": np.asarray([math.nan if v is None else v for v in values], dtype=float)})


def _row(run: Run, now: int) -> tuple[Any, ...]:
    info, data = run.info, run.data
    tags = dict(data.tags)
    tag_values = []
    for keys in TAG_COLUMNS.values():
        tag_values.append(next((tags[k] for k in keys if tags.get(k)), None))
    return (info.run_id, info.run_name, info.experiment_id, info.status, info.start_time, info.end_time,
            *tag_values, json.dumps(dict(data.params)), json.dumps(dict(data.metrics)), json.dumps(tags), now)


def _numeric_or_text(values: list[str | None]) -> Any:
    """Numbers when every present value parses as one (``"0.001"`` → 0.001), else the strings as given."""
    try:
        return pd.to_numeric(pd.Series(values, dtype="object"), errors="raise").to_numpy()
    except (ValueError, TypeError):
        return values


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])
