"""One page of a dataset, sorted and filtered, without loading the dataset.

The data browser shows 100 rows of a 10M-row dataset at a time; pulling the whole dataset into pandas
to sort it costs seconds and gigabytes per click. Here DuckDB works over the Parquet files directly:

- a first page of unfiltered Parquet sorted by a numeric column is one query: the row-group min/max
  statistics give a value the page cannot lie beyond, and filtering on it lets DuckDB skip most row
  groups and decode the other columns only for the few rows that pass;
- otherwise, in two phases: (1) find *which* rows belong on the page, reading only the sort and filter
  columns plus Parquet's virtual row ids (file_index, file_row_number): DuckDB's top-N for early pages;
  for a page deep in the order, bounds around it estimated from a sample, the rows before the lower
  bound counted exactly and only the rows between the bounds sorted; (2) fetch just those rows, file by
  file, filtering on ``file_row_number`` so DuckDB reads only the vectors that hold them.

Ties in the sort column are broken by file order, so pages never overlap or skip rows, and the order
equals a stable sort. Filters are data, not SQL: columns are checked against the dataset and values are
bound as parameters. CSV has no row ids, so a CSV page is one plain query.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workbench.data import _source
from workbench.data._source import DataFiles, Source, quote_ident
from workbench.errors import InvalidInput

MAX_LIMIT = 10_000
OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "contains")
_SQL_OPS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
# Below this many rows to skip, a plain top-N (ORDER BY ... LIMIT) is fastest.
_TOPN_MAX = 50_000
_SAMPLE_ROWS = 65_536  # at least; 1 % of the values up to 1M, so the window stays a small share
_SAFE_TYPE = re.compile(r"^[A-Z0-9_ (),]+$")

Filter = tuple[str, str, Any] | Sequence[Any] | Mapping[str, Any]


@dataclass(frozen=True)
class Page:
    """A page of rows plus what a pager needs: the total after filtering, and where the page starts."""

    rows: pd.DataFrame
    total_rows: int
    offset: int
    limit: int

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.rows) < self.total_rows

    @property
    def page_count(self) -> int:
        return max(1, math.ceil(self.total_rows / self.limit)) if self.limit else 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for REST handlers (timestamps as ISO strings, nulls as None)."""
        frame = self.rows.astype(object).where(self.rows.notna(), None)
        records = [{k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in r.items()}
                   for r in frame.to_dict(orient="records")]
        return {"rows": records, "columns": list(self.rows.columns), "total_rows": self.total_rows,
                "offset": self.offset, "limit": self.limit}


def read_page(
    source: Source,
    offset: int = 0,
    limit: int = 100,
    sort_by: str | Sequence[str] | None = None,
    descending: bool = False,
    filters: Sequence[Filter] | None = None,
    columns: Sequence[str] | None = None,
) -> Page:
    """Rows ``offset .. offset+limit`` of the dataset after filtering and sorting (nulls last).

    ``filters`` is a list of ``(column, op, value)`` with op one of ``==, !=, <, <=, >, >=, in,
    contains``; all must hold. A null never matches, except ``(col, "==", None)`` / ``(col, "!=", None)``
    which test for nulls. ``limit`` is capped at 10,000.
    """
    if isinstance(offset, bool) or not isinstance(offset, int | np.integer) or offset < 0:
        raise InvalidInput(f"offset must be an integer >= 0, got {offset!r}")
    if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 0:
        raise InvalidInput(f"limit must be an integer >= 0, got {limit!r}")
    offset, limit = int(offset), min(int(limit), MAX_LIMIT)
    data = _source.resolve(source)
    con = _source.connect()
    try:
        return _read_page(con, data, offset, limit, sort_by, descending, filters, columns)
    finally:
        con.close()


