"""Run comparer: an experiment's runs as a paged, sortable, filterable table; compare and act on a selection.

Presentation only: :class:`~workbench.widgets._runs_model.RunComparerModel` holds the state and draws the
figures, :mod:`workbench.registry.run_cache` holds the runs, the registry's functions do the actions.
The widget opens from the local run cache (no wait on MLflow when it is filled) and syncs new and
unfinished runs in the background; only one page of rows, one parallel-coordinates trace and a few
downsampled curves reach the browser. Errors show as a message in the widget, never as a traceback.
Under papermill or in an HTML export the widget leaves a static snapshot (``text/html``): a summary, the
first page and the parallel-coordinates figure with plotly.js inline.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as w
import plotly.graph_objects as go

from workbench.config import Settings, load_settings
from workbench.errors import WorkbenchError, readable
from workbench.monitoring import reprs
from workbench.monitoring.figures import figure_html, figure_mimebundle
from workbench.registry import CHALLENGER, CHAMPION
from workbench.registry.run_cache import SyncResult
from workbench.widgets._runs_model import RunComparerModel, payload_bytes

SYNC_MODES = ("background", "first", "never")
_CSS = """<style>
.wb-runs-list select { font-family: var(--jp-code-font-family, monospace); font-size: 12px; }
.wb-runs-head { font-family: var(--jp-code-font-family, monospace); font-size: 12px; white-space: pre;
  overflow: hidden; font-weight: 600; }
