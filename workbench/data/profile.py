"""Column statistics and histograms of a dataset, computed by DuckDB aggregates over its files.

The data stage shows what a dataset looks like before anyone trains on it: how complete each column
is, its range and spread, the commonest values, a histogram. All of it is a few aggregate queries, so
profiling 10M rows costs seconds and a few hundred MB, and only the summary reaches the notebook.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from workbench.data import _source
from workbench.data._source import DataFiles, Source, quote_ident
from workbench.data.schema import _jsonable
from workbench.errors import InvalidInput

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
TOP_VALUES = 10
EXACT_QUANTILE_MAX_ROWS = 2_000_000  # above this, quantiles are estimated from a reservoir sample
RESERVOIR_SIZE = 65_536  # rank error of the estimates about 0.2 % of the rows
_LOW_CARDINALITY = 10_000  # columns with at most this many values get their top values in one pass


@dataclass(frozen=True)
class Histogram:
    """Counts per bin; bins are [edge_i, edge_i+1), the last one closed, as in numpy.histogram.

    Timestamp histograms have edges in seconds since the epoch (UTC).
    """

    edges: list[float]
    counts: list[int]


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    dtype: str  # int | float | string | bool | timestamp | other
    duckdb_type: str
    count: int  # non-null values
    nulls: int
    distinct_approx: int
    min: Any = None
    max: Any = None
    mean: float | None = None  # for bool: the share of True
    std: float | None = None
    quantiles: dict[str, float] = field(default_factory=dict)  # "0.25" -> value
    top_values: list[tuple[Any, int]] = field(default_factory=list)
    histogram: Histogram | None = None

    @property
    def null_fraction(self) -> float:
        total = self.count + self.nulls
        return self.nulls / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["null_fraction"] = self.null_fraction
        d["min"], d["max"] = _jsonable(self.min), _jsonable(self.max)
        d["top_values"] = [[_jsonable(v), int(c)] for v, c in self.top_values]
        return d


@dataclass(frozen=True)
class DatasetProfile:
    source: str
    n_rows: int
    columns: list[ColumnProfile]

    def __getitem__(self, name: str) -> ColumnProfile:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_frame(self) -> pd.DataFrame:
        """One row per column: the scalar statistics (histograms and top values stay in to_dict)."""
        rows = []
        for c in self.columns:
            row = {"column": c.name, "dtype": c.dtype, "count": c.count, "nulls": c.nulls,
                   "null_fraction": c.null_fraction, "distinct_approx": c.distinct_approx, "min": c.min,
                   "max": c.max, "mean": c.mean, "std": c.std}
            row.update({f"q{q}": c.quantiles.get(str(q)) for q in QUANTILES})
            row["top_value"] = c.top_values[0][0] if c.top_values else None
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "n_rows": self.n_rows, "columns": [c.to_dict() for c in self.columns]}


def profile_dataset(source: Source, bins: int = 20, exact_quantiles: bool | None = None) -> DatasetProfile:
    """Profile every column: counts, nulls, approximate distincts, numeric summaries, top values, histograms.

    Quantiles are exact (linear interpolation, as pandas) up to 2M rows and estimated from a
    65,536-value reservoir sample above (DuckDB's t-digest is ~15x slower), unless ``exact_quantiles``
    says otherwise.
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= 1000:
        raise InvalidInput(f"bins must be an integer between 1 and 1000, got {bins!r}")
    data = _source.resolve(source)
    con = _source.connect()
    try:
        return _profile(con, data, bins, exact_quantiles)
    finally:
        con.close()


def _profile(con: duckdb.DuckDBPyConnection, data: DataFiles, bins: int,
             exact_quantiles: bool | None) -> DatasetProfile:
    types = _source.columns_of(con, data)
    scan, params = _source.scan_sql(data), _source.params(data)
    n_rows = _source.count_rows(con, data)
    exact = exact_quantiles if exact_quantiles is not None else n_rows <= EXACT_QUANTILE_MAX_ROWS
    levels = "[" + ", ".join(str(q) for q in QUANTILES) + "]"

    # Pass 1: every scalar statistic of every column in one scan.
    selects: list[str] = []
    layout: list[tuple[str, str, list[str]]] = []  # (column, logical type, statistic names)
    for name, duck_type in types.items():
        col, logical = quote_ident(name), _source.logical_type(duck_type)
        stats = ["count", "distinct"]
        exprs = [f"count({col})", f"approx_count_distinct({col})"]
        if logical in ("int", "float"):
            value = f"CAST({col} AS DOUBLE)"
            q_expr = (f"quantile_cont({value}, {levels})" if exact
                      else f"reservoir_quantile({value}, {levels}, {RESERVOIR_SIZE})")
            stats += ["min", "max", "mean", "std", "quantiles"]
            exprs += [f"min({col})", f"max({col})", f"avg({value})", f"stddev_samp({value})", q_expr]
        elif logical == "timestamp":
            stats += ["min", "max", "lo", "hi"]
            exprs += [f"min({col})", f"max({col})", f"min(epoch(CAST({col} AS TIMESTAMPTZ)))",
                      f"max(epoch(CAST({col} AS TIMESTAMPTZ)))"]
        elif logical == "bool":
            stats += ["mean"]
            exprs += [f"avg(CAST({col} AS DOUBLE))"]
        elif logical == "string":
            stats += ["min", "max"]
            exprs += [f"min({col})", f"max({col})"]
        layout.append((name, logical, stats))
        selects += exprs
    with _source.errors_as_invalid_input(data, "profile"):
        row = con.execute(f"SELECT {', '.join(selects) or '1'} FROM {scan}", params).fetchone()
    assert row is not None
    values = iter(row)
    stats_of = {name: (logical, {s: next(values) for s in stats}) for name, logical, stats in layout}
    for logical, got in stats_of.values():
        if logical in ("int", "float") and got["min"] is not None:
            got["lo"], got["hi"] = float(got["min"]), float(got["max"])  # the histogram's range

    with _source.errors_as_invalid_input(data, "profile"):
        histograms = _histograms(con, data, stats_of, bins)
        tops = _top_values(con, data, stats_of)
    columns: list[ColumnProfile] = []
    for name, (logical, got) in stats_of.items():
        count = int(got["count"])
        quantiles = {str(q): float(v) for q, v in zip(QUANTILES, got.get("quantiles") or [], strict=False)
                     if v is not None}
        columns.append(ColumnProfile(
            name=name, dtype=logical, duckdb_type=types[name], count=count, nulls=n_rows - count,
            distinct_approx=int(got["distinct"]), min=got.get("min"), max=got.get("max"),
            mean=_float(got.get("mean")), std=_float(got.get("std")), quantiles=quantiles,
            top_values=tops.get(name, []), histogram=histograms.get(name)))
    return DatasetProfile(data.describe(), n_rows, columns)


def _float(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return None if math.isnan(f) else f


def _top_values(con: duckdb.DuckDBPyConnection, data: DataFiles,
                stats_of: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, list[tuple[Any, int]]]:
    """Commonest values of string and bool columns: one pass for all low-cardinality columns."""
    scan, params = _source.scan_sql(data), _source.params(data)
    wanted = [n for n, (logical, got) in stats_of.items() if logical in ("string", "bool") and got["count"]]
    low = [n for n in wanted if int(stats_of[n][1]["distinct"]) <= _LOW_CARDINALITY]
    out: dict[str, list[tuple[Any, int]]] = {}
    if low:
        row = con.execute(f"SELECT {', '.join(f'histogram({quote_ident(n)})' for n in low)} FROM {scan}",
                          params).fetchone()
        assert row is not None
        for name, counts in zip(low, row, strict=True):
            items = [(k, int(v)) for k, v in dict(counts or {}).items() if k is not None]
            items.sort(key=lambda kv: (-kv[1], str(kv[0])))
            out[name] = items[:TOP_VALUES]
    for name in (n for n in wanted if n not in low):
        col = quote_ident(name)
        rows = con.execute(f"SELECT {col}, count(*) AS n FROM {scan} WHERE {col} IS NOT NULL "
                           f"GROUP BY {col} ORDER BY n DESC, {col} LIMIT {TOP_VALUES}", params).fetchall()
        out[name] = [(v, int(n)) for v, n in rows]
    return out


def _histograms(con: duckdb.DuckDBPyConnection, data: DataFiles,
                stats_of: dict[str, tuple[str, dict[str, Any]]], bins: int) -> dict[str, Histogram]:
    """Equal-width histograms of all numeric and timestamp columns in one pass.

    Bins follow numpy.histogram exactly: edges from linspace, [edge_i, edge_i+1) with the last bin
    closed. DuckDB's ``histogram(x, boundaries)`` counts right-closed bins (b_i-1, b_i], so each
    inner edge is passed as the double just below it: x < edge exactly when x <= that double.
    """
    selects: list[str] = []
    names: list[str] = []
    edges_of: dict[str, list[float]] = {}
    bounds_of: dict[str, list[float]] = {}
    params = _source.params(data)
    for name, (logical, got) in stats_of.items():
        if logical not in ("int", "float", "timestamp") or not got["count"] or got.get("lo") is None:
            continue
        lo, hi = float(got["lo"]), float(got["hi"])
        if not (math.isfinite(lo) and math.isfinite(hi)):
            continue
        if lo == hi:  # numpy widens a zero-width range by 0.5 on each side
            lo, hi = lo - 0.5, hi + 0.5
        edges = [float(e) for e in np.linspace(lo, hi, bins + 1)]
        bounds = [math.nextafter(e, -math.inf) for e in edges[1:-1]] + [hi]
        if any(b >= c for b, c in zip(bounds, bounds[1:], strict=False)):
            continue  # a range too narrow for this many bins
        k = len(names)
        col = quote_ident(name)
        x = f"epoch(CAST({col} AS TIMESTAMPTZ))" if logical == "timestamp" else f"CAST({col} AS DOUBLE)"
        selects.append(f"histogram({x}, $b{k})")
        params[f"b{k}"] = bounds
        names.append(name)
        edges_of[name], bounds_of[name] = edges, bounds
    if not names:
        return {}
    row = con.execute(f"SELECT {', '.join(selects)} FROM {_source.scan_sql(data)}", params).fetchone()
    assert row is not None
    out: dict[str, Histogram] = {}
    for name, counts_map in zip(names, row, strict=True):
        position = {b: i for i, b in enumerate(bounds_of[name])}
        counts = [0] * bins
        for bound, n in dict(counts_map or {}).items():
            counts[position.get(bound, bins - 1)] += int(n)
        out[name] = Histogram(edges_of[name], counts)
    return out