def _read_page(con: duckdb.DuckDBPyConnection, data: DataFiles, offset: int, limit: int,
               sort_by: str | Sequence[str] | None, descending: bool, filters: Sequence[Filter] | None,
               columns: Sequence[str] | None) -> Page:
    types = _source.columns_of(con, data)
    wanted = _check_columns(columns, types, "columns") if columns is not None else list(types)
    sort_cols = _check_columns([sort_by] if isinstance(sort_by, str) else sort_by, types, "sort_by") \
        if sort_by is not None else []
    where, params = _compile_filters(filters or [], types)
    scan = _source.scan_sql(data)
    base_params = _source.params(data, **params)
    # Unfiltered Parquet: the footers know the row count and the statistics phase 1 can use.
    footers = _footers(data) if data.format == "parquet" and where == "TRUE" else None
    with _source.errors_as_invalid_input(data, "read a page of"):
        if footers is not None:
            total = sum(meta.num_rows for meta in footers)
        else:
            row = con.execute(f"SELECT count(*) FROM {scan} WHERE {where}", base_params).fetchone()
            total = int(row[0]) if row else 0
        if data.format == "csv":
            frame = _csv_page(con, data, wanted, sort_cols, descending, where, base_params, offset, limit)
        elif offset >= total or limit == 0:
            frame = _empty(con, data, wanted)
        else:
            frame = _bounded_page(con, data, types, wanted, sort_cols, descending, offset, limit, footers)
            if frame is None:
                keys = _page_keys(con, data, types, sort_cols, descending, where, base_params, offset, limit,
                                  footers)
                frame = _fetch_rows(con, data, wanted, keys)
    return Page(_fix_timezones(frame, types), total, offset, limit)


def _check_columns(names: Sequence[str], types: Mapping[str, str], what: str) -> list[str]:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise InvalidInput(f"{what} must be a list of column names, got {names!r}")
    out: list[str] = []
    for name in names:
        if not isinstance(name, str) or name not in types:
            raise InvalidInput(f"{what}: unknown column {name!r}; the dataset has {list(types)}")
        if name in out:
            raise InvalidInput(f"{what}: column {name!r} given twice")
        out.append(name)
    return out


def _value_sql(param: str, duck_type: str) -> str:
    """A bound value, cast to the column's type for timestamps (DuckDB won't compare TZ variants)."""
    if _source.logical_type(duck_type) == "timestamp" and _SAFE_TYPE.match(duck_type.upper()):
        return f"CAST(${param} AS {duck_type})"
    return f"${param}"


def _timestamp_value(value: Any, duck_type: str) -> str:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{value!r} is not a timestamp") from exc
    aware = "TIME ZONE" in duck_type.upper() or "TZ" in duck_type.upper()
    if aware:
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    elif ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.isoformat()


def _compile_filters(filters: Sequence[Filter], types: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """Compile filters to a WHERE clause with quoted, checked identifiers and bound values."""
    if isinstance(filters, str | bytes | Mapping) or not isinstance(filters, Sequence):
        raise InvalidInput("filters must be a list of (column, op, value)")
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for i, f in enumerate(filters):
        if isinstance(f, Mapping):
            if set(f) != {"column", "op", "value"}:
                raise InvalidInput(f"filter {f!r} must have exactly the keys column, op, value")
            column, op, value = f["column"], f["op"], f["value"]
        elif isinstance(f, Sequence) and not isinstance(f, str | bytes) and len(f) == 3:
            column, op, value = f
        else:
            raise InvalidInput(f"filter {f!r} must be (column, op, value)")
        if not isinstance(column, str) or column not in types:
            raise InvalidInput(f"filter on unknown column {column!r}; the dataset has {list(types)}")
        if op not in OPS:
            raise InvalidInput(f"filter op {op!r} is not one of {OPS}")
        col, duck_type, p = quote_ident(column), types[column], f"f{i}"
        is_ts = _source.logical_type(duck_type) == "timestamp"
        if value is None:
            if op not in ("==", "!="):
                raise InvalidInput(f"filter ({column!r}, {op!r}, None): only == and != accept None")
            clauses.append(f"{col} IS {'NOT ' if op == '!=' else ''}NULL")
            continue
        if op == "in":
            if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence | set | frozenset):
                raise InvalidInput(f"filter ({column!r}, 'in', ...) needs a list of values, got {value!r}")
            values = [_timestamp_value(v, duck_type) if is_ts else _plain(v) for v in value]
            if not values:
                clauses.append("FALSE")
                continue
            params[p] = values
            target = f"CAST(${p} AS {duck_type}[])" if is_ts and _SAFE_TYPE.match(duck_type.upper()) \
                else f"${p}"
            clauses.append(f"list_contains({target}, {col})")
        elif op == "contains":
            params[p] = str(value)
            clauses.append(f"contains(CAST({col} AS VARCHAR), CAST(${p} AS VARCHAR))")
        else:
            params[p] = _timestamp_value(value, duck_type) if is_ts else _plain(value)
            clauses.append(f"{col} {_SQL_OPS[op]} {_value_sql(p, duck_type)}")
    return (" AND ".join(f"({c})" for c in clauses) or "TRUE"), params


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise InvalidInput(f"filter value {value!r} must be a number, string, bool or timestamp")


