"""Serving performance: latency percentiles and throughput over time, from the log or from /metrics.

Two sources, because they answer different questions. The prediction log has every request, so
percentiles over any window are exact (``quantile_cont``, the same linear interpolation as numpy's
default); DuckDB aggregates it, so a large Parquet log is never loaded whole. The Prometheus endpoints of
Ray Serve and vLLM hold cumulative histograms, from which :func:`histogram_quantile` estimates a
percentile the way Prometheus's own ``histogram_quantile()`` does.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import requests
from prometheus_client.parser import text_string_to_metric_families

from workbench.errors import InvalidInput, NotFound, ServiceUnavailable
from workbench.monitoring import reprs as _reprs
from workbench.monitoring.prediction_log import LOG_VIEW, LogSource, open_log_view, quote, require_columns

PERCENTILES = (0.5, 0.9, 0.99)


def window_seconds(window: str | pd.Timedelta) -> float:
    """Length of a window given as a pandas offset ("30s", "1min", "1h") in seconds."""
    try:
        seconds = pd.Timedelta(window).total_seconds()
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"window must be a duration such as '30s', '1min' or '1h', got {window!r}") from exc
    if seconds <= 0:
        raise InvalidInput(f"window must be positive, got {window!r}")
    return seconds


def _filters(columns: Sequence[str], deployment: str | None, model_version: str | None) -> tuple[str, list[str]]:
    """A WHERE clause (and its parameters) keeping one deployment and/or model version."""
    chosen = {c: v for c, v in (("deployment", deployment), ("model_version", model_version)) if v is not None}
    require_columns(columns, list(chosen))
    clauses = [f"{c} = ?" for c in chosen]
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", list(chosen.values())


def latency_over_time(log: LogSource, window: str | pd.Timedelta = "1min", *, by: str | None = None,
                      deployment: str | None = None, model_version: str | None = None) -> pd.DataFrame:
    """Requests, throughput and latency percentiles per fixed time window (tidy: one row per window).

    Windows are aligned to multiples of ``window`` since the Unix epoch (UTC), so two runs over the same
    log agree. Windows without requests inside the observed span appear with 0 requests and NaN
    latencies, so gaps show as gaps. ``by`` ("deployment" or "model_version") splits the rows.
    Columns: ``window_start``, ``window_end``, [by], ``requests``, ``throughput_rps``,
    ``latency_p50_ms``, ``latency_p90_ms``, ``latency_p99_ms``, ``latency_mean_ms``, ``latency_max_ms``.
    """
    width = window_seconds(window)
    width_us = int(round(width * 1e6))
    con = duckdb.connect()
    try:
        columns = open_log_view(con, log)
        require_columns(columns, ["timestamp", "latency_ms", *([by] if by else [])])
        where, params = _filters(columns, deployment, model_version)
        group = f", {quote(by)} AS {quote(by)}" if by else ""
        sql = (f"SELECT (epoch_us(timestamp::TIMESTAMPTZ) // {width_us}) AS bucket{group}, count(*) AS requests, "
               "quantile_cont(latency_ms, [0.5, 0.9, 0.99]) AS q, avg(latency_ms) AS mean, max(latency_ms) AS mx "
               f"FROM {LOG_VIEW}{where} GROUP BY ALL ORDER BY ALL")
        rows = con.execute(sql, params).df()
    finally:
        con.close()
    out_cols = ["window_start", "window_end", *([by] if by else []), "requests", "throughput_rps",
                "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms", "latency_max_ms"]
    if rows.empty:
        return pd.DataFrame(columns=out_cols)
    quantiles = np.array([list(q) if q is not None else [math.nan] * 3 for q in rows["q"]], dtype=float)
    agg = pd.DataFrame({
        "bucket": rows["bucket"].astype("int64"),
        **({by: rows[by]} if by else {}),
        "requests": rows["requests"].astype("int64"),
        "latency_p50_ms": quantiles[:, 0], "latency_p90_ms": quantiles[:, 1], "latency_p99_ms": quantiles[:, 2],
        "latency_mean_ms": rows["mean"].astype(float), "latency_max_ms": rows["mx"].astype(float),
    })
    # Fill empty windows inside the span with zero requests, per group.
    all_buckets = np.arange(agg["bucket"].min(), agg["bucket"].max() + 1)
    keys = [by, "bucket"] if by else ["bucket"]
    full_index = (pd.MultiIndex.from_product([agg[by].unique(), all_buckets], names=keys) if by
                  else pd.Index(all_buckets, name="bucket"))
    agg = agg.set_index(keys).reindex(full_index).reset_index()
    agg["requests"] = agg["requests"].fillna(0).astype("int64")
    agg["throughput_rps"] = agg["requests"] / width
    agg["window_start"] = pd.to_datetime(agg["bucket"] * width_us, unit="us", utc=True)
    agg["window_end"] = agg["window_start"] + pd.Timedelta(microseconds=width_us)
    return agg.sort_values(["window_start", *([by] if by else [])]).loc[:, out_cols].reset_index(drop=True)


@dataclass(frozen=True)
class PerformanceSummary:
    """Latency and throughput over a whole log (or one deployment's part of it)."""

    requests: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    throughput_rps: float  # requests / (last - first timestamp); NaN with fewer than two distinct times
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_mean_ms: float
    latency_max_ms: float

    def metrics(self) -> dict[str, float]:
        """Flat values for alert rules (``latency_p99_ms``, ``throughput_rps``, ...)."""
        return {"requests": float(self.requests), "throughput_rps": self.throughput_rps,
                "latency_p50_ms": self.latency_p50_ms, "latency_p90_ms": self.latency_p90_ms,
                "latency_p99_ms": self.latency_p99_ms, "latency_mean_ms": self.latency_mean_ms,
                "latency_max_ms": self.latency_max_ms}

    def _repr_html_(self) -> str:
        span = f"{_reprs.fmt(self.start)} → {_reprs.fmt(self.end)}" if self.start is not None else "–"
        return _reprs.card(f"Performance: {self.requests:,} requests", {
            "window": span, "throughput (req/s)": self.throughput_rps, "latency p50 (ms)": self.latency_p50_ms,
            "latency p90 (ms)": self.latency_p90_ms, "latency p99 (ms)": self.latency_p99_ms,
            "latency mean (ms)": self.latency_mean_ms, "latency max (ms)": self.latency_max_ms},
            note="server-side latency from the prediction log")


def performance_summary(log: LogSource, *, deployment: str | None = None,
                        model_version: str | None = None) -> PerformanceSummary:
    """Request count, throughput and latency percentiles over the whole log."""
    con = duckdb.connect()
    try:
        columns = open_log_view(con, log)
        require_columns(columns, ["timestamp", "latency_ms"])
        where, params = _filters(columns, deployment, model_version)
        row = con.execute(
            "SELECT count(*), min(timestamp), max(timestamp), "
            "epoch_us(max(timestamp)::TIMESTAMPTZ) - epoch_us(min(timestamp)::TIMESTAMPTZ), "
            "quantile_cont(latency_ms, [0.5, 0.9, 0.99]), avg(latency_ms), max(latency_ms) "
            f"FROM {LOG_VIEW}{where}", params).fetchone() or (0, None, None, None, None, None, None)
    finally:
        con.close()
    n, start, end, span_us, q, mean, mx = row
    if n == 0:
        what = f" for deployment {deployment!r}" if deployment else ""
        raise InvalidInput(f"the prediction log has no requests{what}; nothing to summarise")
    q = list(q) if q is not None else [math.nan] * 3
    span_s = (span_us or 0) / 1e6
    return PerformanceSummary(
        requests=int(n), start=pd.Timestamp(start) if start is not None else None,
        end=pd.Timestamp(end) if end is not None else None,
        throughput_rps=n / span_s if span_s > 0 else math.nan,
        latency_p50_ms=float(q[0]), latency_p90_ms=float(q[1]), latency_p99_ms=float(q[2]),
        latency_mean_ms=float(mean) if mean is not None else math.nan,
        latency_max_ms=float(mx) if mx is not None else math.nan)


# Prometheus -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MetricSample:
    """One line of a Prometheus exposition: ``name{labels} value``, with its family's name and type."""

    name: str
    labels: Mapping[str, str]
    value: float
    family: str = ""
    type: str = ""
    timestamp: float | None = None
    help: str = field(default="", compare=False, repr=False)  # the family's HELP line


def parse_prometheus(text: str) -> list[MetricSample]:
    """Samples of a Prometheus text exposition (as served by Ray Serve's and vLLM's /metrics)."""
    samples: list[MetricSample] = []
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                ts = s.timestamp
                samples.append(MetricSample(
                    name=s.name, labels=dict(s.labels), value=float(s.value), family=family.name,
                    type=family.type, timestamp=float(ts) if ts is not None else None,
                    help=family.documentation))
    except ValueError as exc:
        raise InvalidInput(f"not a Prometheus text exposition: {exc}") from exc
    return samples


def _matches(labels: Mapping[str, str], wanted: Mapping[str, str] | None) -> bool:
    return not wanted or all(labels.get(k) == v for k, v in wanted.items())


def histogram_buckets(samples: Sequence[MetricSample], metric: str,
                      labels: Mapping[str, str] | None = None) -> list[tuple[float, float]]:
    """Cumulative ``(upper_bound, count)`` buckets of histogram ``metric``, summed over matching series."""
    base = metric.removesuffix("_bucket")
    counts: dict[float, float] = defaultdict(float)
    for s in samples:
        if s.name == base + "_bucket" and _matches(s.labels, labels):
            if "le" not in s.labels:
                raise InvalidInput(f"bucket sample of {base} has no 'le' label: {dict(s.labels)}")
            counts[float(s.labels["le"])] += s.value
    if not counts:
        histograms = sorted({s.name.removesuffix("_bucket") for s in samples if s.name.endswith("_bucket")})
        if any(s.name == base + "_bucket" for s in samples):
            raise NotFound(f"histogram {base} has no series with labels {dict(labels or {})}")
        raise NotFound(f"no histogram named {base} in the metrics; histograms present: {histograms}")
    return sorted(counts.items())


def histogram_quantile(samples: Sequence[MetricSample], q: float, metric: str,
                       labels: Mapping[str, str] | None = None) -> float:
    """The ``q``-quantile of a Prometheus histogram, as PromQL's ``histogram_quantile`` computes it.

    Buckets of all series matching ``labels`` are summed (like ``sum by (le)``); the value is
    interpolated linearly inside the bucket holding rank ``q * count``, the lowest bucket starting at 0.
    A rank in the ``+Inf`` bucket returns the highest finite bound. NaN when there are no observations.
    """
    if not 0 <= q <= 1:
        raise InvalidInput(f"q must be in [0, 1], got {q}")
    buckets = histogram_buckets(samples, metric, labels)
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        raise InvalidInput(f"histogram {metric} needs at least one finite bucket and the +Inf bucket")
    bounds = [b for b, _ in buckets]
    counts = np.maximum.accumulate([c for _, c in buckets])  # guard against non-monotonic scrapes
    total = counts[-1]
    if total == 0:
        return math.nan
    rank = q * total
    b = int(np.searchsorted(counts, rank, side="left"))
    if b == len(buckets) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, end, count = 0.0, bounds[b], float(counts[b])
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    return start + (end - start) * (rank / count)


def metric_total(samples: Sequence[MetricSample], metric: str, labels: Mapping[str, str] | None = None) -> float:
    """Sum of the values of ``metric`` over series matching ``labels`` (for counters such as
    ``ray_serve_num_http_requests_total``); NotFound if no sample has that name."""
    values = [s.value for s in samples if s.name == metric and _matches(s.labels, labels)]
    if not values:
        if any(s.name == metric for s in samples):
            return 0.0
        names = sorted({s.name for s in samples})
        raise NotFound(f"no metric named {metric} in the metrics; names present: {names[:50]}")
    return float(sum(values))


def subtract_samples(later: Sequence[MetricSample], earlier: Sequence[MetricSample]) -> list[MetricSample]:
    """``later - earlier`` per series: turns two scrapes of cumulative counters and histograms into the
    counts of the interval between them (a series that restarted keeps its later value)."""
    before = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in earlier}
    out = []
    for s in later:
        prior = before.get((s.name, tuple(sorted(s.labels.items()))), 0.0)
        value = s.value - prior if s.value >= prior else s.value
        out.append(MetricSample(s.name, s.labels, value, s.family, s.type, s.timestamp, s.help))
    return out


def scrape_metrics(url: str, timeout_s: float = 5.0) -> list[MetricSample]:
    """Fetch and parse a /metrics endpoint; ServiceUnavailable saying what to check when it does not answer."""
    try:
        response = requests.get(url, timeout=timeout_s)
    except requests.Timeout as exc:
        raise ServiceUnavailable(f"metrics endpoint {url} did not answer within {timeout_s:g}s; is the deployment "
                                 "up and the address right (Ray Serve: the Ray metrics export port; vLLM: "
                                 "http://<host>:<port>/metrics)?") from exc
    except requests.RequestException as exc:
        raise ServiceUnavailable(f"metrics endpoint {url} is not answering ({type(exc).__name__}); is the "
                                 "deployment running and the address right? Check `workbench status`.") from exc
    if response.status_code != 200:
        raise ServiceUnavailable(f"metrics endpoint {url} answered HTTP {response.status_code}: "
                                 f"{response.text[:200]!r}")
    return parse_prometheus(response.text)
