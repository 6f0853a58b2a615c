"""The live monitoring dashboard (Panel): latency, throughput, error rate, cost, drift, quality, alerts.

Presentation only: every number comes from :func:`workbench.monitoring.dashboard_figures.dashboard_snapshot`
and every chart from the figure functions there (long series already downsampled by MinMaxLTTB). The same
layout is the notebook widget (display ``MonitoringDashboard(settings, "my-deployment")``) and the page
``workbench dashboard`` serves (:mod:`workbench.dashboard_app`). While traffic flows, :meth:`start` refreshes
it on a periodic callback; resources are inline, so it renders offline.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import panel as pn

from workbench.config import Settings
from workbench.errors import WorkbenchError
from workbench.monitoring import dashboard_figures as dfig
from workbench.monitoring import reprs as _reprs

logger = logging.getLogger(__name__)
PLOT_HEIGHT = 300


def logged_deployments(settings: Settings) -> list[str]:
    """Deployments that have a prediction log (no Ray needed to list them)."""
    root = settings.predictions_dir
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and (any(p.rglob("*.jsonl")) or any(p.rglob("*.parquet"))))


class MonitoringDashboard:
    """A Panel layout over one deployment's monitoring; ``refresh()`` redraws, ``start()`` keeps it live."""

    @staticmethod
    def prepare_notebook() -> None:
        """Load Panel's and Plotly's code into the page. It has to run while a cell executes: a dashboard
        built later (when ``Workbench()``'s Monitor tab is first opened, from a widget message) has no cell
        to put it in, and would stay blank."""
        pn.extension("plotly", inline=True)

    def __init__(self, settings: Settings, deployment: str | None = None, *, labels: pd.DataFrame | None = None,
                 window: str = "1min", since: Any = None, model_uri: str | None = None, period_s: float = 5.0,
                 cpus: float = 1.0, gpus: float = 0.0, refresh_now: bool = True) -> None:
        pn.extension("plotly", inline=True)
        self.settings = settings
        self.labels = labels
        self.window = window
        self.since = since
        self.model_uri = model_uri
        self.period_s = period_s
        self.cpus, self.gpus = cpus, gpus
        self.snapshot: dfig.DashboardSnapshot | None = None
        self._callback: Any = None
        options = logged_deployments(settings)
        if deployment and deployment not in options:
            options = [deployment, *options]
        self.deployment = pn.widgets.Select(name="Deployment", options=options, value=deployment or
                                            (options[0] if options else None), width=220)
        self.feature = pn.widgets.Select(name="Drift drill-down", options=[], width=220)
        self.live = pn.widgets.Toggle(name="Live", value=False, button_type="success", width=80)
        self.refresh_button = pn.widgets.Button(name="Refresh", button_type="primary", width=90)
        self.summary = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-dash-summary"])
        self.message = pn.pane.HTML("", sizing_mode="stretch_width")
        self.alerts = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-dash-alerts"])
        empty: dict[str, Any] = {"data": [], "layout": {"height": PLOT_HEIGHT}}
        self.latency = pn.pane.Plotly(empty, height=PLOT_HEIGHT, sizing_mode="stretch_width")
        self.throughput = pn.pane.Plotly(empty, height=PLOT_HEIGHT, sizing_mode="stretch_width")
        self.heatmap = pn.pane.Plotly(empty, height=PLOT_HEIGHT + 20, sizing_mode="stretch_width")
        self.histogram = pn.pane.Plotly(empty, height=PLOT_HEIGHT, sizing_mode="stretch_width")
        self.quality = pn.pane.Plotly(empty, height=PLOT_HEIGHT, sizing_mode="stretch_width")
        self.refresh_button.on_click(lambda _event: self.refresh())
        self.deployment.param.watch(lambda _event: self.refresh(), "value")
        self.feature.param.watch(lambda _event: self._draw_histogram(), "value")
        self.live.param.watch(lambda event: self.start() if event.new else self.stop(), "value")
        self.layout = pn.Column(
            pn.Row(self.deployment, self.feature, self.refresh_button, self.live, align="end"),
            self.message, self.summary,
            pn.Row(self.latency, self.throughput, sizing_mode="stretch_width"),
            pn.Row(self.heatmap, self.histogram, sizing_mode="stretch_width"),
            pn.Row(self.quality, self.alerts, sizing_mode="stretch_width"),
            sizing_mode="stretch_width", css_classes=["wb-dashboard"])
        if refresh_now:
            self.refresh()

    # data ----------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Take a new snapshot and redraw every chart; an error shows as a message, never a traceback."""
        name = self.deployment.value
        if not name:
            self.message.object = _reprs.card("No deployment", note="no prediction log yet under "
                                              f"{self.settings.predictions_dir}; deploy a model and send traffic",
                                              status="warn")
            return
        try:
            snap = dfig.dashboard_snapshot(self.settings, name, labels=self.labels, since=self.since,
                                           window=self.window, model_uri=self.model_uri, cpus=self.cpus, gpus=self.gpus)
        except WorkbenchError as exc:
            self.message.object = _reprs.card("Cannot refresh", note=str(exc), status="error")
            return
        except Exception as exc:  # noqa: BLE001 - the dashboard must keep running; log the details
            logger.exception("dashboard refresh failed")
            self.message.object = _reprs.card("Cannot refresh", note=f"{type(exc).__name__}: {exc}", status="error")
            return
        self.snapshot = snap
        self.message.object = ""
        self.summary.object = dfig.summary_html(snap)
        self.alerts.object = dfig.alerts_html(snap)
        self.latency.object = dfig.latency_figure(snap)
        self.throughput.object = dfig.throughput_figure(snap)
        self.heatmap.object = dfig.drift_heatmap_figure(snap)
        self.quality.object = dfig.quality_figure(snap)
        features = [r.feature for r in snap.drift.features] if snap.drift else []
        worst = max(snap.drift.features, key=lambda r: r.psi if r.psi == r.psi else -1).feature if snap.drift else None
        if self.feature.options != features:  # new columns: drill into the most drifted one
            self.feature.options = features
            self.feature.value = worst
        elif self.feature.value not in features:
            self.feature.value = worst
        self._draw_histogram()

    def _draw_histogram(self) -> None:
        snap = self.snapshot
        if snap is None or snap.drift is None or not self.feature.value:
            return
        try:
            self.histogram.object = dfig.drift_histogram_figure(snap.drift[self.feature.value])
        except KeyError:
            pass

    # live ----------------------------------------------------------------------------------------
    def start(self, period_s: float | None = None) -> None:
        """Refresh every ``period_s`` seconds (a Panel periodic callback) until :meth:`stop`."""
        if self._callback is not None:
            return
        self._callback = pn.state.add_periodic_callback(self.refresh, period=int((period_s or self.period_s) * 1000))
        if not self.live.value:
            self.live.value = True

    def stop(self) -> None:
        if self._callback is not None:
            self._callback.stop()
            self._callback = None
        if self.live.value:
            self.live.value = False

    # display -------------------------------------------------------------------------------------
    def servable(self) -> pn.viewable.Viewable:
        return self.layout

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        return self.layout._repr_mimebundle_(include, exclude)

    def static_html(self) -> str:
        """The dashboard as static HTML (summary, figures with plotly.js inline, alerts), for reports."""
        from workbench.monitoring.figures import figure_html

        snap = self.snapshot
        if snap is None:
            return str(self.message.object)
        figures = [dfig.latency_figure(snap), dfig.throughput_figure(snap), dfig.drift_heatmap_figure(snap),
                   dfig.quality_figure(snap)]
        if snap.drift is not None and self.feature.value:
            figures.append(dfig.drift_histogram_figure(snap.drift[self.feature.value]))
        parts = [dfig.summary_html(snap), dfig.alerts_html(snap)]
        parts += [figure_html(f, include_plotlyjs=i == 0) for i, f in enumerate(figures)]
        return "".join(parts)
