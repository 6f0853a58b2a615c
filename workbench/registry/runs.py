"""Compare training runs as one tidy table: a row per run, final and best metrics, params and lineage tags.

Filtering and ordering happen in MLflow (``search_runs`` with ``filter_string``/``order_by``, paged by
token), so a notebook never pulls an experiment whole to sort it locally. The frame is built from the
runs' ``data`` dicts in one pass over column lists, which is what keeps 10,000 runs cheap on the client
(see benchmarks/bench_runs.py). Metric histories are fetched only for the metrics named in ``best_of``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
import pandas as pd
from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from workbench.config import Settings
from workbench.errors import InvalidInput
from workbench.registry.client import experiment_ids, mlflow_client, mlflow_errors, translate

DEFAULT_ORDER_BY = ("metrics.roc_auc DESC",)
#: MLflow's largest page for search_runs; fewer, larger pages cost fewer round trips.
MAX_PAGE_SIZE = 50_000
DEFAULT_PAGE_SIZE = 10_000
#: Table column -> run tags that may carry it, first found wins (the training module's keys first).
TAG_COLUMNS: dict[str, tuple[str, ...]] = {
    "dataset_version": ("workbench.dataset_version", "dataset_version"),
    "feature_service": ("workbench.feature_service", "feature_service"),
    "parent_run_id": ("mlflow.parentRunId",),
    "kind": ("workbench.kind",),
    "model_uri": ("workbench.model_uri",),
    "git_commit": ("mlflow.source.git.commit", "workbench.git_commit"),
}
_INFO_COLUMNS = ("run_id", "run_name", "experiment_id", "status", "start_time", "end_time", "duration_s")
_VIEWS = {"active": ViewType.ACTIVE_ONLY, "deleted": ViewType.DELETED_ONLY, "all": ViewType.ALL}
_FILTER_HELP = ("filters look like \"metrics.roc_auc > 0.9 and params.lr = '0.001' and "
                "tags.`workbench.dataset_version` = 'v1' and attributes.status = 'FINISHED'\"; order_by items "
                "like \"metrics.roc_auc DESC\"")

BestMode = Literal["max", "min"]
#: Run ids are uuid4 hex: their first character splits any set of runs into 16 near-equal partitions.
_PARTITIONS = "0123456789abcdef"
_ORDER_ITEM = re.compile(r"(?P<kind>[A-Za-z]+)\.(?P<key>`[^`]+`|\S+?)(?:\s+(?P<dir>ASC|DESC))?\s*", re.IGNORECASE)
_TIME_ATTRIBUTES = {"start_time": "start_time", "end_time": "end_time", "created": "start_time",
                    "Created": "start_time"}


def iter_runs(
    client: MlflowClient,
    experiment_ids: Sequence[str],
    *,
    filter_string: str = "",
    order_by: Sequence[str] = DEFAULT_ORDER_BY,
    max_results: int | None = 1000,
    page_size: int = DEFAULT_PAGE_SIZE,
    run_view: str = "active",
) -> Iterator[Run]:
    """Yield matching runs in MLflow's order, page by page (``page_token``), at most ``max_results``.

    A filter or order MLflow rejects raises InvalidInput with MLflow's reason and an example.
    """
    if max_results is not None and (not isinstance(max_results, int) or max_results < 1):
        raise InvalidInput(f"max_results must be a positive integer or None (all runs), got {max_results!r}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be in 1..{MAX_PAGE_SIZE}, got {page_size}")
    if run_view not in _VIEWS:
        raise InvalidInput(f"run_view must be one of {sorted(_VIEWS)}, got {run_view!r}")
    if isinstance(order_by, str):
        order_by = (order_by,)
    token: str | None = None
    left = max_results
    while left is None or left > 0:
        size = page_size if left is None else min(page_size, left)
        try:
            page = client.search_runs(list(experiment_ids), filter_string=filter_string or "",
                                      run_view_type=_VIEWS[run_view], max_results=size,
                                      order_by=list(order_by), page_token=token)
        except MlflowException as exc:
            if str(getattr(exc, "error_code", "")) == "INVALID_PARAMETER_VALUE":
                raise InvalidInput(f"MLflow rejected the run search (filter_string={filter_string!r}, "
                                   f"order_by={list(order_by)}): {exc.message}. {_FILTER_HELP}") from exc
            raise translate(exc, "searching runs") from exc
        yield from page
        if left is not None:
            left -= len(page)
        token = page.token
        if not token or not page:
            return


def fetch_runs(
    client: MlflowClient,
    experiment_ids: Sequence[str],
    *,
    filter_string: str = "",
    order_by: Sequence[str] = DEFAULT_ORDER_BY,
    max_results: int | None = 1000,
    page_size: int = DEFAULT_PAGE_SIZE,
    run_view: str = "active",
    threads: int = 1,
    sort: Literal["auto", "server"] = "auto",
) -> list[Run]:
    """The runs :func:`iter_runs` yields, as a list, fetched the cheapest way that gives the same order.

    MLflow always filters. It also orders and cuts to ``max_results``, except when every run is fetched
    anyway (``max_results=None``) and every ``order_by`` item is a metric or start/end time: then, with
    ``sort="auto"``, the runs come in MLflow's cheap default order and are sorted here by MLflow's own rules
    (NaN, then missing values last; ties by start time descending, then run id). MLflow's SQLite store
    orders by a metric with a nested loop over runs × metric rows (about a minute for 10,000 runs on
    two busy cores, see benchmarks/README.md), the client sort takes milliseconds.

    With ``threads > 1`` (and such an ordering) the query is split into 16 partitions by the run id's first
    hex digit (``attributes.run_id LIKE '<hex>%'`` added to the filter) fetched concurrently, so the
    server answers one while the client parses another; each partition is cut to ``max_results`` by
    MLflow and the sorted partitions are merged. Other orderings page through one query.
    """
    if sort not in ("auto", "server"):
        raise InvalidInput(f"sort must be 'auto' or 'server', got {sort!r}")
    items = [order_by] if isinstance(order_by, str) else list(order_by)
    key = _merge_key(items)
    local = key is not None and sort == "auto" and max_results is None
    server_order = [] if local else items

    def query(extra: str) -> list[Run]:
        text = " and ".join(part for part in (filter_string.strip() if filter_string else "", extra) if part)
        return list(iter_runs(client, experiment_ids, filter_string=text, order_by=server_order,
                              max_results=max_results, page_size=page_size, run_view=run_view))

    if threads > 1 and key is not None:
        with ThreadPoolExecutor(max_workers=min(threads, len(_PARTITIONS))) as pool:
            runs = [run for chunk in pool.map(lambda p: query(f"attributes.run_id LIKE '{p}%'"), _PARTITIONS)
                    for run in chunk]
    else:
        runs = query("")
        if not local:
            return runs
    runs.sort(key=key)
    return runs if max_results is None else runs[:max_results]


def _merge_key(items: Sequence[str]) -> Any:
    """A sort key reproducing MLflow's order for metric / start-end-time orderings, else None."""
    clauses: list[tuple[str, str, bool]] = []
    for item in items:
        match = _ORDER_ITEM.fullmatch(item.strip())
        if not match:
            return None
        kind, key = match["kind"].lower(), match["key"].strip("`")
        ascending = (match["dir"] or "ASC").upper() == "ASC"
        if kind in ("metric", "metrics"):
            clauses.append(("metric", key, ascending))
        elif kind in ("attribute", "attributes", "attr", "run") and key in _TIME_ATTRIBUTES:
            clauses.append(("time", _TIME_ATTRIBUTES[key], ascending))
        else:
            return None
    by_start = any(kind == "time" and key == "start_time" for kind, key, _ in clauses)

    def key_of(run: Run) -> tuple[Any, ...]:
        parts: list[Any] = []
        for kind, name, ascending in clauses:
            value = run.data.metrics.get(name) if kind == "metric" else getattr(run.info, name)
            if value is None:
                parts += [2, 0.0]
            elif kind == "metric" and math.isnan(value):
                parts += [1, 0.0]
            else:
                parts += [0, value if ascending else -value]
        if not by_start:
            start = run.info.start_time
            parts += [1, 0.0] if start is None else [0, -start]
        parts.append(run.info.run_id)
        return tuple(parts)

    return key_of


