"""The live monitoring dashboard's data and figures: one snapshot of a deployment, drawn as Plotly figures.

:func:`dashboard_snapshot` gathers what the dashboard shows (per-request latency, latency percentiles
and throughput per window, error rate, estimated cost, drift per feature over time, quality over time,
firing alerts) from the domain functions; the figure functions only draw it. Long series (a week of
per-request latencies is millions of points) are downsampled with MinMaxLTTB before they become a
figure, so what reaches the browser is at most :data:`MAX_POINTS` points per series with the series'
peaks and dips kept (``tsdownsample``'s Rust implementation).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from tsdownsample import MinMaxLTTBDownsampler

from workbench.config import Settings
from workbench.errors import InvalidInput, WorkbenchError
from workbench.monitoring import reprs as _reprs
from workbench.monitoring.alerts import Alert, default_alert_rules, evaluate_alerts
from workbench.monitoring.cost import CostEstimate, estimate_cost
from workbench.monitoring.deployment import (
    LogWindow,
    ModelReference,
    _resolve_model,
    read_window,
    reference_profile,
    serve_error_rate,
)
from workbench.monitoring.drift import DriftReport, FeatureDrift
from workbench.monitoring.performance import latency_over_time, performance_summary
from workbench.monitoring.task_quality import METRICS, TASK_OUTPUTS, task_quality, task_quality_over_time

MAX_POINTS = 2000
"""Points per series sent to the browser: enough for a full-width chart, small enough to draw at once."""
_LAYOUT: dict[str, Any] = {"template": "plotly_white", "margin": {"l": 55, "r": 15, "t": 40, "b": 35},
                           "height": 300, "legend": {"orientation": "h", "y": -0.2}, "xaxis": {"type": "date"}}


def downsample(x: np.ndarray | pd.Series, y: np.ndarray | pd.Series, n_out: int = MAX_POINTS, *,
               epoch_ms: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n_out`` points of (x, y) chosen by MinMaxLTTB; x sorted first, NaN y dropped.

    Datetime x is handled as int64 nanoseconds and comes back as datetimes (UTC), or with ``epoch_ms`` as
    float milliseconds since the epoch, which a Plotly date axis reads and JSON encodes several times
    faster than datetimes.
    """
    xs = pd.Series(x)
    is_time = pd.api.types.is_datetime64_any_dtype(xs)
    xnum = pd.DatetimeIndex(xs).as_unit("ns").asi8 if is_time else xs.to_numpy(dtype=np.float64)
    yv = np.asarray(y, dtype=np.float64)
    keep = ~np.isnan(yv)
    xnum, yv = xnum[keep], yv[keep]
    if xnum.size > 1 and not bool(np.all(xnum[1:] >= xnum[:-1])):  # the log is nearly always in order
        order = np.argsort(xnum, kind="stable")
        xnum, yv = xnum[order], yv[order]
    if len(xnum) > n_out >= 4:
        idx = np.asarray(MinMaxLTTBDownsampler().downsample(xnum, yv, n_out=n_out), dtype=np.int64)
        xnum, yv = xnum[idx], yv[idx]
    if is_time and epoch_ms:
        return xnum / 1e6, yv
    out_x = pd.to_datetime(xnum, unit="ns", utc=True).to_numpy() if is_time else xnum
    return np.asarray(out_x), yv


@dataclass(frozen=True)
class DashboardSnapshot:
    """What the dashboard shows for one deployment at one moment."""

    deployment: str
    taken_at: pd.Timestamp
    window: LogWindow
    model: ModelReference | None
    requests: pd.DataFrame = field(repr=False)  # timestamp, latency_ms: one row per request
    over_time: pd.DataFrame = field(repr=False)  # latency_over_time
    error_rate: float
    cost: CostEstimate | None
    drift: DriftReport | None
    drift_over_time: pd.DataFrame = field(repr=False)  # window_start, feature, kind, psi, n
    quality_over_time: pd.DataFrame = field(repr=False)
    alerts: tuple[Alert, ...]
    problems: tuple[str, ...]
    seconds: float  # time to gather it

    def summary(self) -> dict[str, Any]:
        last = self.over_time.dropna(subset=["latency_p99_ms"]).tail(1)
        return {"predictions": self.window.rows, "unparsed log lines": self.window.unparsed,
                "latency p50 (ms)": float(last["latency_p50_ms"].iloc[0]) if len(last) else math.nan,
                "latency p99 (ms)": float(last["latency_p99_ms"].iloc[0]) if len(last) else math.nan,
                "error rate": self.error_rate,
                "est. cost / 1k predictions (USD)": self.cost.cost_per_1k_usd if self.cost else math.nan,
                "drifted features": len(self.drift.drifted_features) if self.drift else 0,
                "firing alerts": len(self.alerts)}


