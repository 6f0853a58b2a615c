"""The on-demand transformation: features at the request time from entity states and request fields.

Feast runs it in both places a feature vector is made, on the same stored state rows:
``get_historical_features`` (training frames: the request time is each row's own time) and
``get_online_features`` (serving: the request time comes with the request). That is what makes the
two equal by construction, and why windows age at serving time: the state row holds per-step partial
aggregates and :func:`evaluate` keeps the steps at or after ``floor(request time, step) - window``.

A plan is plain data (lists and dicts of str, int, float), so the closure Feast pickles into the
registry carries no workbench objects, only this module's function by reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

REQUEST_TIME = "request_time_us"
"""Request field every on-demand view reads: the request time in microseconds since the epoch (UTC)."""

Plan = list[dict[str, Any]]


def _arrays(frame: pd.DataFrame, column: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The flattened values of a list column and the row each came from (missing rows give nothing).

    Arrow-backed list columns (the DuckDB training path) flatten without a Python loop; Feast hands
    object columns of arrays or lists.
    """
    if column not in frame.columns:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    series = frame[column]
    if isinstance(series.dtype, pd.ArrowDtype):
        import pyarrow as pa
        import pyarrow.compute as pc

        lists = pa.array(series.array)  # the ArrowExtensionArray hands over its data (__arrow_array__)
        if isinstance(lists, pa.ChunkedArray):
            lists = lists.combine_chunks()
        values = pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(np.float64)
        rows = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
        return values, rows
    pieces, rows = [], []
    for i, value in enumerate(frame[column].tolist()):
        if isinstance(value, list | tuple | np.ndarray) and len(value):
            pieces.append(np.asarray(value, dtype=np.float64))
            rows.append(np.full(len(value), i, dtype=np.int64))
    if not pieces:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(pieces), np.concatenate(rows)


def _scalar(frame: pd.DataFrame, column: str, n: int) -> np.ndarray:
    if column not in frame.columns:
        return np.full(n, np.nan)
    series = frame[column]
    if series.dtype.kind in "iuf":  # the common case, without pandas' conversion machinery
        return series.to_numpy(dtype=np.float64)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _window(frame: pd.DataFrame, out: Mapping[str, Any], t: np.ndarray) -> dict[str, np.ndarray]:
    """count, sum, sumsq, min, max per row over the kept steps of one group."""
    n = len(frame)
    prefix = f"{out['view']}__{out['group']}"
    starts, rows = _arrays(frame, f"{prefix}_start", n)
    lower = (t // out["step_us"]) * out["step_us"] - out["window_us"]
    keep = starts >= lower[rows] if len(rows) else np.zeros(0, dtype=bool)
    rows_kept = rows[keep]
    stats: dict[str, np.ndarray] = {}
    for part in ("count", "sum", "sumsq"):
        values, _ = _arrays(frame, f"{prefix}_{part}", n)
        weights = values[keep] if len(values) == len(keep) else np.zeros(len(rows_kept))  # not stored: unused
        stats[part] = np.bincount(rows_kept, weights=weights, minlength=n).astype(np.float64)
    for part, ufunc in (("min", np.fmin), ("max", np.fmax)):
        values, _ = _arrays(frame, f"{prefix}_{part}", n)
        result = np.full(n, np.nan)
        if len(values) == len(keep) and len(rows_kept):
            ufunc.at(result, rows_kept, values[keep])
        stats[part] = result
    return stats


def _ever(frame: pd.DataFrame, out: Mapping[str, Any]) -> dict[str, np.ndarray]:
    n = len(frame)
    prefix = f"{out['view']}__{out['group']}"
    stats = {part: _scalar(frame, f"{prefix}_{part}", n) for part in ("count", "sum", "sumsq", "min", "max")}
    for part in ("count", "sum", "sumsq"):
        stats[part] = np.nan_to_num(stats[part], nan=0.0)
    return stats


def _aggregate(stats: Mapping[str, np.ndarray], function: str, fill: float) -> np.ndarray:
    n = stats["count"]
    with np.errstate(divide="ignore", invalid="ignore"):
        if function == "count":
            return n
        if function == "sum":
            return stats["sum"]
        if function == "mean":
            return np.where(n > 0, stats["sum"] / n, fill)
        if function == "std":
            var = (stats["sumsq"] - stats["sum"] * stats["sum"] / n) / (n - 1)
            return np.where(n > 1, np.sqrt(np.clip(var, 0.0, None)), fill)
        value = stats[function]  # min, max
        return np.where((n > 0) & ~np.isnan(value), value, fill)


def _operand(frame: pd.DataFrame, spec: Mapping[str, Any], t: np.ndarray, done: Mapping[str, np.ndarray]) -> np.ndarray:
    n = len(frame)
    if spec["kind"] == "request":
        return _scalar(frame, spec["column"], n)
    if spec["kind"] == "column":
        return _scalar(frame, f"{spec['view']}__{spec['column']}", n)
    return _feature(frame, spec, t, done)


def _feature(frame: pd.DataFrame, out: Mapping[str, Any], t: np.ndarray,
             done: Mapping[str, np.ndarray]) -> np.ndarray:
    kind = out["kind"]
    n = len(frame)
    if kind == "aggregate":
        stats = _ever(frame, out) if out["window_us"] is None else _window(frame, out, t)
        return _aggregate(stats, out["function"], out["fill"])
    if kind == "since":
        last = _scalar(frame, f"{out['view']}__{out['column']}", n)
        return np.where(np.isnan(last), out["fill"], (t - np.nan_to_num(last)) / 1e6)
    if kind == "time":
        stamps = pd.to_datetime(t, unit="us", utc=True)
        if out["part"] == "hour":
            return np.asarray(stamps.hour, dtype=np.float64)
        weekday = np.asarray(stamps.dayofweek, dtype=np.float64)
        return weekday if out["part"] == "day_of_week" else (weekday >= 5).astype(np.float64)
    if kind == "relative":
        a, b = _operand(frame, out["value"], t, done), _operand(frame, out["to"], t, done)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = a / b if out["how"] == "ratio" else a - b
        return np.where(np.isfinite(value), value, out["fill"])
    raise ValueError(f"unknown on-demand feature kind {kind!r}")


def evaluate(plan: Plan, frame: pd.DataFrame) -> pd.DataFrame:
    """The plan's features for each row of ``frame`` (Feast's joined rows, or its online response)."""
    n = len(frame)
    t = _scalar(frame, REQUEST_TIME, n)
    t = np.nan_to_num(t, nan=0.0).astype(np.int64)
    done: dict[str, np.ndarray] = {}
    columns: dict[str, np.ndarray] = {}
    for out in plan:
        value = _feature(frame, out, t, done)
        done[out["name"]] = value
        columns[out["name"]] = np.rint(value).astype(np.int64) if out.get("dtype") == "int64" else value
    return pd.DataFrame(columns, index=frame.index)


def make_udf(plan: Sequence[Mapping[str, Any]]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A pandas UDF for an OnDemandFeatureView; the plan is copied into its closure."""
    frozen: Plan = [dict(item) for item in plan]

    # No annotations: Feast evaluates them (get_type_hints) where the unpickled closure has no globals.
    def workbench_on_demand(frame):  # type: ignore[no-untyped-def]
        from workbench.features.transform import evaluate as run

        return run(frozen, frame)

    return workbench_on_demand