def _order_sql(sort_cols: Sequence[str], descending: bool) -> str:
    direction = "DESC" if descending else "ASC"
    keys = [f"{quote_ident(c)} {direction} NULLS LAST" for c in sort_cols]
    return ", ".join([*keys, "file_index", "file_row_number"])


def _bounded_page(con: duckdb.DuckDBPyConnection, data: DataFiles, types: Mapping[str, str],
                  wanted: Sequence[str], sort_cols: Sequence[str], descending: bool, offset: int, limit: int,
                  footers: list[pq.FileMetaData] | None) -> pd.DataFrame | None:
    """A first page of unfiltered Parquet sorted by one numeric column, in a single query.

    Row-group statistics give a bound the page cannot lie beyond (see ``_stats_bound``); filtering on
    it lets DuckDB skip most row groups and decode the other columns only for the few rows that pass,
    which beats finding row ids first and fetching them file by file. None when no bound applies.
    """
    if footers is None or len(sort_cols) != 1 or _source.logical_type(types[sort_cols[0]]) not in ("int", "float"):
        return None
    bound = _stats_bound(footers, sort_cols[0], descending, offset + limit)
    if bound is None:
        return None
    col = quote_ident(sort_cols[0])
    cols = ", ".join(quote_ident(c) for c in wanted) or "1 AS __wb_none"
    sql = (f"SELECT {cols} FROM {_source.scan_sql(data)} WHERE {col} {'>=' if descending else '<='} $wbound "
           f"ORDER BY {_order_sql(sort_cols, descending)} LIMIT {limit} OFFSET {offset}")
    frame = con.execute(sql, _source.params(data, wbound=bound)).df()
    return frame[list(wanted)]


def _page_keys(con: duckdb.DuckDBPyConnection, data: DataFiles, types: Mapping[str, str],
               sort_cols: Sequence[str], descending: bool, where: str, params: dict[str, Any],
               offset: int, limit: int, footers: list[pq.FileMetaData] | None = None) -> list[tuple[int, int]]:
    """Phase 1: the (file_index, file_row_number) of the page's rows, in page order."""
    scan = _source.scan_sql(data)
    if not sort_cols:
        # File order; DuckDB preserves insertion order, so a streaming LIMIT/OFFSET is exact.
        sql = f"SELECT file_index, file_row_number FROM {scan} WHERE {where} LIMIT {limit} OFFSET {offset}"
        return [(int(f), int(r)) for f, r in con.execute(sql, params).fetchall()]
    if offset > _TOPN_MAX and len(sort_cols) == 1:
        keys = _window_keys(con, data, types, sort_cols[0], descending, where, params, offset, limit, footers)
        if keys is not None:
            return keys
    sql = (f"SELECT file_index, file_row_number FROM {scan} WHERE {where} "
           f"ORDER BY {_order_sql(sort_cols, descending)} LIMIT {limit} OFFSET {offset}")
    return [(int(f), int(r)) for f, r in con.execute(sql, params).fetchall()]


def _footers(data: DataFiles) -> list[pq.FileMetaData] | None:
    """The Parquet footers (row counts, row-group statistics), or None if one cannot be read."""
    try:
        footers = []
        for path in data.files:
            with _source.open_binary(path) as fh:
                footers.append(pq.read_metadata(fh))
        return footers
    except (OSError, ValueError, pa.ArrowException):
        return None


