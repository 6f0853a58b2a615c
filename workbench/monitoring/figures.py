"""Plotly figures of the monitoring results: each takes a result of this package and draws it.

No computation happens here beyond choosing what to draw; the widgets and notebooks show these figures
as they are. This is the only monitoring module that imports Plotly.

Executed notebooks are reports: a figure must show in the executed copy opened in JupyterLab and in its
nbconvert HTML export, offline. Plotly's default renderer under ipykernel emits only its own mimetype,
which nbconvert's HTML export drops (blank outputs), and its ``notebook_connected`` renderer loads
plotly.js from a CDN. The figures here are :class:`ReportFigure`, whose rich display carries both the
Plotly mimetype (JupyterLab draws it with its Plotly extension) and ``text/html`` that draws the figure
with plotly.js embedded inline, once per kernel (the first figure carries the bundle, the later ones wait
for ``window.Plotly``). :func:`figure_mimebundle` gives that display for any figure, and
:func:`use_offline_renderer` makes it Plotly's default for every figure of the kernel.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.io.base_renderers import MimetypeRenderer
from plotly.offline import get_plotlyjs

from workbench.errors import InvalidInput
from workbench.monitoring.cost import CostEstimate, TokenCostEstimate
from workbench.monitoring.drift import DriftReport, HistogramComparison, histogram_comparison

_LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 50, "b": 50}}
PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"
RENDERER_NAME = "workbench_offline"
_bundle_lock = threading.Lock()
_bundle_sent = False


def plotlyjs_script() -> str:
    """plotly.js as one inline ``<script>`` (about 4.8 MB), defining ``window.Plotly``; no network."""
    return ("<script type=\"text/javascript\">window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script>\n")


def _claim_bundle() -> bool:
    """True exactly once per process: the display that gets to carry plotly.js."""
    global _bundle_sent
    with _bundle_lock:
        first, _bundle_sent = not _bundle_sent, True
    return first


def reset_plotlyjs() -> None:
    """Make the next figure carry plotly.js again (after the output holding it was cleared)."""
    global _bundle_sent
    with _bundle_lock:
        _bundle_sent = False


def figure_html(fig: go.Figure | Mapping[str, Any], *, include_plotlyjs: bool | None = None,
                height: int | None = None) -> str:
    """HTML that draws ``fig`` with plotly.js: inline before the figure when ``include_plotlyjs`` (None: the
    first figure of this process), else waiting for ``window.Plotly`` defined by an earlier output."""
    payload = pio.to_json(fig if isinstance(fig, go.Figure) else dict(fig), validate=False)
    include = _claim_bundle() if include_plotlyjs is None else include_plotlyjs
    div_id = f"wb-fig-{uuid.uuid4().hex[:12]}"
    layout = json.loads(payload).get("layout") or {}
    px = int(height or layout.get("height") or 450)
    payload = payload.replace("</", "<\\/")  # no "</script>" inside the script
    script = (f'<div id="{div_id}" class="plotly-graph-div workbench-figure" style="height:{px}px; width:100%;">'
              f'</div>\n<script type="text/javascript">(function() {{\n'
              f'  var fig = {payload};\n'
              f'  function draw(tries) {{\n'
              f'    var el = document.getElementById("{div_id}");\n'
              f'    if (window.Plotly && el) {{ window.Plotly.newPlot(el, fig.data, fig.layout, '
              f'{{"responsive": true, "displaylogo": false}}); }}\n'
              f'    else if (tries < 200) {{ setTimeout(function() {{ draw(tries + 1); }}, 50); }}\n'
              f'  }}\n  draw(0);\n}})();</script>')
    return (plotlyjs_script() if include else "") + script


def figure_mimebundle(fig: go.Figure | Mapping[str, Any], *, include_plotlyjs: bool | None = None) -> dict[str, Any]:
    """The rich display of ``fig`` for reports: Plotly's mimetype (JupyterLab) and offline ``text/html``
    (nbconvert's HTML export, any browser), plus a one-line ``text/plain``."""
    fig_dict = fig.to_plotly_json() if isinstance(fig, go.Figure) else dict(fig)
    title = (fig_dict.get("layout") or {}).get("title")
    text = title.get("text") if isinstance(title, Mapping) else title
    payload = json.loads(pio.to_json(fig_dict, validate=False))
    return {PLOTLY_MIMETYPE: {**payload, "config": {"displaylogo": False}},
            "text/html": figure_html(payload, include_plotlyjs=include_plotlyjs),
            "text/plain": f"<Figure: {text or 'untitled'}, {len(fig_dict.get('data', []))} traces>"}


class ReportFigure(go.Figure):
    """A ``go.Figure`` whose notebook display survives execution and HTML export offline."""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, Any]:
        return figure_mimebundle(self)

    def _ipython_display_(self) -> None:
        # Plotly's own hook would win over _repr_mimebundle_ and show through the default renderer
        from IPython.display import display

        display(figure_mimebundle(self), raw=True)


