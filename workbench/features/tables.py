"""The offline tables of a feature project, computed with DuckDB from the dataset.

Two kinds of table, each the Parquet source of one Feast feature view:

* ``<entity>_history`` (for windowed aggregates and :class:`SecondsSinceLast`): one row per entity and
  distinct time ``t`` of its rows, stamped ``t + 1 µs``: the entity's state *right after* ``t``. Feast's
  point-in-time join (latest row at or before the request time) therefore gives a request at ``t`` the
  state before ``t``: features come only from rows strictly before the request. A state row holds, per
  (column, resolution), the partial aggregates of each resolution step still inside the longest
  window (arrays: step start, count, sum, sum of squares, min, max), and for ``ever`` windows running
  totals; the on-demand transformation (:mod:`workbench.features.transform`) picks the steps the
  request time leaves inside the window. Serving runs that same transformation on the online row, so
  a window ages exactly as in training instead of freezing at materialization;
* ``<view>`` for a :class:`ColumnsView`: the columns of the entity's latest row at each time, stamped
  ``t + 1 µs`` (without a timestamp: the entity's single row, stamped just after the epoch).

Each entity also gets an empty row at the epoch (no history: nulls, empty arrays, zero counts), so every
entity row of a training frame finds a state at or before its time, as Feast's file store requires.

Times are floored to microseconds (as Feast and Parquet keep them).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import duckdb
import pandas as pd

from workbench import locations
from workbench.errors import InvalidInput, NotFound
from workbench.features.declaration import (
    EVER,
    ColumnsView,
    FeatureDeclaration,
    SecondsSinceLast,
    WindowedView,
)

Dataset: TypeAlias = pd.DataFrame | Path | str
"""A frame, or a Parquet file, or a folder of Parquet files."""

FEATURE_TIMESTAMP = "feature_timestamp"
LAST_EVENT = "last_event_us"
"""Suffix of the history column holding the entity's latest row time, ``<entity>_last_event_us``."""
US = 1_000_000


@dataclass(frozen=True)
class Group:
    """The stored partial aggregates of one column (None: rows) at one resolution, per entity state."""

    gid: str
    column: str | None
    resolution_us: int | None  # None: an 'ever' running total
    window_us: int | None  # longest window served by the group

    def parts(self) -> tuple[str, ...]:
        """What is stored per step (windows) or in total (``ever``); only counts when there is no column."""
        stats = ("count", "sum", "sumsq", "min", "max") if self.column is not None else ("count",)
        return ("start", *stats) if self.resolution_us else stats

    def stored(self) -> list[str]:
        """Column names in the history table (arrays for windows, scalars for 'ever')."""
        return [f"{self.gid}_{p}" for p in self.parts()]


@dataclass(frozen=True)
class History:
    """What the ``<entity>_history`` table of one entity stores."""

    entity: str
    keys: tuple[str, ...]
    groups: tuple[Group, ...] = field(default=())

    @property
    def view(self) -> str:
        return f"{self.entity}_history"

    @property
    def last_event(self) -> str:
        """The column of the time of the entity's latest row (µs), named apart from other entities'."""
        return f"{self.entity}_{LAST_EVENT}"

    def group_for(self, column: str | None, window: str, resolution_us: int | None) -> Group:
        for group in self.groups:
            if group.column == column and group.resolution_us == (None if window == EVER else resolution_us):
                return group
        raise KeyError((column, window, resolution_us))