def _stats_bound(footers: Sequence[pq.FileMetaData], column: str, descending: bool,
                 k: int) -> float | int | None:
    """A value the first ``k`` rows in sort order cannot lie beyond, from Parquet row-group statistics.

    Every row group holds its minimum, so the k-th smallest of the row-group minima bounds the k-th
    smallest value (and the k-th largest maximum bounds the k-th largest); nulls, sorted last, are
    never among the first k. None when fewer than ``k`` row groups have statistics.
    """
    extremes: list[Any] = []
    try:
        for meta in footers:
            paths = [meta.schema.column(j).path for j in range(meta.num_columns)]
            if column not in paths:
                return None
            j = paths.index(column)
            for i in range(meta.num_row_groups):
                stats = meta.row_group(i).column(j).statistics
                if stats is not None and stats.has_min_max and meta.row_group(i).num_rows > 0:
                    extremes.append(stats.max if descending else stats.min)
    except (ValueError, pa.ArrowException):
        return None
    extremes = [v for v in extremes if isinstance(v, int | float) and not isinstance(v, bool)
                and not (isinstance(v, float) and math.isnan(v))]
    if len(extremes) < k:
        return None
    extremes.sort(reverse=descending)
    return extremes[k - 1]


def _window_keys(con: duckdb.DuckDBPyConnection, data: DataFiles, types: Mapping[str, str], column: str,
                 descending: bool, where: str, params: dict[str, Any], offset: int, limit: int,
                 footers: list[pq.FileMetaData] | None = None) -> list[tuple[int, int]] | None:
    """Phase 1 for a deep page: sort only the rows between sampled bounds around the page.

    Two scans of the sort column: one estimates the values at the page's ranks from a reservoir
    sample, widened by four standard errors (and wider, in reserve); the other counts exactly the
    rows below the lower bound and collects the (value, file, row) of the rows between the bounds,
    sorting and slicing those in DuckDB. Correctness does not rest on the sample: the window is used
    only if the exact counts prove it covers the page; otherwise the failing side is widened, and in
    the end the caller falls back to top-N.
    """
    scan, col, duck_type = _source.scan_sql(data), quote_ident(column), types[column]
    n_values = _non_null_count(footers, column) if footers is not None else None
    if n_values is None:
        row = con.execute(f"SELECT count({col}) FROM {scan} WHERE {where}", params).fetchone()
        n_values = int(row[0]) if row else 0
    if offset + limit > n_values:  # the page reaches into the nulls (sorted last)
        return None
    # Ascending ranks [first, last) of the page among the non-null values.
    first = n_values - offset - limit if descending else offset
    last = first + limit
    m = min(max(_SAMPLE_ROWS, n_values // 100), 1 << 20)
    p_first, p_last = first / n_values, last / n_values
    spread = max(p_first * (1 - p_first), p_last * (1 - p_last), 1 / m)
    slack = 4.0 * math.sqrt(spread / m) + 2 / m
    # Candidate bounds at 1x, 3x and 10x the slack, all from one pass; a side whose bound turns out
    # too tight moves to the next one without sampling again.
    widths = (1, 3, 10)
    levels = [max(p_first - w * slack, 0.0) for w in widths] + [min(p_last + w * slack, 1.0) for w in widths]
    if _source.logical_type(duck_type) in ("int", "float"):
        sample = _sorted_sample(con, data, col, where, params, m)
        if sample is None:
            return None
        quantiles = [sample[min(int(level * len(sample)), len(sample) - 1)].item() for level in levels]
    else:
        sql = (f"SELECT quantile_disc({col}, $levels) FROM (SELECT {col} FROM {scan} WHERE ({where}) "
               f"AND {col} IS NOT NULL) USING SAMPLE reservoir({m} ROWS) REPEATABLE (7)")
        row = con.execute(sql, {**params, "levels": levels}).fetchone()
        if row is None or row[0] is None:
            return None
        quantiles = list(row[0])
    lows = [q if lv > 0 else None for q, lv in zip(quantiles[:3], levels[:3], strict=True)]
    highs = [q if lv < 1 else None for q, lv in zip(quantiles[3:], levels[3:], strict=True)]
    li = hi_i = 0
    while li < len(widths) and hi_i < len(widths):
        lo, hi = lows[li], highs[hi_i]
        bounds: dict[str, Any] = {**params, "n_values": n_values, "offset": offset, "first": first}
        conds = [f"{col} IS NOT NULL"]
        if lo is not None:
            bounds["wlo"] = lo
            conds.append(f"{col} >= {_value_sql('wlo', duck_type)}")
        if hi is not None:
            bounds["whi"] = hi
            conds.append(f"{col} <= {_value_sql('whi', duck_type)}")
        below = f"count(*) FILTER (WHERE {col} < {_value_sql('wlo', duck_type)})" if lo is not None else "0"
        upto = f"count(*) FILTER (WHERE {col} <= {_value_sql('whi', duck_type)})" if hi is not None \
            else "CAST($n_values AS BIGINT)"
        # Sorted as the page is: by value, then file order. For a descending page the row ids are
        # negated, so one descending sort of the structs gives value descending, file order ascending.
        sign = "-" if descending else ""
        item = (f"{{'v': {col}, 'f': {sign}CAST(file_index AS BIGINT), "
                f"'r': {sign}CAST(file_row_number AS BIGINT)}}")
        skip = "$offset - ($n_values - u)" if descending else "$first - b"
        sql = (f"SELECT b, u, list_slice(list_sort(w, '{'DESC' if descending else 'ASC'}'), {skip} + 1, "
               f"{skip} + {limit}) FROM (SELECT {below} AS b, {upto} AS u, "
               f"list({item}) FILTER (WHERE {' AND '.join(conds)}) AS w FROM {scan} WHERE {where})")
        row = con.execute(sql, _used(bounds, sql)).fetchone()
        assert row is not None
        n_below, n_upto, window = int(row[0]), int(row[1]), row[2]
        if n_below <= first and n_upto >= last:
            factor = -1 if descending else 1
            return [(factor * int(k["f"]), factor * int(k["r"])) for k in (window if window is not None else [])]
        li += n_below > first
        hi_i += n_upto < last
    return None


_SAMPLES: dict[tuple[Any, ...], np.ndarray] = {}
_SAMPLES_KEPT = 8


def _sorted_sample(con: duckdb.DuckDBPyConnection, data: DataFiles, col: str, where: str,
                   params: dict[str, Any], m: int) -> np.ndarray | None:
    """A sorted reservoir sample of a numeric sort column's non-null values (the filter applied), kept
    per dataset state, column and filter: a user scrolling through a sorted view asks for page after page
    of the same order, and the sample (≤ 8 MB) then saves one of the two scans a deep page costs. The
    files' sizes and modification times are part of the key, so a rewritten dataset is sampled again."""
    try:
        stamp = tuple((f, *_source.stat(f)) for f in data.files)
    except OSError:
        stamp = None
    key = (stamp, col, where, tuple(sorted((k, repr(v)) for k, v in params.items())), m)
    if stamp is not None and key in _SAMPLES:
        return _SAMPLES[key]
    scan = _source.scan_sql(data)
    values = con.execute(f"SELECT CAST({col} AS DOUBLE) AS v FROM (SELECT {col} FROM {scan} WHERE ({where}) "
                         f"AND {col} IS NOT NULL) USING SAMPLE reservoir({m} ROWS) REPEATABLE (7)",
                         params).fetchnumpy()["v"]
    if len(values) == 0:
        return None
    sample = np.sort(np.asarray(values, dtype=np.float64))
    if stamp is not None and _SAMPLES_KEPT > 0:
        while len(_SAMPLES) >= _SAMPLES_KEPT:
            _SAMPLES.pop(next(iter(_SAMPLES)))
        _SAMPLES[key] = sample
    return sample


def _used(params: dict[str, Any], sql: str) -> dict[str, Any]:
    """The parameters a statement refers to (DuckDB rejects unused ones)."""
    return {k: v for k, v in params.items() if re.search(rf"\${re.escape(k)}\b", sql)}


def _non_null_count(footers: Sequence[pq.FileMetaData], column: str) -> int | None:
    """Non-null values of a column from the footers' null counts, or None if any is missing."""
    total = 0
    try:
        for meta in footers:
            paths = [meta.schema.column(j).path for j in range(meta.num_columns)]
            if column not in paths:
                return None
            j = paths.index(column)
            for i in range(meta.num_row_groups):
                group = meta.row_group(i)
                stats = group.column(j).statistics
                if stats is None or not stats.has_null_count:
                    return None
                total += group.num_rows - stats.null_count
    except (ValueError, pa.ArrowException):
        return None
    return total


def _fetch_rows(con: duckdb.DuckDBPyConnection, data: DataFiles, wanted: Sequence[str],
                keys: Sequence[tuple[int, int]]) -> pd.DataFrame:
    """Phase 2: read just the page's rows, each file filtered on its row numbers, then restore order.

    Each file is its own small query (a literal IN list of row numbers lets the scan skip to the
    vectors holding them); the files are read in parallel on separate cursors, since one such query
    barely uses a second core.
    """
    if not keys:
        return _empty(con, data, wanted)
    by_file: dict[int, list[int]] = defaultdict(list)
    for f, r in keys:
        by_file[f].append(r)
    cols = "".join(f"{quote_ident(c)}, " for c in wanted)

    def fetch(item: tuple[int, list[int]]) -> pd.DataFrame:
        f, rows = item
        # Row numbers are integers DuckDB gave us, never user input, so a literal list is safe.
        in_list = ", ".join(str(int(r)) for r in sorted(rows))
        cursor = _source.connect()
        try:
            return cursor.execute(f"SELECT {cols}{int(f)} AS __wb_file, file_row_number AS __wb_row "
                                  f"FROM read_parquet($file) WHERE file_row_number IN ({in_list})",
                                  {"file": str(data.files[f])}).df()
        finally:
            cursor.close()

    items = sorted(by_file.items())
    workers = min(len(items), _source.threads())
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(fetch, items))
    else:
        parts = [fetch(item) for item in items]
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    position = {k: i for i, k in enumerate(keys)}
    order = np.argsort([position[(int(f), int(r))] for f, r in
                        zip(frame["__wb_file"], frame["__wb_row"], strict=True)], kind="stable")
    return frame.iloc[order][list(wanted)].reset_index(drop=True)


def _csv_page(con: duckdb.DuckDBPyConnection, data: DataFiles, wanted: Sequence[str],
              sort_cols: Sequence[str], descending: bool, where: str, params: dict[str, Any], offset: int,
              limit: int) -> pd.DataFrame:
    """CSV has no row ids to fetch by, so one query does it all (CSVs users bring are small)."""
    numbered = _source.numbered_sql(data)
    direction = "DESC" if descending else "ASC"
    order = ", ".join([*(f"{quote_ident(c)} {direction} NULLS LAST" for c in sort_cols),
                       "__wb_file", "__wb_row"])
    cols = ", ".join(quote_ident(c) for c in wanted) or "1 AS __wb_none"
    sql = f"SELECT {cols} FROM {numbered} WHERE {where} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
    frame = con.execute(sql, params).df()
    return frame[list(wanted)]


def _empty(con: duckdb.DuckDBPyConnection, data: DataFiles, wanted: Sequence[str]) -> pd.DataFrame:
    cols = ", ".join(quote_ident(c) for c in wanted) or "1 AS __wb_none"
    frame = con.execute(f"SELECT {cols} FROM {_source.scan_sql(data)} LIMIT 0", _source.params(data)).df()
    return frame[list(wanted)]


def _fix_timezones(frame: pd.DataFrame, types: Mapping[str, str]) -> pd.DataFrame:
    # DuckDB hands TIMESTAMPTZ_NS to pandas without its zone; put UTC back so all pages agree.
    for name in frame.columns:
        t = types.get(name, "").upper()
        if ("TIME ZONE" in t or "TZ" in t) and isinstance(frame[name].dtype, np.dtype) \
                and frame[name].dtype.kind == "M":
            frame[name] = frame[name].dt.tz_localize("UTC")
    return frame