class OfflineRenderer(MimetypeRenderer):
    """Plotly renderer giving :func:`figure_mimebundle` (registered as ``workbench_offline``)."""

    def to_mimebundle(self, fig_dict: Any) -> dict[str, Any]:
        return figure_mimebundle(fig_dict)


def use_offline_renderer() -> None:
    """Make every Plotly figure of this kernel display as :func:`figure_mimebundle` does (offline reports)."""
    pio.renderers[RENDERER_NAME] = OfflineRenderer()
    pio.renderers.default = RENDERER_NAME


def _need(frame: pd.DataFrame, columns: Sequence[str], made_by: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput(f"the frame lacks {missing}; pass the result of {made_by}")


def latency_figure(over_time: pd.DataFrame) -> ReportFigure:
    """p50 / p90 / p99 latency per window (from :func:`latency_over_time`)."""
    _need(over_time, ["window_start", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms"], "latency_over_time()")
    fig = ReportFigure()
    for column, name in (("latency_p50_ms", "p50"), ("latency_p90_ms", "p90"), ("latency_p99_ms", "p99")):
        fig.add_trace(go.Scatter(x=over_time["window_start"], y=over_time[column], mode="lines+markers", name=name))
    fig.update_layout(title="Latency percentiles (server-side)", xaxis_title="window start (UTC)",
                      yaxis_title="latency (ms)", **_LAYOUT)
    return fig


def throughput_figure(over_time: pd.DataFrame) -> ReportFigure:
    """Requests per second per window (from :func:`latency_over_time`)."""
    _need(over_time, ["window_start", "throughput_rps"], "latency_over_time()")
    fig = ReportFigure(go.Bar(x=over_time["window_start"], y=over_time["throughput_rps"], name="throughput"))
    fig.update_layout(title="Throughput", xaxis_title="window start (UTC)", yaxis_title="requests / s", **_LAYOUT)
    return fig


def drift_psi_figure(report: DriftReport) -> ReportFigure:
    """PSI per feature (and score), coloured by status, with the warning and drift thresholds as lines."""
    colours = {"ok": "#4c78a8", "warn": "#f58518", "drift": "#e45756"}
    rows = report.features
    fig = ReportFigure(go.Bar(
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
                             feature: str | None = None, bins: int = 30) -> ReportFigure:
    """Reference vs current distribution of one feature on shared bins (fractions of each sample)."""
    if isinstance(reference, HistogramComparison):
        hist = reference
    else:
        if current is None or feature is None:
            raise InvalidInput("pass reference, current and feature (or a HistogramComparison)")
        hist = histogram_comparison(reference, current, feature, bins)
    edges = np.asarray(hist.edges)
    centres, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    fig = ReportFigure()
    for name, fractions in (("reference", hist.reference_fractions), ("current", hist.current_fractions)):
        fig.add_trace(go.Bar(x=centres, y=fractions, width=widths, name=name, opacity=0.6))
    fig.update_layout(barmode="overlay", title=f"{hist.feature}: reference vs current", xaxis_title=hist.feature,
                      yaxis_title="fraction of rows", **_LAYOUT)
    return fig


def quality_figure(over_time: pd.DataFrame) -> ReportFigure:
    """ROC-AUC, PR-AUC, precision and recall per window (from :func:`quality_over_time`)."""
    _need(over_time, ["window_start", "roc_auc", "pr_auc", "precision", "recall"], "quality_over_time()")
    fig = ReportFigure()
    for column, name in (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("precision", "precision"),
                         ("recall", "recall")):
        fig.add_trace(go.Scatter(x=over_time["window_start"], y=over_time[column], mode="lines+markers", name=name,
                                 connectgaps=False))
    fig.update_layout(title="Model quality (labelled predictions)", xaxis_title="window start (UTC)",
                      yaxis_title="score", yaxis_range=[0, 1.02], **_LAYOUT)
    return fig


def cost_figure(estimates: Mapping[str, CostEstimate | TokenCostEstimate]) -> ReportFigure:
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
    fig = ReportFigure(go.Bar(x=list(estimates), y=values, name=f"USD {unit}",
                           hovertext=[e.label for e in estimates.values()]))
    fig.update_layout(title=f"Estimated cost {unit} (configured prices x measured throughput)",
                      yaxis_title=f"USD {unit} (estimate)", **_LAYOUT)
    return fig