def compare_runs(
    settings: Settings,
    experiment: str | Sequence[str] | None = None,
    filter_string: str = "",
    order_by: Sequence[str] = DEFAULT_ORDER_BY,
    max_results: int | None = 1000,
    metrics: Sequence[str] | None = None,
    params: Sequence[str] | None = None,
    *,
    best_of: Mapping[str, BestMode] | None = None,
    run_view: str = "active",
    numeric_params: bool = True,
    page_size: int = DEFAULT_PAGE_SIZE,
    threads: int = 1,
    sort: Literal["auto", "server"] = "auto",
    history_threads: int = 8,
) -> pd.DataFrame:
    """One row per run of ``experiment`` (default: the settings'), in MLflow's ``order_by`` order.

    Columns: run_id, run_name, experiment_id, status, start_time, end_time (UTC), duration_s (NaN while
    running), dataset_version, feature_service, parent_run_id, kind, model_uri, git_commit (None where the
    run lacks the tag), ``params.<name>`` (numbers where every value parses as one, when
    ``numeric_params``), ``metrics.<name>`` (the run's latest value) and, for each ``best_of`` entry such
    as ``{"roc_auc": "max", "val_loss": "min"}``, ``best.<name>`` and ``best_step.<name>`` taken from the
    metric's whole history. ``metrics`` / ``params`` restrict the columns to those names (None: all).
    ``threads > 1`` fetches in parallel partitions, and ``sort`` says whether MLflow must order even when
    every run is fetched (see :func:`fetch_runs`).
    """
    best = _check_best_of(best_of)
    client = mlflow_client(settings)
    ids = experiment_ids(client, settings, experiment)
    runs = fetch_runs(client, ids, filter_string=filter_string, order_by=order_by, max_results=max_results,
                      page_size=page_size, run_view=run_view, threads=threads, sort=sort)
    frame = runs_frame(runs, metrics=metrics, params=params, numeric_params=numeric_params)
    if best:
        histories = _best_values(client, [r.info.run_id for r in runs], best, history_threads)
        for name in sorted(best):
            frame[f"best.{name}"] = histories[name][0]
            frame[f"best_step.{name}"] = pd.array(histories[name][1], dtype="Int64")
    return frame