.wb-runs-msg-error { color: #c62828; } .wb-runs-msg-ok { color: #2e7d32; }
</style>"""



def _figure_view(fig: go.Figure) -> w.Widget:
    """A Plotly FigureWidget when anywidget is installed, else an Output showing the offline figure."""
    try:
        return go.FigureWidget(fig)
    except ImportError:
        out = w.Output()
        with out:
            from IPython.display import display

            display(figure_mimebundle(fig), raw=True)
        return out


class RunComparer(w.VBox):
    """Compare an experiment's runs. ``RunComparer(experiment="fraud-detection")``; ``.model`` is the state.

    ``sync``: ``background`` (draw from the cache, then sync and redraw; a cold cache syncs first),
    ``first`` (sync, then draw) or ``never`` (the cache as it is).
    """

    def __init__(self, experiment: str | None = None, *, settings: Settings | None = None,
                 model: RunComparerModel | None = None, sync: str = "background", **model_options: Any) -> None:
        super().__init__(layout=w.Layout(width="100%"))
        self.add_class("wb-runs")
        self.settings = settings if settings is not None else (model.settings if model else load_settings())
        self.model: RunComparerModel | None = model
        self.last_sync: SyncResult | None = None
        self.bytes_sent = 0
        self._sync_thread: threading.Thread | None = None
        self._updating = False
        self._lock = threading.RLock()  # one change of the model at a time (the background sync refreshes it)
        self.message = w.HTML("")
        self.title = w.HTML("<b>Run comparer</b>")
        self.filter = w.Text(placeholder="metrics.roc_auc > 0.9 and params.lr = 0.01", description="filter",
                             continuous_update=False, layout=w.Layout(width="45%"))
        self.sort_by = w.Dropdown(description="sort by", layout=w.Layout(width="30%"))
        self.ascending = w.ToggleButton(value=False, description="ascending", layout=w.Layout(width="10%"))
        self.metric = w.Dropdown(description="metric", layout=w.Layout(width="30%"))
        self.prev_page = w.Button(description="◀", layout=w.Layout(width="40px"))
        self.next_page = w.Button(description="▶", layout=w.Layout(width="40px"))
        self.page_label = w.HTML("")
        self.header = w.HTML("")
        self.header.add_class("wb-runs-head")
        self.rows = w.SelectMultiple(options=[], rows=12, layout=w.Layout(width="100%"))
        self.rows.add_class("wb-runs-list")
        self.top_k = w.BoundedIntText(value=5, min=1, max=1000, description="top", layout=w.Layout(width="120px"))
        self.select_top = w.Button(description="select top", tooltip="select the first runs of the table")
        self.clear = w.Button(description="clear selection")
        self.compare = w.Button(description="compare", button_style="primary")
        self.sync_button = w.Button(description="sync", tooltip="fetch new and unfinished runs from MLflow")
        self.model_name = w.Text(description="model", layout=w.Layout(width="260px"))
        self.register_button = w.Button(description="register")
        self.champion_button = w.Button(description=f"set {CHAMPION}")
        self.challenger_button = w.Button(description=f"set {CHALLENGER}")
        self.card_button = w.Button(description="lineage card")
        self.parcoords = w.Box(layout=w.Layout(width="100%"))
        self.curves = w.Box(layout=w.Layout(width="100%"))
        self.diff = w.HTML("")
        self.card = w.HTML("")
        self.children = [
            w.HTML(_CSS), w.HBox([self.title, self.message]),
            w.HBox([self.filter, self.sort_by, self.ascending]),
            w.HBox([self.prev_page, self.page_label, self.next_page, self.metric]),
            self.header, self.rows,
            w.HBox([self.top_k, self.select_top, self.clear, self.compare, self.sync_button]),
            w.HBox([self.model_name, self.register_button, self.champion_button, self.challenger_button,
                    self.card_button]),
            self.parcoords, self.curves, self.diff, self.card]
        self._wire()
        if sync not in SYNC_MODES:
            self._show_error(f"sync must be one of {SYNC_MODES}, got {sync!r}")
            return
        self._guard(lambda: self._open(experiment, sync, model_options))

    # ---- opening and syncing --------------------------------------------------------------------------

    def _open(self, experiment: str | None, sync: str, options: dict[str, Any]) -> None:
        if self.model is None:
            from workbench.registry.run_cache import open_run_cache

            cache = open_run_cache(self.settings, experiment)
            cold = len(cache) == 0
            if sync == "first" or (sync == "background" and cold):
                self.last_sync = cache.sync()
            self.model = RunComparerModel(self.settings, cache=cache, **options)
        elif sync == "first":
            self.last_sync = self.model.sync()
        self.model_name.value = self.model.model_name
        self.redraw()
        if sync == "background" and self.last_sync is None:
            self._sync_thread = threading.Thread(target=self._background_sync, name="wb-runs-sync", daemon=True)
            self._sync_thread.start()

    def _background_sync(self) -> None:
        try:
            self.sync_now()
        except Exception as exc:  # noqa: BLE001 - shown in the widget
            self._show_error(readable(exc))

    def sync_now(self) -> None:
        """Fetch new and unfinished runs and redraw (what the sync button does)."""
        model = self._need_model()
        self._say("syncing with MLflow …")
        result = model.cache.sync()  # the slow part, without the lock: the table stays usable meanwhile
        with self._lock:
            model.refresh()
            self.last_sync = result
            self.redraw()
        self._say(result.summary(), ok=True)

    def wait_for_sync(self, timeout: float | None = None) -> None:
        """Block until the background sync started on opening has finished (for scripts and tests)."""
        if self._sync_thread is not None:
            self._sync_thread.join(timeout)

    def _need_model(self) -> RunComparerModel:
        if self.model is None:
            raise WorkbenchError("no runs are open: the experiment could not be read (see the message)")
        return self.model

    # ---- wiring ---------------------------------------------------------------------------------------

    def _wire(self) -> None:
        self.filter.observe(lambda ch: self._guard(lambda: self._on_filter(ch["new"])), "value")
        self.sort_by.observe(lambda ch: self._control(lambda: self._need_model().set_sort(ch["new"])), "value")
        self.ascending.observe(lambda ch: self._control(
            lambda: self._need_model().set_sort(self._need_model().sort_by, ch["new"])), "value")
        self.metric.observe(lambda ch: self._control(lambda: self._need_model().set_metric(ch["new"]),
                                                     figures=True), "value")
        self.rows.observe(lambda ch: self._control(
            lambda: self._need_model().set_page_selection(ch["new"]), table=False), "value")
        self.prev_page.on_click(lambda _: self._control(lambda: self._need_model().set_page(
            self._need_model().page - 1)))
        self.next_page.on_click(lambda _: self._control(lambda: self._need_model().set_page(
            self._need_model().page + 1)))
        self.select_top.on_click(lambda _: self._control(lambda: self._need_model().select_top(self.top_k.value),
                                                         figures=True))
        self.clear.on_click(lambda _: self._control(self._need_model().clear_selection, figures=True))
        self.compare.on_click(lambda _: self._guard(self.draw_comparison))
        self.sync_button.on_click(lambda _: self._background_sync())
        self.register_button.on_click(lambda _: self._guard(self.register))
        self.champion_button.on_click(lambda _: self._guard(lambda: self.set_alias(CHAMPION)))
        self.challenger_button.on_click(lambda _: self._guard(lambda: self.set_alias(CHALLENGER)))
        self.card_button.on_click(lambda _: self._guard(self.show_lineage_card))

    def _on_filter(self, text: str) -> None:
        count = self._need_model().set_filter(text)
        self.redraw(figures=False)
        self._say(f"{count:,} runs match", ok=True)

    def _control(self, action: Callable[[], Any], *, table: bool = True, figures: bool = False) -> None:
        if self._updating:
            return
        if self._guard(action) and (table or figures):
            self.redraw(figures=figures)

    def _guard(self, action: Callable[[], Any]) -> bool:
        """Run ``action``; any error becomes the widget's message. True when it succeeded."""
        try:
            with self._lock:
                action()
        except Exception as exc:  # noqa: BLE001 - the widget must show, not raise
            self._show_error(readable(exc))
            return False
        return True

    def _say(self, text: str, *, ok: bool = False) -> None:
        cls = "wb-runs-msg-ok" if ok else ""
        self.message.value = f'<span class="{cls}">{html.escape(text)}</span>'

    def _show_error(self, text: str) -> None:
        self.message.value = f'<span class="wb-runs-msg-error">⚠ {html.escape(text)}</span>'

    @property
    def error(self) -> str:
        """The message shown when the last action failed, else ''."""
        value = self.message.value
        return html.unescape(value.split("⚠ ", 1)[1].rsplit("</span>", 1)[0]) if "⚠ " in value else ""

    # ---- drawing --------------------------------------------------------------------------------------

    def redraw(self, *, figures: bool = True) -> None:
        """Controls and the page from the model's state; the figures too unless ``figures=False``."""
        model = self._need_model()
        self._updating = True
        try:
            sortable = [c for c in model.frame.columns if c not in ("experiment_id",)]
            if list(self.sort_by.options) != sortable:
                self.sort_by.options = sortable
            self.sort_by.value = model.sort_by if model.sort_by in sortable else None
            self.ascending.value = model.ascending
            if list(self.metric.options) != model.metric_names:
                self.metric.options = model.metric_names
            self.metric.value = model.metric or None
            self.title.value = f"<b>Runs of {html.escape(model.experiment)}</b>&nbsp;"
            self.page_label.value = (f"page {model.page + 1} of {model.n_pages} · {model.view_size:,} of "
                                     f"{len(model.frame):,} runs · {len(model.selected)} selected")
            header, lines = model.page_lines()
            self.header.value = html.escape(header)
            self.rows.options = lines
            self.rows.value = tuple(r for _, r in lines if r in model.selected)
        finally:
            self._updating = False
        self.bytes_sent += len(self.header.value) + sum(len(label) + 34 for label, _ in lines)
        if figures:
            self.draw_comparison()

    def draw_comparison(self) -> None:
        """Parallel coordinates, curves and the diff of the selection (or the table's first runs)."""
        model = self._need_model()
        par = model.parcoords_figure()
        self.parcoords.children = (_figure_view(par),)
        self.bytes_sent += payload_bytes(par)
        if model.selected:
            curves = model.curves_figure()
            self.curves.children = (_figure_view(curves),)
            self.bytes_sent += payload_bytes(curves)
            diff = model.diff()
            self.diff.value = ("<b>Differences between the selected runs</b>" + reprs.table(
                ["", *diff.columns], [(k, *v) for k, v in zip(diff.index, diff.itertuples(index=False),
                                                             strict=True)], max_rows=40)
                if len(diff) else "")
        else:
            self.curves.children = ()
            self.diff.value = ""
        self.bytes_sent += len(self.diff.value)

    # ---- actions --------------------------------------------------------------------------------------

    def register(self) -> None:
        version = self._need_model().register(self.model_name.value or None)
        self._say(f"run registered as {version.name} version {version.version}", ok=True)

    def set_alias(self, alias: str) -> None:
        version = self._need_model().set_alias(alias, self.model_name.value or None)
        self._say(f"{version.name}@{alias} → version {version.version} (run {version.run_id[:8]})", ok=True)

    def show_lineage_card(self) -> None:
        card = self._need_model().lineage_card(self.model_name.value or None)
        self.card.value = card._repr_html_()
        self._say(f"lineage card of run {card.run_id[:8]}", ok=True)

    # ---- static snapshot ------------------------------------------------------------------------------

    def snapshot_html(self) -> str:
        """What the widget leaves where no kernel answers: a summary, the first page and the comparison."""
        if self.model is None:
            return reprs.card("Run comparer", note=self.error or "no runs open", status="error")
        model = self.model
        page = model.page_frame(0)
        cols = list(page.columns[1:])
        table = reprs.table([c.split(".", 1)[-1] for c in cols], page[cols].itertuples(index=False),
                            max_rows=model.page_size)
        return reprs.card(f"Runs of {model.experiment}", note=model.summary(), extra=table) + figure_html(
            model.parcoords_figure())

    def __repr__(self) -> str:
        return f"RunComparer({self.model.summary() if self.model else 'no runs open'})"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle or {}, {})
        try:
            snapshot = self.snapshot_html()
        except Exception as exc:  # noqa: BLE001 - a display must never raise
            snapshot = reprs.card("Run comparer", note=readable(exc), status="error")
        return {**data, "text/plain": repr(self), "text/html": snapshot}, metadata