def dashboard_snapshot(settings: Settings, deployment: str, *, labels: pd.DataFrame | None = None,
                       since: Any = None, window: str = "1min", drift_window: str | None = None,
                       model_uri: str | None = None, cpus: float = 1.0, gpus: float = 0.0) -> DashboardSnapshot:
    """Gather one refresh of the dashboard. Parts that cannot be computed are named in ``problems``."""
    started = time.perf_counter()
    win = read_window(settings, deployment, since)
    problems: list[str] = []
    frame = win.frame
    requests = frame.loc[:, [c for c in ("timestamp", "latency_ms") if c in frame.columns]]
    over = latency_over_time(frame, window) if win.rows else pd.DataFrame(
        columns=["window_start", "requests", "throughput_rps", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms"])
    ref: ModelReference | None = None
    drift: DriftReport | None = None
    heat = pd.DataFrame(columns=["window_start", "feature", "kind", "psi", "n"])
    quality = pd.DataFrame()
    cost = None
    metrics: dict[str, float] = {"unparsed_log_rows": float(win.unparsed)}
    if win.rows:
        perf = performance_summary(frame)
        metrics |= perf.metrics()
        if not math.isnan(perf.throughput_rps) and (cpus or gpus):  # a replica reserving nothing: no cost
            cost = estimate_cost(perf.throughput_rps, cpus, gpus, settings.prices)
            metrics |= cost.metrics()
        try:
            ref = _resolve_model(settings, deployment, win, model_uri)
            profile, _ = reference_profile(settings, ref)
            current = (frame.loc[frame["model_version"].astype(str) == ref.version] if "model_version" in frame
                       else frame)
            drift = profile.compare(current)
            metrics |= drift.metrics()
            heat = profile.psi_over_time(current, drift_window or drift_window_for(current))
        except WorkbenchError as exc:
            problems.append(f"drift: {exc}")
        if labels is not None:
            task = (ref.task if ref else None) or (str(frame["task"].dropna().iloc[-1]) if "task" in frame
                                                   and frame["task"].notna().any() else None)
            if task in TASK_OUTPUTS:
                kw: dict[str, Any] = {"positive": ref.positive if ref else 1,
                                      "threshold": ref.threshold if ref else 0.5, "classes": ref.classes if ref else ()}
                try:
                    quality = task_quality_over_time(frame, labels, task, window, **kw)
                    metrics |= task_quality(frame, labels, task, **kw).metrics()
                except InvalidInput as exc:
                    problems.append(f"quality: {exc}")
            else:
                problems.append("quality: the model has no task, so labels cannot be judged")
    errors, total = serve_error_rate(settings, deployment)
    error_rate = errors / total if total and not math.isnan(total) else math.nan
    if not math.isnan(error_rate):
        metrics["error_rate"] = error_rate
    alerts = evaluate_alerts(default_alert_rules(), {k: v for k, v in metrics.items() if not math.isnan(v)},
                             skip_missing=True)
    return DashboardSnapshot(deployment, pd.Timestamp.now(tz="UTC"), win, ref, requests, over, error_rate, cost,
                             drift, heat, quality, tuple(alerts), tuple(problems), time.perf_counter() - started)


def drift_window_for(frame: pd.DataFrame, min_rows: int = 200, max_windows: int = 48) -> str:
    """A window for the drift heat map holding about ``min_rows`` predictions each (PSI over ten bins is
    noise on a handful of rows), at most ``max_windows`` of them, in whole minutes."""
    if frame.empty:
        return "1h"
    stamps = pd.to_datetime(frame["timestamp"], utc=True)
    span_min = max((stamps.max() - stamps.min()).total_seconds() / 60.0, 1.0)
    windows = max(1, min(max_windows, len(frame) // min_rows))
    return f"{max(1, math.ceil(span_min / windows))}min"


# Figures ------------------------------------------------------------------------------------------

def latency_figure(snapshot: DashboardSnapshot, max_points: int = MAX_POINTS) -> go.Figure:
    """Every request's latency (downsampled) under the p50/p90/p99 per window."""
    fig = go.Figure(layout={**_LAYOUT, "title": "Latency (ms)", "yaxis": {"title": "ms"}})
    if len(snapshot.requests):
        x, y = downsample(snapshot.requests["timestamp"], snapshot.requests["latency_ms"], max_points,
                          epoch_ms=True)
        fig.add_trace(go.Scattergl(x=x, y=y, mode="markers", name="per request", opacity=0.35,
                                   marker={"size": 3, "color": "#9aa5b1"}))
    over = snapshot.over_time
    for col, name in (("latency_p50_ms", "p50"), ("latency_p90_ms", "p90"), ("latency_p99_ms", "p99")):
        if col in over and len(over):
            x, y = downsample(over["window_start"], over[col], max_points, epoch_ms=True)
            fig.add_trace(go.Scattergl(x=x, y=y, mode="lines", name=name))
    return fig


def throughput_figure(snapshot: DashboardSnapshot, max_points: int = MAX_POINTS) -> go.Figure:
    fig = go.Figure(layout={**_LAYOUT, "title": "Throughput (requests/s)", "showlegend": False})
    over = snapshot.over_time
    if len(over):
        x, y = downsample(over["window_start"], over["throughput_rps"].astype(float), max_points,
                          epoch_ms=True)
        # a few windows (a short burst of traffic) get markers: one window alone draws no line at all
        mode = "lines+markers" if len(x) <= 60 else "lines"
        fig.add_trace(go.Scattergl(x=x, y=y, mode=mode, name="req/s", line={"shape": "hv"}))
    return fig


def drift_heatmap_figure(snapshot: DashboardSnapshot, max_windows: int = 500) -> go.Figure:
    """PSI per feature (rows) per window (columns); the last ``max_windows`` windows."""
    fig = go.Figure(layout={**_LAYOUT, "title": "Drift over time (PSI per feature)", "height": 320,
                            "xaxis": {"type": "date"}})
    heat = snapshot.drift_over_time
    if len(heat):
        table = heat.pivot_table(index="feature", columns="window_start", values="psi", aggfunc="first")
        order = [f for f in dict.fromkeys(heat["feature"]) if f in table.index]
        table = table.loc[order].iloc[:, -max_windows:]
        fig.add_trace(go.Heatmap(z=table.to_numpy(), x=list(table.columns), y=list(table.index), zmin=0, zmax=0.5,
                                 colorscale=[[0, "#f7fbff"], [0.2, "#c6dbef"], [0.4, "#fdae6b"], [1, "#a50f15"]],
                                 colorbar={"title": "PSI"},
                                 hovertemplate="%{y}<br>%{x}<br>PSI %{z:.3f}<extra></extra>"))
    return fig


def drift_histogram_figure(row: FeatureDrift) -> go.Figure:
    """Drill-down: reference against current fractions on the bins the drift statistics used."""
    labels = row.bin_labels()
    title = f"{row.feature}: reference vs current (PSI {row.psi:.3g}, {row.status})"
    fig = go.Figure(layout={**_LAYOUT, "title": title, "xaxis": {"type": "category"},
                            "barmode": "group", "yaxis": {"title": "share", "tickformat": ".0%"}})
    fig.add_trace(go.Bar(x=labels, y=list(row.reference_fractions), name="reference (training)",
                         marker_color="#4c78a8"))
    fig.add_trace(go.Bar(x=labels, y=list(row.current_fractions), name="current", marker_color="#f58518"))
    return fig


def quality_figure(snapshot: DashboardSnapshot, max_points: int = MAX_POINTS) -> go.Figure:
    fig = go.Figure(layout={**_LAYOUT, "title": "Quality over time"})
    q = snapshot.quality_over_time
    task = snapshot.model.task if snapshot.model else None
    if len(q):
        for col in METRICS.get(task or "", [c for c in q.columns if c not in ("window_start", "window_end",
                                                                                  "n_labelled", "note")]):
            if col in q:
                x, y = downsample(q["window_start"], q[col].astype(float), max_points, epoch_ms=True)
                fig.add_trace(go.Scattergl(x=x, y=y, mode="lines+markers", name=col))
    else:
        fig.add_annotation(text="no labels joined yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig


def alerts_html(snapshot: DashboardSnapshot) -> str:
    if not snapshot.alerts:
        return _reprs.card("Alerts", note="no alert is firing", status="ok")
    return _reprs.card(f"{len(snapshot.alerts)} alert(s) firing", extra=_reprs.table(
        ["rule", "severity", "metric", "observed", "when"],
        [(a.rule, a.severity, a.metric, a.observed, f"{a.op} {a.threshold:g}") for a in snapshot.alerts]),
        status="error" if any(a.severity == "critical" for a in snapshot.alerts) else "warn")


def summary_html(snapshot: DashboardSnapshot) -> str:
    model = snapshot.model.model_uri if snapshot.model else "–"
    note = f"{snapshot.window.describe()}; model {model}; refreshed {_reprs.fmt(snapshot.taken_at)}"
    if snapshot.problems:
        note += " · " + " · ".join(snapshot.problems)
    return _reprs.card(f"Deployment {snapshot.deployment}", snapshot.summary(), note=note,
                       status="warn" if snapshot.alerts or snapshot.window.unparsed else "ok")


def points_sent(fig: go.Figure) -> list[int]:
    """Points per trace of a figure (what the browser receives)."""
    out = []
    for trace in fig.data:
        z = getattr(trace, "z", None)
        out.append(int(np.size(z)) if z is not None else len(trace.x) if trace.x is not None else 0)
    return out