def runs_frame(
    runs: Sequence[Run],
    *,
    metrics: Sequence[str] | None = None,
    params: Sequence[str] | None = None,
    numeric_params: bool = True,
) -> pd.DataFrame:
    """The tidy table of ``runs``, built in one pass: each value lands in a preallocated column list."""
    n = len(runs)
    run_ids: list[str] = [""] * n
    names: list[str | None] = [None] * n
    exp_ids: list[str] = [""] * n
    statuses: list[str] = [""] * n
    starts = np.full(n, np.nan)
    ends = np.full(n, np.nan)
    tag_cols: dict[str, list[str | None]] = {c: [None] * n for c in TAG_COLUMNS}
    tag_sources = list(TAG_COLUMNS.items())
    param_cols: dict[str, list[str | None]] = {p: [None] * n for p in params or ()}
    metric_cols: dict[str, np.ndarray] = {m: np.full(n, np.nan) for m in metrics or ()}
    all_params, all_metrics = params is None, metrics is None
    for i, run in enumerate(runs):
        info, data = run.info, run.data
        run_ids[i] = info.run_id
        names[i] = info.run_name
        exp_ids[i] = info.experiment_id
        statuses[i] = info.status
        if info.start_time is not None:
            starts[i] = info.start_time
        if info.end_time is not None:
            ends[i] = info.end_time
        tags = data.tags
        for column, keys in tag_sources:
            for key in keys:
                value = tags.get(key)
                if value:
                    tag_cols[column][i] = value
                    break
        for key, value in data.params.items():
            col = param_cols.get(key)
            if col is None:
                if not all_params:
                    continue
                col = param_cols[key] = [None] * n
            col[i] = value
        for key, number in data.metrics.items():
            arr = metric_cols.get(key)
            if arr is None:
                if not all_metrics:
                    continue
                arr = metric_cols[key] = np.full(n, np.nan)
            arr[i] = number
    columns: dict[str, Any] = {
        "run_id": run_ids,
        "run_name": names,
        "experiment_id": exp_ids,
        "status": statuses,
        "start_time": pd.to_datetime(starts, unit="ms", utc=True),
        "end_time": pd.to_datetime(ends, unit="ms", utc=True),
        "duration_s": (ends - starts) / 1000.0,
    }
    columns.update(tag_cols)
    for key in sorted(param_cols):
        columns[f"params.{key}"] = _numeric_or_text(param_cols[key]) if numeric_params else param_cols[key]
    for key in sorted(metric_cols):
        columns[f"metrics.{key}"] = metric_cols[key]
    return pd.DataFrame(columns, index=pd.RangeIndex(n))


def _numeric_or_text(values: list[str | None]) -> Any:
    """Numbers when every present value parses as one (``"0.001"`` → 0.001), else the strings as given."""
    try:
        return pd.to_numeric(pd.Series(values, dtype="object"), errors="raise").to_numpy()
    except (ValueError, TypeError):
        return values


def _check_best_of(best_of: Mapping[str, BestMode] | None) -> dict[str, BestMode]:
    if not best_of:
        return {}
    if not isinstance(best_of, Mapping):
        raise InvalidInput(f"best_of must map metric names to 'max' or 'min', e.g. {{'roc_auc': 'max'}}; "
                           f"got {best_of!r}")
    for name, mode in best_of.items():
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"best_of keys must be metric names, got {name!r}")
        if mode not in ("max", "min"):
            raise InvalidInput(f"best_of[{name!r}] must be 'max' or 'min', got {mode!r}")
    return dict(best_of)


def _best_values(client: MlflowClient, run_ids: Sequence[str], best: Mapping[str, BestMode],
                 threads: int) -> dict[str, tuple[np.ndarray, list[int | None]]]:
    """For each metric: (best value per run, step of it per run), from the histories fetched in threads."""
    jobs = [(i, run_id, name) for i, run_id in enumerate(run_ids) for name in best]
    steps: list[int | None] = [None] * len(run_ids)
    out = {name: (np.full(len(run_ids), np.nan), list(steps)) for name in best}

    def fetch(job: tuple[int, str, str]) -> tuple[int, str, float, int | None]:
        i, run_id, name = job
        with mlflow_errors(f"reading the history of metric {name!r} of run {run_id}"):
            history = client.get_metric_history(run_id, name)
        points = [(m.value, m.step) for m in history if m.value is not None and not math.isnan(m.value)]
        if not points:
            return i, name, math.nan, None
        pick = max if best[name] == "max" else min
        value, step = pick(points, key=lambda p: p[0])
        return i, name, float(value), int(step)

    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(jobs) or 1))) as pool:
        for i, name, value, step in pool.map(fetch, jobs):
            out[name][0][i] = value
            out[name][1][i] = step
    return out
