"""Recorded events replayed as a stream: each entity's online state as it stood just before an event.

Live, a streaming feature pipeline updates an entity's online row as each of its events arrives, so a
request at time ``t`` finds the state of the entity's events before ``t``; the on-demand transformation then
ages the windows to ``t`` (:mod:`workbench.features.transform`). Replaying *recorded* traffic against a
store materialized to the end of the data breaks that: the online row already holds the events that come
after the replayed request, and a replica serves features that no training row ever had (06 measured PSI up
to 11 on ten-minute counts of traffic that had not drifted, and a replay ROC-AUC of 0.59).

:func:`write_states_as_of` writes what the pipeline would have left, read from the project's offline state
tables (the rows Feast's point-in-time join picks for the same entity and time, so a replica's lookup equals
the training frame's row). :func:`stream_batches` cuts time-ordered traffic into batches in which no entity
appears twice, so a batch's states can be written first and its requests then sent concurrently.
Write in time order: Redis-backed online stores skip a write older than the row they hold.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from workbench.config import Settings
from workbench.errors import InvalidInput
from workbench.features.project import (
    load_declaration,
    project_dir,
    project_store,
    state_tables,
    utc_times,
    write_states,
)
from workbench.features.tables import FEATURE_TIMESTAMP

REQUEST_AT = "__request_at"


@dataclass(frozen=True)
class StreamWrite:
    """What one :func:`write_states_as_of` call wrote: rows per feature view, and how long it took."""

    rows: dict[str, int]
    seconds: float


def _time_column(rows: pd.DataFrame, time_column: str | None, timestamp: str | None) -> str:
    column = time_column or next((c for c in (timestamp, "timestamp") if c and c in rows.columns), None)
    if column is None or column not in rows.columns:
        raise InvalidInput(f"the rows need their event time: name its column (time_column=...); they have "
                           f"{list(rows.columns)}")
    return column


def write_states_as_of(settings: Settings, name: str, rows: Any, time_column: str | None = None) -> StreamWrite:
    """Write to project ``name``'s online store, for each row's entities, their state just before the row's time.

    ``rows`` hold the entity keys and the event time (``time_column``; default the project's timestamp
    column, else ``timestamp``). Each entity may appear once: two rows of one entity at different times
    have no single state to write (cut the traffic with :func:`stream_batches`), and that is an
    InvalidInput naming the entity. An entity the offline tables do not know gets nothing written.
    """
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        return StreamWrite({}, 0.0)
    declaration = load_declaration(settings, name)
    if not declaration.timestamp:
        raise InvalidInput(f"feature project {name!r} has no timestamp: its online rows do not change over time, "
                           "so there is no state to stream (materialize_features once is enough)")
    column = _time_column(frame, time_column, declaration.timestamp)
    at = utc_times(frame[column], column)
    if at.isna().any():
        raise InvalidInput(f"{int(at.isna().sum())} rows have no time in {column!r}: each replayed event needs one")
    import duckdb

    started = time.perf_counter()
    store = project_store(settings, name)
    folder = project_dir(settings, name)
    written: dict[str, int] = {}
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for view, (keys, _) in state_tables(declaration).items():
        missing = [k for k in keys if k not in frame.columns]
        if missing:
            raise InvalidInput(f"the rows lack the entity keys {missing} of feature view {view!r}")
        wanted = frame[list(keys)].assign(**{REQUEST_AT: at.to_numpy()})
        repeated = wanted[wanted.duplicated(list(keys), keep=False)]
        if not repeated.empty:
            first = repeated.iloc[0]
            raise InvalidInput(f"entity {dict(first[list(keys)])} of view {view!r} appears {len(repeated)} times: "
                               "write one state per entity at a time (cut the rows with stream_batches)")
        con.register("wanted", wanted)
        on = " AND ".join(f"w.{_q(k)} = t.{_q(k)}" for k in keys)
        states = con.execute(
            f"SELECT t.* FROM wanted w ASOF JOIN read_parquet($path) t ON {on} AND w.{REQUEST_AT} >= "
            f"t.{FEATURE_TIMESTAMP}", {"path": str(folder / "data" / f"{view}.parquet")}).df()
        con.unregister("wanted")
        if states.empty:
            written[view] = 0
            continue
        write_states(settings, store, view, states, f"writing streamed states of {view!r} in project {name!r}",
                     cached=True)
        written[view] = len(states)
    return StreamWrite(written, time.perf_counter() - started)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def stream_batches(rows: pd.DataFrame, keys: Sequence[Sequence[str]], time_column: str,
                   max_rows: int) -> Iterator[pd.DataFrame]:
    """``rows`` in time order, in batches of at most ``max_rows`` where no entity (per key set) repeats."""
    if max_rows < 1:
        raise InvalidInput(f"max_rows must be at least 1, got {max_rows}")
    ordered = rows.sort_values(time_column, kind="stable")
    seen: list[set[tuple[Any, ...]]] = [set() for _ in keys]
    start = 0
    values = [list(zip(*(ordered[k].tolist() for k in key_set), strict=True)) for key_set in keys]
    for i in range(len(ordered)):
        clash = any(values[j][i] in seen[j] for j in range(len(keys)))
        if clash or i - start >= max_rows:
            yield ordered.iloc[start:i]
            start = i
            seen = [set() for _ in keys]
        for j in range(len(keys)):
            seen[j].add(values[j][i])
    if start < len(ordered):
        yield ordered.iloc[start:]


def state_keys(settings: Settings, name: str) -> list[tuple[str, ...]]:
    """The key columns of each of the project's state tables: two rows sharing one share a state."""
    return [tuple(keys) for keys, _ in state_tables(load_declaration(settings, name)).values()]


__all__ = ["StreamWrite", "state_keys", "stream_batches", "write_states_as_of"]
