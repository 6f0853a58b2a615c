"""Plotly figures of the monitoring results: each takes a result of this package and draws it.

No computation happens here beyond choosing what to draw; the widgets and notebooks show these figures
as they are. This is the only monitoring module that imports Plotly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.errors import InvalidInput
from workbench.monitoring.cost import CostEstimate, TokenCostEstimate
from workbench.monitoring.drift import DriftReport, HistogramComparison, histogram_comparison

_LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 50, "b": 50}}


def _need(frame: pd.DataFrame, columns: Sequence[str], made_by: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput(f"the frame lacks {missing}; pass the result of {made_by}")


def latency_figure(over_time: pd.DataFrame) -> go.Figure:
    """p50 / p90 / p99 latency per window (from :func:`latency_over_time`)."""
    _need(over_time, ["window_start", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms"], "latency_over_time()")
    fig = go.Figure()
    for column, name in (("latency_p50_ms", "p50"), ("latency_p90_ms", "p90"), ("latency_p99_ms", "p99")):
        fig.add_trace(go.Scatter(x=over_time["window_start"], y=over_time[column], mode="lines+markers", name=name))
    fig.update_layout(title="Latency percentiles (server-side)", xaxis_title="window start (UTC)",
                      yaxis_title="latency (ms)", **_LAYOUT)
    return fig


def throughput_figure(over_time: pd.DataFrame) -> go.Figure:
    """Requests per second per window (from :func:`latency_over_time`)."""
    _need(over_time, ["window_start", "throughput_rps"], "latency_over_time()")
    fig = go.Figure(go.Bar(x=over_time["window_start"], y=over_time["throughput_rps"], name="throughput"))
    fig.update_layout(title="Throughput", xaxis_title="window start (UTC)", yaxis_title="requests / s", **_LAYOUT)
    return fig


def drift_psi_figure(report: DriftReport) -> go.Figure:
    """PSI per feature (and score), coloured by status, with the warning and drift thresholds as lines."""
    colours = {"ok": "#4c78a8", "warn": "#f58518", "drift": "#e45756"}
    rows = report.features
    fig = go.Figure(go.Bar(
        x=[r.feature for r in rows], y=[r.psi for r in rows], name="PSI",
        marker_color=[colours[r.status] for r in rows],
        hovertext=["; ".join(r.reasons) or "no drift" for r in rows]))
    t = report.thresholds
    fig.add_hline(y=t.psi_drift, line_dash="dash", line_color=colours["drift"],
                  annotation_text=f"drift {t.psi_drift:g}")
    fig.add_hline(y=t.psi_warn, line_dash="dot", line_color=colours["warn"], annotation_text=f"warn {t.psi_warn:g}")
    fig.update_layout(title=f"Drift per feature (PSI, {report.bins} {report.binning} bins)", xaxis_title="feature",
                      yaxis_title="PSI", **_LAYOUT)
    return fig


def feature_histogram_figure(reference: pd.DataFrame | Mapping[str, np.ndarray] | HistogramComparison,
                             current: pd.DataFrame | Mapping[str, np.ndarray] | None = None,
                             feature: str | None = None, bins: int = 30) -> go.Figure:
    """Reference vs current distribution of one feature on shared bins (fractions of each sample)."""
    if isinstance(reference, HistogramComparison):
        hist = reference
    else:
        if current is None or feature is None:
            raise InvalidInput("pass reference, current and feature (or a HistogramComparison)")
        hist = histogram_comparison(reference, current, feature, bins)
    edges = np.asarray(hist.edges)
    centres, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    fig = go.Figure()
    for name, fractions in (("reference", hist.reference_fractions), ("current", hist.current_fractions)):
        fig.add_trace(go.Bar(x=centres, y=fractions, width=widths, name=name, opacity=0.6))
    fig.update_layout(barmode="overlay", title=f"{hist.feature}: reference vs current", xaxis_title=hist.feature,
                      yaxis_title="fraction of rows", **_LAYOUT)
    return fig


def quality_figure(over_time: pd.DataFrame) -> go.Figure:
    """ROC-AUC, PR-AUC, precision and recall per window (from :func:`quality_over_time`)."""
    _need(over_time, ["window_start", "roc_auc", "pr_auc", "precision", "recall"], "quality_over_time()")
    fig = go.Figure()
    for column, name in (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("precision", "precision"),
                         ("recall", "recall")):
        fig.add_trace(go.Scatter(x=over_time["window_start"], y=over_time[column], mode="lines+markers", name=name,
                                 connectgaps=False))
    fig.update_layout(title="Model quality (labelled predictions)", xaxis_title="window start (UTC)",
                      yaxis_title="score", yaxis_range=[0, 1.02], **_LAYOUT)
    return fig


def cost_figure(estimates: Mapping[str, CostEstimate | TokenCostEstimate]) -> go.Figure:
    """Estimated cost per 1,000 predictions (or per 1M output tokens) of named configurations."""
    if not estimates:
        raise InvalidInput("pass at least one named cost estimate, e.g. {'2 CPU replicas': estimate_cost(...)}")
    kinds = {type(e) for e in estimates.values()}
    if len(kinds) > 1:
        raise InvalidInput("mix of per-prediction and per-token estimates; draw them in separate figures")
    tokens = kinds == {TokenCostEstimate}
    values = [e.cost_per_1m_tokens_usd if isinstance(e, TokenCostEstimate) else e.cost_per_1k_usd
              for e in estimates.values()]
    unit = "per 1M output tokens" if tokens else "per 1,000 predictions"
    fig = go.Figure(go.Bar(x=list(estimates), y=values, name=f"USD {unit}",
                           hovertext=[e.label for e in estimates.values()]))
    fig.update_layout(title=f"Estimated cost {unit} (configured prices x measured throughput)",
                      yaxis_title=f"USD {unit} (estimate)", **_LAYOUT)
    return fig
