"""Job launcher and monitor: a form for a training job beside the cluster's free resources; submit; the
experiment's jobs with their status, streamed log and live metric curve; stop, resume; links out.

Presentation only: :class:`~workbench.widgets._jobs_model.JobLauncherModel` builds and checks the spec
(``TrainingSpec``'s own validation, ``workbench.training.capacity`` against the cluster) and calls
``workbench.training`` to submit, stop and resume. Every slow call runs in a daemon thread (submit, stop,
resume, the log tail, the live refresh), so the kernel stays free; every error becomes the widget's
message, never a traceback. A request the cluster can never meet is explained beside the form while it
is being filled in, and refused before anything is submitted. Under papermill or in an HTML export the
widget leaves a static snapshot: the jobs as a table with links, and the selected job's curve.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as w
import plotly.graph_objects as go

from workbench.config import Settings, load_settings
from workbench.errors import readable
from workbench.monitoring import reprs
from workbench.monitoring.figures import figure_html
from workbench.training import TrainingJob
from workbench.training.capacity import CapacityVerdict, ClusterCapacity, JobSummary
from workbench.widgets._capacity_html import capacity_table
from workbench.widgets._jobs_model import JobForm, JobLauncherModel, LogTail
from workbench.widgets._live import LiveWidget

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
LOG_SHOWN_CHARS = 20_000
_CSS = """<style>
.wb-jobs .wb-jobs-log { font-family: var(--jp-code-font-family, monospace); font-size: 11px; white-space: pre-wrap;
  max-height: 260px; overflow-y: auto; background: var(--jp-layout-color2, #f5f5f5); padding: 4px; margin: 0; }
.wb-jobs .wb-jobs-error { color: #c62828; } .wb-jobs .wb-jobs-ok { color: #2e7d32; }
.wb-jobs .wb-jobs-warn { color: #ef6c00; }
.wb-jobs-list select { font-family: var(--jp-code-font-family, monospace); font-size: 12px; }
</style>"""



def _curve_figure() -> go.Figure:
    fig = go.Figure(layout={"height": 300, "margin": {"l": 40, "r": 40, "t": 30, "b": 30},
                            "title": {"text": "metrics per epoch", "font": {"size": 12}},
                            "xaxis": {"title": {"text": "epoch"}}, "legend": {"orientation": "h"},
                            "yaxis": {"title": {"text": "loss"}},
                            "yaxis2": {"title": {"text": "metric"}, "overlaying": "y", "side": "right"}})
    return fig


class JobLauncher(LiveWidget):
    """Launch and watch training jobs of one experiment: ``JobLauncher(data="frames/train.parquet",
    label="is_fraud")``. ``.model`` holds the state; form values are keyword arguments of
    :class:`~workbench.widgets._jobs_model.JobForm`.

    ``live`` refreshes capacity, jobs and the selected job's curve every ``refresh_s`` seconds in a
    background thread; ``log_timeout_s`` bounds how long one job's log is streamed.
    """

    snapshot_title = "Training jobs"
    css_prefix = "wb-jobs"

    def __init__(self, experiment: str | None = None, *, settings: Settings | None = None,
                 model: JobLauncherModel | None = None, live: bool = True, refresh_s: float = 2.0,
                 log_timeout_s: float = 1800.0, spec_defaults: dict[str, Any] | None = None,
                 tags: dict[str, str] | None = None, **form_values: Any) -> None:
        super().__init__(layout=w.Layout(width="100%"))
        self.add_class("wb-jobs")
        self.settings = settings if settings is not None else (model.settings if model else load_settings())
        self.model = model or JobLauncherModel(self.settings, experiment, tags=tags, spec_defaults=spec_defaults)
        self.refresh_s = refresh_s
        self.log_timeout_s = log_timeout_s
        self.capacity_now: ClusterCapacity | None = None
        self.verdict: CapacityVerdict | None = None
        self.job_list: list[JobSummary] = []
        self.selected: JobSummary | None = None
        self.curve_points: dict[str, list[tuple[int, float]]] = {}
        self.log_tail: LogTail | None = None
        self.last_job: TrainingJob | None = None
        self._lock = threading.RLock()
        self._busy: threading.Thread | None = None
        self._init_live()
        self._filling = False
        self._curve_status = ""
        self._build_form()
        self._build_monitor()
        self.children = [
            w.HTML(_CSS), w.HBox([w.HTML(f"<b>Training jobs</b> · experiment <code>"
                                         f"{html.escape(self.model.experiment)}</code>"), self.message]),
            w.HBox([self.form_box, self.capacity_box], layout=w.Layout(width="100%")),
            w.HBox([self.submit_button, self.progress]),
            w.HBox([self.jobs_list, w.VBox([self.refresh_button, self.stop_button, self.resume_button,
                                            self.links])]),
            w.HBox([w.VBox([self.log_status, self.log_view], layout=w.Layout(width="50%")),
                    w.Box([self.curve], layout=w.Layout(width="50%"))], layout=w.Layout(width="100%")),
        ]
        self._guard(lambda: self.set_form(JobForm(**form_values)))
        self._guard(self._fill_datasets)
        self._guard(self.refresh)
        if live:
            self.start_live()

    # ---- building ---------------------------------------------------------------------------------
    def _build_form(self) -> None:
        style = {"description_width": "110px"}

        def layout() -> w.Layout:  # one Layout per widget: hiding one field must not hide those sharing it
            return w.Layout(width="330px")

        def field(widget: w.Widget, cls: str) -> w.Widget:
            widget.add_class(cls)
            return widget

        self.message = w.HTML("")
        self.trainer = field(w.Dropdown(options=self.model.trainers(), description="trainer", layout=layout(),
                                        style=style), "wb-jobs-trainer")
        self.source = field(w.ToggleButtons(options=["path", "dataset"], description="data from", style=style),
                            "wb-jobs-source")
        self.data = field(w.Text(description="frame path", placeholder="frames/train.parquet", layout=layout(),
                                 style=style, continuous_update=False), "wb-jobs-data")
        self.dataset = field(w.Dropdown(options=[], description="dataset", layout=layout(), style=style),
                             "wb-jobs-dataset")
        self.version = field(w.Dropdown(options=[], description="version", layout=layout(), style=style),
                             "wb-jobs-version")
        self.task = field(w.Dropdown(options=list(self.model.tasks()), description="task", layout=layout(),
                                     style=style), "wb-jobs-task")
        self.label = field(w.Text(description="label", layout=layout(), style=style, continuous_update=False),
                           "wb-jobs-label")
        self.features = field(w.Text(description="features", placeholder="all but the label", layout=layout(),
                                     style=style, continuous_update=False), "wb-jobs-features")
        self.workers = field(w.BoundedIntText(value=1, min=1, max=1024, description="workers", layout=layout(),
                                              style=style), "wb-jobs-workers")
        self.cpus = field(w.BoundedFloatText(value=1.0, min=0.05, max=1024, step=0.5,
                                             description="CPUs / worker", layout=layout(), style=style),
                          "wb-jobs-cpus")
        self.use_gpu = field(w.Checkbox(value=False, description="GPU per worker", indent=False), "wb-jobs-gpu")
        self.driver_gpus = field(w.BoundedFloatText(value=0.0, min=0, max=64, step=1, description="driver GPUs",
                                                    layout=layout(), style=style), "wb-jobs-driver-gpus")
        self.memory = field(w.BoundedIntText(value=0, min=0, max=10_000_000, description="memory (MB)",
                                             layout=layout(), style=style), "wb-jobs-memory")
        self.epochs = field(w.BoundedIntText(value=5, min=1, max=100_000, description="epochs / rounds",
                                             layout=layout(), style=style), "wb-jobs-epochs")
        self.run_name = field(w.Text(description="run name", layout=layout(), style=style), "wb-jobs-run-name")
        self.entrypoint = field(w.Text(description="entrypoint", placeholder="custom: train.py or pkg.mod:fn",
                                       layout=layout(), style=style), "wb-jobs-entrypoint")
        self.working_dir = field(w.Text(description="working dir", layout=layout(), style=style),
                                 "wb-jobs-working-dir")
        self.sweep = field(w.Checkbox(value=False, description="sweep (Ray Tune)", indent=False), "wb-jobs-sweep")
        self.search_space = field(w.Textarea(description="search space", layout=w.Layout(width="330px",
                                                                                         height="70px"),
                                             style=style), "wb-jobs-space")
        self.num_samples = field(w.BoundedIntText(value=4, min=1, max=10_000, description="trials", layout=layout(),
                                                  style=style), "wb-jobs-samples")
        self.sweep_box = w.VBox([self.search_space, self.num_samples])
        self.form_box = w.VBox([
            w.HBox([w.VBox([self.trainer, self.source, self.data, self.dataset, self.version, self.task, self.label,
                            self.features, self.run_name]),
                    w.VBox([self.workers, self.cpus, w.HBox([self.use_gpu]), self.driver_gpus, self.memory,
                            self.epochs, self.entrypoint, self.working_dir, self.sweep, self.sweep_box])])])
        self.capacity_html = w.HTML("")
        self.capacity_html.add_class("wb-jobs-capacity")
        self.verdict_html = w.HTML("")
        self.verdict_html.add_class("wb-jobs-verdict")
        self.capacity_box = w.VBox([w.HTML("<b>cluster</b>"), self.capacity_html, self.verdict_html],
                                   layout=w.Layout(width="300px", padding="0 0 0 10px"))
        self.submit_button = field(w.Button(description="submit", button_style="primary", icon="play"),
                                   "wb-jobs-submit")
        self.progress = w.HTML("")
        self.progress.add_class("wb-jobs-progress")
        self.source.observe(lambda _: self._show_source(), "value")
        self.sweep.observe(lambda _: self._show_sweep(), "value")
        self.dataset.observe(lambda _: self._guard(self._fill_versions), "value")
        for widget in (self.trainer, self.data, self.dataset, self.version, self.task, self.label, self.features,
                       self.workers, self.cpus, self.use_gpu, self.driver_gpus, self.memory, self.epochs, self.sweep,
                       self.search_space, self.num_samples, self.source):
            widget.observe(lambda _: self._recheck(), "value")
        self.submit_button.on_click(lambda _: self.submit())

    def _build_monitor(self) -> None:
        self.jobs_list = w.Select(options=[], rows=6, layout=w.Layout(width="640px"))
        self.jobs_list.add_class("wb-jobs-list")
        self.refresh_button = w.Button(description="refresh", icon="refresh")
        self.stop_button = w.Button(description="stop", icon="stop", button_style="danger")
        self.stop_button.add_class("wb-jobs-stop")
        self.resume_button = w.Button(description="resume", icon="forward")
        self.resume_button.add_class("wb-jobs-resume")
        self.links = w.HTML("")
        self.links.add_class("wb-jobs-links")
        self.log_status = w.HTML("<i>no job selected</i>")
        self.log_status.add_class("wb-jobs-log-status")
        self.log_view = w.HTML("")
        self.log_view.add_class("wb-jobs-log-box")
        self.curve = self._figure_view()
        self.jobs_list.observe(lambda change: self._guard(lambda: self.select(change["new"])), "value")
        self.refresh_button.on_click(lambda _: self._guard(self.refresh))
        self.stop_button.on_click(lambda _: self.stop_selected())
        self.resume_button.on_click(lambda _: self.resume_selected())

    def _figure_view(self) -> Any:
        try:
            return go.FigureWidget(_curve_figure())
        except ImportError:  # no anywidget: redrawn as static HTML
            return w.HTML("")

    # ---- the form -----------------------------------------------------------------------------------
    def form(self) -> JobForm:
        """The form's values as a :class:`JobForm`."""
        by_dataset = self.source.value == "dataset"
        return JobForm(trainer=self.trainer.value or "", data="" if by_dataset else self.data.value,
                       dataset=(self.dataset.value or "") if by_dataset else "",
                       version=(self.version.value or "") if by_dataset else "", task=self.task.value or "",
                       label=self.label.value, features=self.features.value, workers=int(self.workers.value),
                       cpus_per_worker=float(self.cpus.value), use_gpu=bool(self.use_gpu.value),
                       driver_gpus=float(self.driver_gpus.value), memory_mb=int(self.memory.value),
                       epochs=int(self.epochs.value), sweep=bool(self.sweep.value),
                       search_space=self.search_space.value, num_samples=int(self.num_samples.value),
                       run_name=self.run_name.value, entrypoint=self.entrypoint.value,
                       working_dir=self.working_dir.value)

    def set_form(self, form: JobForm | None = None, **changes: Any) -> None:
        """Fill the form (``set_form(epochs=2, use_gpu=True)`` changes some fields)."""
        form = (form or self.form()).replace(**changes)
        self._filling = True
        try:
            if form.trainer in self.trainer.options:
                self.trainer.value = form.trainer
            self.source.value = "dataset" if form.dataset else "path"
            self.data.value = form.data
            self.task.value = form.task
            self.label.value = form.label
            self.features.value = form.features
            self.workers.value = form.workers
            self.cpus.value = form.cpus_per_worker
            self.use_gpu.value = form.use_gpu
            self.driver_gpus.value = form.driver_gpus
            self.memory.value = form.memory_mb
            self.epochs.value = form.epochs
            self.sweep.value = form.sweep
            self.search_space.value = form.search_space
            self.num_samples.value = form.num_samples
            self.run_name.value = form.run_name
            self.entrypoint.value = form.entrypoint
            self.working_dir.value = form.working_dir
            if form.dataset:
                self._fill_datasets()
                self.dataset.value = form.dataset
                self._fill_versions()
                if form.version:
                    self.version.value = form.version
        finally:
            self._filling = False
        self._show_source()
        self._show_sweep()
        self._recheck()

    def _show_source(self) -> None:
        by_dataset = self.source.value == "dataset"
        self.data.layout.display = "none" if by_dataset else ""
        self.dataset.layout.display = "" if by_dataset else "none"
        self.version.layout.display = "" if by_dataset else "none"

    def _show_sweep(self) -> None:
        self.sweep_box.layout.display = "" if self.sweep.value else "none"

    def _fill_datasets(self) -> None:
        names = self.model.datasets()
        if list(self.dataset.options) != names:
            self.dataset.options = names

    def _fill_versions(self) -> None:
        self.version.options = self.model.versions(self.dataset.value) if self.dataset.value else []

    def _recheck(self) -> None:
        """Validate the form and compare it with the cluster; show why it cannot run, before submission."""
        if self._filling:
            return
        try:
            _, verdict = self.model.check(self.form(), self.capacity_now)
        except Exception as exc:  # noqa: BLE001 - shown, not raised
            self.verdict = None
            self.verdict_html.value = f'<span class="wb-jobs-error">✗ {html.escape(readable(exc))}</span>'
            return
        self.verdict = verdict
        if not verdict.ok:
            text = "".join(f"<div>✗ {html.escape(r)}</div>" for r in verdict.refusals)
            self.verdict_html.value = f'<span class="wb-jobs-error">{text}</span>'
        else:
            waits = "".join(f'<div class="wb-jobs-warn">⏳ {html.escape(x)}</div>' for x in verdict.waits)
            self.verdict_html.value = (f'<span class="wb-jobs-ok">✓ can run: asks '
                                       f"{html.escape(verdict.demand.what or 'its driver')}</span>{waits}")

    # ---- actions ------------------------------------------------------------------------------------
    def _in_background(self, name: str, doing: str, action: Callable[[], Any]) -> threading.Thread | None:
        """Run ``action`` in a daemon thread, one at a time, with a progress note and errors as messages."""
        if self._busy is not None and self._busy.is_alive():
            self._show_error("still busy with the last action; wait for it")
            return None
        self.progress.value = f"<i>{html.escape(doing)} …</i>"

        def run() -> None:
            started = time.monotonic()
            ok = self._guard(action)
            self.progress.value = f"<i>{html.escape(doing)}: {'done' if ok else 'failed'} in " \
                                  f"{time.monotonic() - started:.1f} s</i>"

        self._busy = threading.Thread(target=run, name=f"wb-jobs-{name}", daemon=True)
        self._busy.start()
        return self._busy

    def wait_idle(self, timeout_s: float = 120.0) -> bool:
        """Wait for the running action (submit, stop, resume); whether it finished in time (for tests)."""
        busy = self._busy
        if busy is None:
            return True
        busy.join(timeout_s)
        return not busy.is_alive()

    def submit(self) -> threading.Thread | None:
        """Check the form against the cluster, then submit in the background; the new job gets selected."""
        form = self.form()
        self.message.value = ""
        try:  # refuse at once (no thread, nothing sent to Ray) when the cluster cannot meet the request
            _, verdict = self.model.check(form, self._fresh_capacity())
        except Exception as exc:  # noqa: BLE001
            self._show_error(readable(exc))
            return None
        if not verdict.ok:
            self._show_error("not submitted: " + verdict.message())
            return None

        def go_submit() -> None:
            job = self.model.submit(form)
            self.last_job = job
            self._show_ok(f"submitted {job.job_id}")
            self.refresh()
            self.select(job.job_id)

        return self._in_background("submit", "submitting", go_submit)

    def stop_selected(self) -> threading.Thread | None:
        job = self.selected
        if job is None:
            self._show_error("select a job to stop")
            return None

        def go_stop() -> None:
            status = self.model.stop(job.job_id)
            self._show_ok(f"{job.job_id} is {status}")
            self.refresh()

        return self._in_background("stop", f"stopping {job.job_id}", go_stop)

    def resume_selected(self) -> threading.Thread | None:
        job = self.selected
        if job is None:
            self._show_error("select a stopped job to resume")
            return None

        def go_resume() -> None:
            resumed = self.model.resume(job)
            self.last_job = resumed
            self._show_ok(f"resumed run {job.run_id[:8]} as {resumed.job_id}")
            self.refresh()
            self.select(resumed.job_id)

        return self._in_background("resume", f"resuming {job.job_id}", go_resume)

    # ---- live state ---------------------------------------------------------------------------------
    def _fresh_capacity(self) -> ClusterCapacity:
        self.capacity_now = self.model.capacity()
        self.capacity_html.value = capacity_table(self.capacity_now, "wb-jobs-capacity-table", with_memory=True)
        return self.capacity_now

    def refresh(self) -> None:
        """Ask the cluster and MLflow once: capacity, the experiment's jobs, the selected job's curve."""
        with self._lock:
            self._fresh_capacity()
            self._recheck()
            self.job_list = self.model.jobs()
            self._fill_jobs()
            if self.selected is not None:
                current = next((j for j in self.job_list if j.job_id == self.selected.job_id), self.selected)
                self.selected = current
                self._update_links()
                self.refresh_curve()

    def _why_waiting(self, job: JobSummary) -> str:
        """For a PENDING job: Ray's message and who holds the cluster's CPUs/GPUs (empty otherwise)."""
        if job.status != "PENDING":
            return ""
        try:
            held = "; ".join(h.summary() for h in self.model.holders()[:5]) or "nothing holds CPUs or GPUs"
        except Exception as exc:  # noqa: BLE001 - a note beside the status, never a failure
            held = f"(Ray did not say who holds its resources: {readable(exc)})"
        return f"{job.message or 'waiting to start'} · held now by: {held}"

    def _fill_jobs(self) -> None:
        options = [(f"{j.status:<9} {j.job_id}  {j.trainer} {j.kind}", j.job_id) for j in self.job_list]
        if list(self.jobs_list.options) != options:
            keep = self.jobs_list.value
            self.jobs_list.options = options
            if keep in {v for _, v in options}:
                self.jobs_list.value = keep

    def select(self, job_id: str | None) -> None:
        """Show job ``job_id``: its links, its streamed log (a new tail) and its curve."""
        if job_id is None:
            return
        with self._lock:
            job = next((j for j in self.job_list if j.job_id == job_id), None)
            if job is None:
                self.job_list = self.model.jobs()
                self._fill_jobs()
                job = next((j for j in self.job_list if j.job_id == job_id), None)
            if job is None:
                self._show_error(f"no job {job_id} in experiment {self.model.experiment}")
                return
            changed = self.selected is None or self.selected.job_id != job_id
            self.selected = job
            if self.jobs_list.value != job_id:
                self.jobs_list.value = job_id
            self._update_links()
            if changed:
                self.curve_points = {}
                self._start_log(job_id)
            self.refresh_curve()

    def _update_links(self) -> None:
        job = self.selected
        if job is None:
            self.links.value = ""
            return
        parts = [f'<a class="wb-jobs-ray-link" href="{html.escape(self.model.dashboard_url(job.job_id))}" '
                 'target="_blank">Ray dashboard ↗</a>']
        if job.run_id:
            parts.append(f'<a class="wb-jobs-run-link" href="{html.escape(self.model.run_url(job))}" '
                         'target="_blank">MLflow run ↗</a>')
        status_class = {"SUCCEEDED": "wb-jobs-ok", "FAILED": "wb-jobs-error", "STOPPED": "wb-jobs-warn"}.get(
            job.status, "")
        note = self._why_waiting(job)  # asked again at each refresh and selection, while PENDING only
        waiting = f'<div class="wb-jobs-waiting wb-jobs-warn">⏳ {html.escape(note)}</div>' if note else ""
        self.links.value = (f'<div>status <b class="wb-jobs-status {status_class}" data-status="{job.status}">'
                            f"{job.status}</b></div>{waiting}" + "<br>".join(parts))
        self.stop_button.disabled = job.status in TERMINAL
        self.resume_button.disabled = job.status not in ("STOPPED", "FAILED")

    def _start_log(self, job_id: str) -> None:
        if self.log_tail is not None:
            self.log_tail.stop("another job was selected")
        self.log_view.value = ""
        self.log_status.value = f"<i>streaming the log of {html.escape(job_id)} …</i>"
        tail = LogTail(self.settings, job_id, on_chunk=self._show_log, timeout_s=self.log_timeout_s)
        self.log_tail = tail
        threading.Thread(target=self._watch_log, args=(tail,), daemon=True, name=f"wb-logs-watch-{job_id}").start()
        tail.start()

    def _show_log(self, text: str) -> None:
        shown = text[-LOG_SHOWN_CHARS:]
        self.log_view.value = f'<pre class="wb-jobs-log">{html.escape(shown)}</pre>'

    def _watch_log(self, tail: LogTail) -> None:
        tail.ended.wait()
        if tail is not self.log_tail:
            return
        if tail.error:
            self.log_status.value = f'<span class="wb-jobs-error">⚠ {html.escape(tail.error)}</span>'
        else:
            self.log_status.value = (f"<i>log of {html.escape(tail.job_id)}: {html.escape(tail.reason)} "
                                     f"({tail.chunks} chunks)</i>")

    def refresh_curve(self) -> None:
        """Redraw the selected job's metrics per epoch from MLflow's history."""
        job = self.selected
        if job is None:
            return
        points = self.model.curve(job)
        if points == self.curve_points and job.status == self._curve_status:
            return
        self.curve_points = points
        self._curve_status = job.status  # the title names the status: redraw when only it changed
        self._draw_curve()

    def curve_figure(self) -> go.Figure:
        fig = _curve_figure()
        for key, series in self.curve_points.items():
            fig.add_scatter(x=[s for s, _ in series], y=[v for _, v in series], mode="lines+markers", name=key,
                            yaxis="y" if "loss" in key else "y2")
        if self.selected is not None:
            fig.update_layout(title={"text": f"{self.selected.job_id} · {self.selected.status}"})
        return fig

    def _draw_curve(self) -> None:
        fig = self.curve_figure()
        if isinstance(self.curve, go.FigureWidget):
            # Plotly's front end follows trace additions, removals and restyles, each sent on its own;
            # replacing data and layout wholesale inside one batch left the drawn figure empty in JupyterLab.
            wanted = [t.name for t in fig.data]
            if any(t.name not in wanted for t in self.curve.data):
                self.curve.data = [t for t in self.curve.data if t.name in wanted]
            have = {t.name for t in self.curve.data}
            new = [t for t in fig.data if t.name not in have]
            if new:
                self.curve.add_traces(new)
            by_name = {t.name: t for t in self.curve.data}
            with self.curve.batch_update():
                for trace in fig.data:
                    by_name[trace.name].x = trace.x
                    by_name[trace.name].y = trace.y
                self.curve.layout.title.text = fig.layout.title.text
        else:
            self.curve.value = figure_html(fig)

    def stop_live(self) -> None:
        super().stop_live()
        if self.log_tail is not None:
            self.log_tail.stop()

    def close(self) -> None:
        self.stop_live()
        super().close()

    # ---- static snapshot ----------------------------------------------------------------------------
    def snapshot_html(self) -> str:
        """What the widget leaves where no kernel answers: capacity, the jobs with links, the curve."""
        head = "<tr>" + "".join(f"<th style='text-align:left;padding:2px 8px'>{h}</th>" for h in
                                ("job", "status", "trainer", "kind", "links")) + "</tr>"
        rows = []
        for job in self.job_list[:20]:
            links = f'<a href="{html.escape(self.model.dashboard_url(job.job_id))}">Ray</a>'
            if job.run_id:
                links += f' · <a href="{html.escape(self.model.run_url(job))}">MLflow run</a>'
            rows.append("<tr>" + "".join(f"<td style='padding:2px 8px'>{c}</td>" for c in (
                html.escape(job.job_id), html.escape(job.status), html.escape(job.trainer), html.escape(job.kind),
                links)) + "</tr>")
        table = (f"<table class='wb-jobs-snapshot'>{head}{''.join(rows)}</table>" if rows
                 else "<i>no jobs in this experiment yet</i>")
        fields = {"experiment": self.model.experiment, "jobs": len(self.job_list)}
        if self.capacity_now is not None:
            fields["cluster"] = self.capacity_now.summary()
        note = self.error or ""
        body = reprs.card("Training jobs", fields, note=note, extra=table, status="error" if note else "")
        if self.selected is not None and self.curve_points:
            body += figure_html(self.curve_figure())
        return body

    def __repr__(self) -> str:
        return f"JobLauncher(experiment={self.model.experiment!r}, jobs={len(self.job_list)})"