def histories(declaration: FeatureDeclaration) -> dict[str, History]:
    """Per entity with windowed aggregates or SecondsSinceLast, the groups its history must store."""
    wanted: dict[str, dict[tuple[str | None, int | None], int | None]] = {}
    for view in declaration.views:
        if isinstance(view, WindowedView):
            slots = wanted.setdefault(view.entity, {})
            for agg in view.aggregates:
                step = agg.resolution_s * US if agg.resolution_s else None
                window = agg.window_s * US if agg.window_s else None
                key = (agg.column, step)
                slots[key] = max(slots.get(key) or 0, window or 0) or None
    for item in declaration.on_demand:
        if isinstance(item, SecondsSinceLast):
            wanted.setdefault(item.entity, {})
    out = {}
    for entity, slots in wanted.items():
        groups = tuple(Group(f"{entity}_g{i}", column, step, window)
                       for i, ((column, step), window) in enumerate(slots.items()))
        out[entity] = History(entity, declaration.entity(entity).keys, groups)
    return out


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(dataset: Dataset, timestamp: str | None) -> tuple[duckdb.DuckDBPyConnection, dict[str, str], str]:
    """A UTC DuckDB connection with the dataset as view ``src``, its column types, and a label.

    ``src`` gains ``_row`` (reading order) and ``_t`` (the timestamp in whole microseconds, 0 without one).
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if isinstance(dataset, pd.DataFrame):
        con.register("raw", dataset)
        label = f"DataFrame[{len(dataset)} rows]"
    elif locations.is_remote(dataset):  # in the bucket: read through pyarrow's S3 (DuckDB has no httpfs here)
        if not locations.exists(dataset):
            raise NotFound(f"dataset not found at {dataset}: pass a Parquet file or folder, or a DataFrame")
        try:
            con.register("raw", locations.read_arrow(dataset))
        except OSError as exc:
            raise InvalidInput(f"cannot read the dataset at {dataset} as Parquet: {exc}") from exc
        label = str(dataset)
    else:
        path = Path(dataset)
        if path.is_dir():
            pattern = str(path / "**" / "*.parquet")
        elif path.is_file():
            pattern = str(path)
        else:
            raise NotFound(f"dataset not found at {path}: pass a Parquet file or folder, or a DataFrame")
        try:
            con.execute(f"CREATE VIEW raw AS SELECT * FROM read_parquet({_literal(pattern)}, union_by_name=true)")
        except duckdb.Error as exc:
            raise InvalidInput(f"cannot read the dataset at {path} as Parquet: {exc}") from exc
        label = str(path)
    types = {str(r[0]): str(r[1]) for r in con.execute("DESCRIBE raw").fetchall()}
    clock = f"epoch_ns({_ident(timestamp)}::TIMESTAMPTZ) // 1000" if timestamp and timestamp in types else "0"
    con.execute(f"CREATE TEMP TABLE src AS SELECT *, row_number() OVER () AS _row, {clock} AS _t FROM raw")
    return con, types, label


def _not_null(keys: tuple[str, ...], alias: str = "") -> str:
    return " AND ".join(f"{alias}{_ident(k)} IS NOT NULL" for k in keys)


def _group_sql(history: History, group: Group) -> str:
    keys = ", ".join(_ident(k) for k in history.keys)
    value = f"{_ident(group.column)}::DOUBLE" if group.column else "1.0::DOUBLE"
    ev = f"SELECT {keys}, _t AS t, {value} AS v FROM src WHERE {_not_null(history.keys)}"
    stats = ("count(v) AS n, coalesce(sum(v), 0) AS s, coalesce(sum(v * v), 0) AS q, "
             "coalesce(min(v), 'NaN'::DOUBLE) AS lo, coalesce(max(v), 'NaN'::DOUBLE) AS hi")
    g = group.gid
    if group.resolution_us is None:
        win = ("count(v) OVER w AS n, coalesce(sum(v) OVER w, 0) AS s, coalesce(sum(v * v) OVER w, 0) AS q, "
               "coalesce(min(v) OVER w, 'NaN'::DOUBLE) AS lo, coalesce(max(v) OVER w, 'NaN'::DOUBLE) AS hi")
        return f"""
            SELECT DISTINCT ON ({keys}, t) {keys}, t,
                   n AS {g}_count, s AS {g}_sum, q AS {g}_sumsq, lo AS {g}_min, hi AS {g}_max
            FROM (SELECT {keys}, t, {win} FROM ({ev})
                  WINDOW w AS (PARTITION BY {keys} ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))
        """
    step, window = group.resolution_us, group.window_us or 0
    cur_win = ("count(v) OVER w AS n, coalesce(sum(v) OVER w, 0) AS s, coalesce(sum(v * v) OVER w, 0) AS q, "
               "coalesce(min(v) OVER w, 'NaN'::DOUBLE) AS lo, coalesce(max(v) OVER w, 'NaN'::DOUBLE) AS hi")
    join = " AND ".join(f"f1.{_ident(k)} = f2.{_ident(k)}" for k in history.keys)
    f1_keys = ", ".join(f"f1.{_ident(k)}" for k in history.keys)
    lists = ", ".join(f"list(f2.{c} ORDER BY f2.b) FILTER (WHERE f2.b IS NOT NULL) AS p_{c}"
                      for c in ("b", "n", "s", "q", "lo", "hi"))
    concat = ", ".join(
        f"list_concat(coalesce(p_{c}, []), [cur.{c}]) AS {g}_{name}"
        for c, name in (("b", "start"), ("n", "count"), ("s", "sum"), ("q", "sumsq"), ("lo", "min"), ("hi", "max")))
    return f"""
        WITH ev AS (SELECT *, (t // {step}) * {step} AS b FROM ({ev})),
        cur AS (
            SELECT DISTINCT ON ({keys}, t) * FROM (
                SELECT {keys}, t, b, {cur_win} FROM ev
                WINDOW w AS (PARTITION BY {keys}, b ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))
        ),
        full_steps AS (SELECT {keys}, b, {stats} FROM ev GROUP BY ALL),
        prev AS (
            SELECT {f1_keys}, f1.b, {lists}
            FROM full_steps f1 LEFT JOIN full_steps f2 ON {join} AND f2.b >= f1.b - {window} AND f2.b < f1.b
            GROUP BY ALL
        )
        SELECT cur.* EXCLUDE (b, n, s, q, lo, hi), {concat}
        FROM cur JOIN prev USING ({keys}, b)
    """


def history_sql(history: History) -> str:
    """The SQL of one entity's history table over ``src``."""
    keys = ", ".join(_ident(k) for k in history.keys)
    sql = f"SELECT DISTINCT {keys}, _t AS t FROM src WHERE {_not_null(history.keys)}"
    parts = [f"({sql}) AS base"]
    for group in history.groups:
        parts.append(f"JOIN ({_group_sql(history, group)}) AS {group.gid} USING ({keys}, t)")
    stored = ", ".join(c for g in history.groups for c in g.stored())
    nothing = {"start": "[]::BIGINT[]", "count": "[]::BIGINT[]"}
    nothing_ever = {"count": "0::BIGINT", "sum": "0.0::DOUBLE", "sumsq": "0.0::DOUBLE", "min": "'NaN'::DOUBLE",
                    "max": "'NaN'::DOUBLE"}
    initial = ", ".join(
        f"{nothing.get(p, '[]::DOUBLE[]') if g.resolution_us else nothing_ever[p]} AS {g.gid}_{p}"
        for g in history.groups for p in g.parts())
    # Each entity also starts with an empty state at the epoch: Feast's file store drops an entity row
    # whose entity has feature rows but none at or before the row's time (its first row, here).
    return f"""
        SELECT * FROM (
            SELECT {keys}, make_timestamp(t + 1)::TIMESTAMPTZ AS {FEATURE_TIMESTAMP}, t AS {_ident(history.last_event)}
                   {', ' + stored if stored else ''}
            FROM {' '.join(parts)}
            UNION ALL BY NAME
            SELECT DISTINCT {keys}, make_timestamp(0)::TIMESTAMPTZ AS {FEATURE_TIMESTAMP},
                   NULL::BIGINT AS {_ident(history.last_event)} {', ' + initial if initial else ''}
            FROM src WHERE {_not_null(history.keys)}
        ) ORDER BY {FEATURE_TIMESTAMP}, {keys}
    """


def columns_sql(view: ColumnsView, keys: tuple[str, ...]) -> str:
    """The SQL of a columns view's table over ``src``: the latest row per entity and time."""
    key_list = ", ".join(_ident(k) for k in keys)
    columns = ", ".join(_ident(c) for c in view.columns)
    return f"""
        SELECT * FROM (
            SELECT {key_list}, make_timestamp(_t + 1)::TIMESTAMPTZ AS {FEATURE_TIMESTAMP}, {columns}
            FROM src WHERE {_not_null(keys)}
            QUALIFY row_number() OVER (PARTITION BY {key_list}, _t ORDER BY _row DESC) = 1
            UNION ALL BY NAME
            SELECT DISTINCT {key_list}, make_timestamp(0)::TIMESTAMPTZ AS {FEATURE_TIMESTAMP}
            FROM src WHERE {_not_null(keys)}
        ) ORDER BY {FEATURE_TIMESTAMP}, {key_list}
    """


def check_rows(con: duckdb.DuckDBPyConnection, declaration: FeatureDeclaration, label: str) -> int:
    """Row count, after checking what only the data can tell (no rows, null timestamps, duplicates)."""
    row = con.execute("SELECT count(*) FROM src").fetchone()
    n_rows = int(row[0]) if row else 0
    if not n_rows:
        raise InvalidInput(f"the dataset {label} has no rows: there is nothing to compute features from")
    if declaration.timestamp:
        nulls = con.execute(f"SELECT count(*) FROM src WHERE {_ident(declaration.timestamp)} IS NULL").fetchone()
        if nulls and nulls[0]:
            raise InvalidInput(f"{nulls[0]} rows of {label} have no {declaration.timestamp!r}: drop or fill them "
                               "before applying the features")
        return n_rows
    for view in declaration.views:
        if isinstance(view, ColumnsView):
            keys = ", ".join(_ident(k) for k in declaration.entity(view.entity).keys)
            columns = ", ".join(_ident(c) for c in view.columns)
            dup = con.execute(f"SELECT count(*) FROM (SELECT DISTINCT {keys}, {columns} FROM src) "
                              f"GROUP BY {keys} HAVING count(*) > 1 LIMIT 1").fetchone()
            if dup:
                raise InvalidInput(f"columns view {view.name!r}: some {view.entity!r} entities have several rows with "
                                   "different values, and without a timestamp there is no latest one; declare the "
                                   "timestamp or keep one row per entity")
    return n_rows


def write_table(con: duckdb.DuckDBPyConnection, sql: str, path: Path) -> int:
    """Write a query to Parquet atomically (a reader sees the old or the new file); rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        con.execute(f"COPY ({sql}) TO {_literal(str(tmp))} (FORMAT parquet, COMPRESSION zstd)")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    row = con.execute(f"SELECT count(*) FROM read_parquet({_literal(str(path))})").fetchone()
    return int(row[0]) if row else 0
