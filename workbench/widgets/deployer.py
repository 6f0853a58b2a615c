"""Deployer: choose a registered model version or alias, a target (Ray Serve, or vLLM for a language model)
and resources beside the cluster's free CPUs and GPUs; deploy with progress; the deployments as a table
with health, version served and replicas; try a request through a form built from the served model's
signature (or a streamed chat with a vLLM deployment); roll to another version, roll back, delete.

Presentation only: :class:`~workbench.widgets._deployer_model.DeployerModel` checks the request and calls the
public serving API. Deploy, roll, roll back, delete and each request run as an
:class:`~workbench.widgets._deployer_model.Operation` in a daemon thread with a progress line, so the kernel
stays free; every error becomes the widget's message, never a traceback. A request the cluster cannot meet
is explained beside the form before anything is deployed. Under papermill or in an HTML export the widget
leaves a static snapshot: the deployments as a table and the last answer.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from workbench.config import Settings, load_settings
from workbench.errors import readable
from workbench.monitoring import reprs
from workbench.registry import ModelVersionInfo
from workbench.training.capacity import ClusterCapacity
from workbench.widgets._capacity_html import capacity_table
from workbench.widgets._deployer_model import (
    COLUMNS,
    RAY_SERVE,
    VLLM,
    ChatState,
    DeployCheck,
    DeployerModel,
    DeployForm,
    DeploymentRow,
    Operation,
    RequestField,
    default_name,
)
from workbench.widgets._live import LiveWidget

_CSS = """<style>
.wb-deploy .wb-deploy-error { color: #c62828; } .wb-deploy .wb-deploy-ok { color: #2e7d32; }
.wb-deploy .wb-deploy-warn { color: #ef6c00; }
.wb-deploy table.wb-deploy-rows { border-collapse: collapse; font-size: 12px; }
.wb-deploy table.wb-deploy-rows th, .wb-deploy table.wb-deploy-rows td { padding: 2px 8px; text-align: left;
  border-bottom: 1px solid var(--jp-border-color2, #ddd); }
.wb-deploy .wb-health-healthy { color: #2e7d32; font-weight: 600; }
.wb-deploy .wb-health-unhealthy { color: #c62828; font-weight: 600; }
.wb-deploy .wb-health-updating { color: #ef6c00; } .wb-deploy .wb-health-stopped { color: #757575; }
.wb-deploy .wb-deploy-chat { font-size: 12px; max-height: 260px; overflow-y: auto; white-space: pre-wrap;
  background: var(--jp-layout-color2, #f5f5f5); padding: 4px; }
</style>"""
_FINISH_GRACE_S = 60.0  # how long a click waits for an ended action to finish redrawing
_HEALTH_MARK = {"healthy": "●", "unhealthy": "✖", "updating": "◌", "stopped": "○"}


def _css_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def rows_table(rows: list[DeploymentRow]) -> str:
    """The deployments as an HTML table (the widget's and the snapshot's)."""
    if not rows:
        return "<i>no deployments yet</i>"
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in COLUMNS) + "</tr>"
    body = []
    for r in rows:
        cells = [html.escape(c) for c in r.cells()]
        cells[2] = (f"<span class='wb-health wb-health-{r.health}' data-health='{r.health}'>"
                    f"{_HEALTH_MARK.get(r.health, '')} {html.escape(r.health)}</span>")
        cells[5] = f"<span class='wb-deploy-version' data-version='{html.escape(r.version)}'>v{cells[5]}</span>"
        title = f" title='{html.escape(r.message)}'" if r.message else ""
        body.append(f"<tr data-deployment='{html.escape(r.name)}'{title}>" +
                    "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table class='wb-deploy-rows'>{head}{''.join(body)}</table>"


def answer_table(answer: dict[str, Any]) -> str:
    """The answer's fields with their values exactly as the deployment sent them (JSON), not rounded."""
    rows = "".join(f"<tr data-output='{html.escape(str(k))}'><td>{html.escape(str(k))}</td>"
                   f"<td><code>{html.escape(v if isinstance(v, str) else json.dumps(v))}</code></td></tr>"
                   for k, v in answer.items())
    return f"<table class='wb-deploy-rows wb-deploy-answer-table'><tr><th>output</th><th>value</th></tr>{rows}</table>"


class Deployer(LiveWidget):
    """Deploy registered models and try them: ``Deployer()``; ``Deployer(model="fraud-detector",
    version="champion")`` fills the form (keyword arguments of
    :class:`~workbench.widgets._deployer_model.DeployForm`; ``model`` is the registered model's name, or a
    :class:`~workbench.widgets._deployer_model.DeployerModel` to share). ``.model`` holds the state.

    ``live`` refreshes the capacity and the deployments every ``refresh_s`` seconds in a background thread.
    """

    snapshot_title = "Deployments"
    css_prefix = "wb-deploy"

    def __init__(self, *, settings: Settings | None = None, model: DeployerModel | str | None = None,
                 live: bool = True, refresh_s: float = 3.0, timeout_s: float = 600.0, chat_max_tokens: int = 64,
                 **form_values: Any) -> None:
        super().__init__(layout=w.Layout(width="100%"))
        if isinstance(model, str):  # Deployer(model="fraud-detector"): the form's registered model
            form_values["model"], model = model, None
        self.add_class("wb-deploy")
        self.settings = settings if settings is not None else (model.settings if model else load_settings())
        self.model = model or DeployerModel(self.settings, timeout_s=timeout_s)
        self.refresh_s = refresh_s
        self.chat_max_tokens = chat_max_tokens
        self.capacity_now: ClusterCapacity | None = None
        self.verdict: DeployCheck | None = None
        self.rows: list[DeploymentRow] = []
        self.selected: DeploymentRow | None = None
        self.versions: list[ModelVersionInfo] = []
        self.fields: list[RequestField] = []
        self.field_widgets: dict[str, w.Text] = {}
        self.last_answer: dict[str, Any] | None = None
        self.chat_state: ChatState | None = None
        self.operation: Operation | None = None
        self.request_op: Operation | None = None
        self.pending_delete = ""
        self._lock = threading.RLock()
        self._init_live()
        self._filling = False
        self._build()
        self._guard(self._fill_models)
        self._guard(lambda: self.set_form(DeployForm(**form_values)))
        self._guard(self.refresh)
        if live:
            self.start_live()

    # ---- building ---------------------------------------------------------------------------------
    def _build(self) -> None:
        style = {"description_width": "110px"}

        def field(widget: w.Widget, cls: str) -> Any:
            widget.add_class(cls)
            return widget

        def layout(width: str = "330px") -> w.Layout:
            return w.Layout(width=width)

        self.message = field(w.HTML(""), "wb-deploy-message-box")
        self.model_pick = field(w.Dropdown(options=[], description="model", layout=layout(), style=style),
                                "wb-deploy-model")
        self.version_pick = field(w.Dropdown(options=[], description="version / alias", layout=layout(),
                                             style=style), "wb-deploy-version-pick")
        self.target = field(w.ToggleButtons(options=[("Ray Serve", RAY_SERVE), ("vLLM", VLLM)], value=RAY_SERVE,
                                            description="target", style={"description_width": "110px",
                                                                         "button_width": "100px"}),
                            "wb-deploy-target")
        self.name = field(w.Text(description="name", placeholder="from the model's name", layout=layout(),
                                 style=style, continuous_update=False), "wb-deploy-name")
        self.replicas = field(w.BoundedIntText(value=1, min=1, max=256, description="replicas", layout=layout(),
                                               style=style), "wb-deploy-replicas")
        self.cpus = field(w.BoundedFloatText(value=0.5, min=0, max=1024, step=0.5, description="CPUs / replica",
                                             layout=layout(), style=style), "wb-deploy-cpus")
        self.gpus = field(w.BoundedFloatText(value=0.0, min=0, max=64, step=1, description="GPUs / replica",
                                             layout=layout(), style=style), "wb-deploy-gpus")
        self.autoscale = field(w.Checkbox(value=False, description="autoscale", indent=False), "wb-deploy-autoscale")
        self.max_replicas = field(w.BoundedIntText(value=2, min=1, max=256, description="max replicas",
                                                   layout=layout(), style=style), "wb-deploy-max-replicas")
        self.max_len = field(w.BoundedIntText(value=512, min=16, max=1_048_576, description="context length",
                                              layout=layout(), style=style), "wb-deploy-max-len")
        self.capacity_html = field(w.HTML(""), "wb-deploy-capacity")
        self.verdict_html = field(w.HTML(""), "wb-deploy-verdict")
        self.target_note = field(w.HTML(""), "wb-deploy-target-note")
        self.deploy_button = field(w.Button(description="deploy", button_style="primary", icon="rocket"),
                                   "wb-deploy-deploy")
        self.progress = field(w.HTML(""), "wb-deploy-progress")
        form = w.HBox([w.VBox([self.model_pick, self.version_pick, self.target, self.target_note, self.name]),
                       w.VBox([self.replicas, self.cpus, self.gpus, self.autoscale, self.max_replicas, self.max_len]),
                       w.VBox([w.HTML("<b>cluster</b>"), self.capacity_html, self.verdict_html],
                              layout=w.Layout(width="320px", padding="0 0 0 10px"))])

        self.table = field(w.HTML("<i>no deployments yet</i>"), "wb-deploy-table")
        self.deployment_pick = field(w.Dropdown(options=[], description="deployment", layout=layout(),
                                                style=style), "wb-deploy-selected")
        self.refresh_button = field(w.Button(description="refresh", icon="refresh"), "wb-deploy-refresh")
        self.roll_pick = field(w.Dropdown(options=[], description="roll to", layout=layout("260px"),
                                          style={"description_width": "60px"}), "wb-deploy-roll-version")
        self.roll_button = field(w.Button(description="roll", icon="forward"), "wb-deploy-roll")
        self.rollback_button = field(w.Button(description="roll back", icon="undo"), "wb-deploy-rollback")
        self.delete_button = field(w.Button(description="delete", icon="trash", button_style="danger"),
                                   "wb-deploy-delete")
        self.confirm_text = field(w.HTML(""), "wb-deploy-confirm-text")
        self.confirm_button = field(w.Button(description="yes, delete", button_style="danger"), "wb-deploy-confirm")
        self.cancel_button = field(w.Button(description="cancel"), "wb-deploy-cancel")
        self.confirm_box = w.HBox([self.confirm_text, self.confirm_button, self.cancel_button],
                                  layout=w.Layout(display="none"))
        actions = w.VBox([w.HBox([self.deployment_pick, self.refresh_button]),
                          w.HBox([self.roll_pick, self.roll_button, self.rollback_button, self.delete_button]),
                          self.confirm_box])

        self.try_title = field(w.HTML("<b>try a request</b> · <i>select a healthy deployment</i>"),
                               "wb-deploy-try-title")
        self.fields_box = field(w.VBox([]), "wb-deploy-fields")
        self.send_button = field(w.Button(description="send", icon="paper-plane", button_style="primary"),
                                 "wb-deploy-send")
        self.answer = field(w.HTML(""), "wb-deploy-answer")
        self.chat_log = field(w.HTML(""), "wb-deploy-chat-log")
        self.chat_input = field(w.Textarea(placeholder="say something to the model", layout=layout("420px")),
                                "wb-deploy-chat-input")
        self.chat_send = field(w.Button(description="send", icon="paper-plane", button_style="primary"),
                               "wb-deploy-chat-send")
        self.chat_stream = field(w.Checkbox(value=True, description="stream", indent=False), "wb-deploy-chat-stream")
        self.chat_note = field(w.HTML("<i>answers stream as they are generated</i>"), "wb-deploy-chat-note")
        self.request_box = w.VBox([self.fields_box, self.send_button, self.answer])
        self.chat_box = w.VBox([self.chat_log, self.chat_input,
                                w.HBox([self.chat_send, self.chat_stream, self.chat_note])],
                               layout=w.Layout(display="none"))

        self.children = [
            w.HTML(_CSS), w.HBox([w.HTML("<b>Deploy</b> · a registered model on Ray Serve or vLLM"), self.message]),
            form, w.HBox([self.deploy_button, self.progress]),
            w.HTML("<b>deployments</b>"), self.table, actions,
            self.try_title, self.request_box, self.chat_box,
        ]
        self.model_pick.observe(lambda _: self._guard(self._on_model), "value")
        self.version_pick.observe(lambda _: self._guard(self._on_version), "value")
        for widget in (self.target, self.name, self.replicas, self.cpus, self.gpus, self.autoscale,
                       self.max_replicas, self.max_len):
            widget.observe(lambda _: self._recheck(), "value")
        self.autoscale.observe(lambda _: self._show_autoscale(), "value")
        self.deploy_button.on_click(lambda _: self.deploy())
        self.refresh_button.on_click(lambda _: self._guard(self.refresh))
        self.deployment_pick.observe(lambda change: self._guard(lambda: self.select(change["new"])), "value")
        self.roll_button.on_click(lambda _: self.roll_selected())
        self.rollback_button.on_click(lambda _: self.rollback_selected())
        self.delete_button.on_click(lambda _: self.ask_delete())
        self.confirm_button.on_click(lambda _: self.confirm_delete())
        self.cancel_button.on_click(lambda _: self.cancel_delete())
        self.send_button.on_click(lambda _: self.send_request())
        self.chat_send.on_click(lambda _: self.send_chat())
        self.chat_stream.observe(lambda change: setattr(self.chat_note, "value", (
            "<i>answers stream as they are generated</i>" if change["new"] else
            "<i>not streaming: the answer shows when it is complete</i>")), "value")
        self._show_autoscale()

    # ---- the form -----------------------------------------------------------------------------------
    def _fill_models(self) -> None:
        models = self.model.models()
        keep = self.model_pick.value
        self.model_pick.options = models
        if keep in models:
            self.model_pick.value = keep

    def _on_model(self) -> None:
        model = self.model_pick.value or ""
        self.versions = self.model.versions(model)
        choices = self.model.version_choices(model) if self.versions else []
        # the picker's options are computed from the versions already read (no second MLflow call)
        self.version_pick.options = choices
        if choices:
            values = [v for _, v in choices]
            self.version_pick.value = "champion" if "champion" in values else values[0]
        if not self._filling:
            self.name.value = default_name(model) if model else ""
        self._on_version()

    def _on_version(self) -> None:
        chosen = self.model.pick(self.versions, str(self.version_pick.value or ""))
        if chosen is not None and not self._filling:
            self.target.value = VLLM if self.model.is_llm(chosen) else RAY_SERVE
        self._show_target()
        self._recheck()

    def _show_target(self) -> None:
        llm = self.target.value == VLLM
        for widget in (self.replicas, self.cpus, self.autoscale, self.max_replicas):
            widget.layout.display = "none" if llm else ""
        self.max_len.layout.display = "" if llm else "none"
        self._show_autoscale()
        note = ""
        if llm:
            missing = self.model.vllm_missing()
            note = (f"<span class='wb-deploy-warn'>vLLM is not installed: {html.escape(missing)}</span>" if missing
                    else "<i>one vLLM server on this host; chat answers stream</i>")
        self.target_note.value = note

    def _show_autoscale(self) -> None:
        show = self.autoscale.value and self.target.value != VLLM
        self.max_replicas.layout.display = "" if show else "none"

    def form(self) -> DeployForm:
        return DeployForm(model=self.model_pick.value or "", version=str(self.version_pick.value or "latest"),
                          name=self.name.value, target=self.target.value, replicas=int(self.replicas.value),
                          num_cpus=float(self.cpus.value), num_gpus=float(self.gpus.value),
                          autoscale=bool(self.autoscale.value), max_replicas=int(self.max_replicas.value),
                          max_model_len=int(self.max_len.value))

    def set_form(self, form: DeployForm | None = None, **changes: Any) -> None:
        """Fill the form (``set_form(model="m", version="2", replicas=2)`` changes some fields). The target
        follows the chosen version's kind (vLLM for a language model) unless one is given."""
        explicit_target = form.target if form is not None else str(changes.get("target", ""))
        form = (form or self.form()).replace(**changes)
        if form.model and form.model not in self.model_pick.options:
            self._fill_models()
        if form.model and form.model in self.model_pick.options and self.model_pick.value != form.model:
            self.model_pick.value = form.model  # fills versions, the default name and the target
        self._filling = True
        try:
            if form.version in [v for _, v in self.version_pick.options]:
                self.version_pick.value = form.version
            if form.name:
                self.name.value = form.name
            if explicit_target:
                self.target.value = explicit_target
            self.replicas.value = form.replicas
            self.cpus.value = form.num_cpus
            self.gpus.value = form.num_gpus
            self.autoscale.value = form.autoscale
            self.max_replicas.value = form.max_replicas
            self.max_len.value = form.max_model_len
        finally:
            self._filling = False
        self._show_target()
        self._recheck()

    def _recheck(self) -> None:
        """Check the form against the cluster (read at the last refresh) and say whether it can deploy."""
        if self._filling:
            return
        form = self.form()
        if not form.model:
            self.verdict_html.value = "<i>register a model in MLflow to deploy it</i>"
            self.deploy_button.disabled = True
            return
        try:
            chosen = self.model.pick(self.versions, form.version)
            verdict = self.model.check(form, self.capacity_now, version=chosen,
                                       existing={r.name for r in self.rows})
        except Exception as exc:  # noqa: BLE001 - a bad field is shown, not raised
            self.verdict = None
            self.verdict_html.value = f"<span class='wb-deploy-error'>⚠ {html.escape(readable(exc))}</span>"
            self.deploy_button.disabled = True
            return
        self.verdict = verdict
        cls = "wb-deploy-ok" if verdict.ok else "wb-deploy-error"
        mark = "" if verdict.ok else "⚠ "
        self.verdict_html.value = f"<span class='{cls}'>{mark}{html.escape(verdict.message())}</span>"
        self.deploy_button.disabled = not verdict.ok

    # ---- long operations ---------------------------------------------------------------------------
    def _start(self, what: str, action: Callable[[], Any], *, watch: Callable[[], str] | None = None,
               then: Callable[[Operation], Any] | None = None, request: bool = False) -> Operation | None:
        current = self.request_op if request else self.operation
        # An action that has ended may still be redrawing the table (its ``then``): a click in that short
        # gap waits for it instead of being refused, since the user already saw the action end.
        if current is not None and current.done.is_set():
            current.finished.wait(_FINISH_GRACE_S)
        if current is not None and not current.finished.is_set():
            self._show_error(f"still busy ({current.what}); wait for it")
            return None

        def changed(op: Operation) -> None:
            if op.done.is_set():
                if op.error:
                    self._show_error(op.error)
                if then is not None:
                    self._guard(lambda: then(op))
            # the final line ("done in ...") is drawn only after ``then``: once it shows, the widget is ready
            if not request:
                self.progress.value = f"<i>{html.escape(op.text())}</i>" if op.ok or not op.done.is_set() else \
                    f"<span class='wb-deploy-error'>{html.escape(op.text())}</span>"

        op = Operation(what, action, watch=watch, on_change=changed)
        if request:
            self.request_op = op
        else:
            self.operation = op
            self.progress.value = f"<i>{html.escape(what)} …</i>"
        return op.start()

    def wait_idle(self, timeout_s: float = 600.0) -> bool:
        """Wait for the running operations (and what they do when done); whether they ended in time (tests)."""
        ok = True
        for op in (self.operation, self.request_op):
            if op is not None:
                ok = op.wait(timeout_s) and ok
        return ok

    def deploy(self) -> Operation | None:
        """Check the form against the cluster now, then deploy in the background; the new one gets selected."""
        self.message.value = ""
        form = self.form()
        try:  # refuse at once (no thread, nothing sent to Serve) when the request cannot be met
            self._fresh_capacity()
            verdict = self.model.check(form, self.capacity_now)
        except Exception as exc:  # noqa: BLE001
            self._show_error(readable(exc))
            return None
        if not verdict.ok:
            self._show_error("not deployed: " + verdict.message())
            return None
        name = verdict.name
        capacity = self.capacity_now

        def done(op: Operation) -> None:
            self.refresh()
            if op.ok:
                self._show_ok(f"deployed {verdict.uri} as {name}")
                self.select(name)

        watch = (lambda: self.model.serve_status(name)) if form.target == RAY_SERVE else \
            (lambda: "starting the vLLM server")
        return self._start(f"deploying {name}", lambda: self.model.deploy(form, capacity), watch=watch, then=done)

    def roll_selected(self) -> Operation | None:
        row, version = self.selected, str(self.roll_pick.value or "")
        if row is None or not version:
            self._show_error("select a deployment and the version to roll to")
            return None
        name = row.name
        return self._start(f"rolling {name} to {version}", lambda: self.model.roll(name, version),
                           watch=lambda: self.model.serve_status(name), then=self._after_change(name, "rolled"))

    def rollback_selected(self) -> Operation | None:
        row = self.selected
        if row is None:
            self._show_error("select a deployment to roll back")
            return None
        name = row.name
        return self._start(f"rolling {name} back", lambda: self.model.rollback(name),
                           watch=lambda: self.model.serve_status(name), then=self._after_change(name, "rolled back"))

    def _after_change(self, name: str, did: str) -> Callable[[Operation], Any]:
        def done(op: Operation) -> None:
            self.refresh()
            if op.ok and isinstance(op.result, DeploymentRow):
                self._show_ok(f"{did} {name}: serving v{op.result.version}")
                self.select(name, force=True)
        return done

    def ask_delete(self) -> None:
        """First step of delete: show what will happen and ask to confirm."""
        row = self.selected
        if row is None:
            self._show_error("select a deployment to delete")
            return
        self.pending_delete = row.name
        self.confirm_text.value = (f"<span class='wb-deploy-warn'>delete <b>{html.escape(row.name)}</b>? it stops "
                                   "serving (its prediction log stays)</span>")
        self.confirm_box.layout.display = ""

    def cancel_delete(self) -> None:
        self.pending_delete = ""
        self.confirm_box.layout.display = "none"

    def confirm_delete(self) -> Operation | None:
        name = self.pending_delete
        if not name:
            self._show_error("press delete first")
            return None
        self.cancel_delete()

        def done(op: Operation) -> None:
            if op.ok:
                self._show_ok(f"deleted {name}")
                if self.selected is not None and self.selected.name == name:
                    self.selected = None
                    self._show_try(None)
            self.refresh()

        return self._start(f"deleting {name}", lambda: self.model.delete(name), then=done)

    # ---- deployments -------------------------------------------------------------------------------
    def _fresh_capacity(self) -> ClusterCapacity:
        self.capacity_now = self.model.capacity()
        self.capacity_html.value = capacity_table(self.capacity_now, "wb-deploy-capacity-table")
        return self.capacity_now

    def refresh(self) -> None:
        """Ask Ray once: capacity and deployments; the table, the picker and the check follow."""
        with self._lock:
            self._fresh_capacity()
            self.rows = self.model.rows()
            table = rows_table(self.rows)
            if self.table.value != table:
                self.table.value = table
            options = [r.name for r in self.rows]
            if list(self.deployment_pick.options) != options:
                keep = self.deployment_pick.value
                self.deployment_pick.options = options
                self.deployment_pick.value = keep if keep in options else None
            if self.selected is not None:
                now = next((r for r in self.rows if r.name == self.selected.name), None)
                if now is None:
                    self.selected = None
                    self._show_try(None)
                elif (now.health, now.version) != (self.selected.health, self.selected.version):
                    self.select(now.name, force=True)
            self._recheck()

    def row(self, name: str) -> DeploymentRow | None:
        return next((r for r in self.rows if r.name == name), None)

    def select(self, name: str | None, *, force: bool = False) -> None:
        """Show deployment ``name``: the versions to roll to and its request form (or chat box)."""
        if not name:
            return
        with self._lock:
            row = self.row(name)
            if row is None:
                self.rows = self.model.rows()
                row = self.row(name)
            if row is None:
                self._show_error(f"no deployment {name!r}")
                return
            changed = force or self.selected is None or self.selected.name != name
            self.selected = row
            if name in self.deployment_pick.options and self.deployment_pick.value != name:
                self.deployment_pick.value = name
            if changed:
                choices = self.model.version_choices(row.model) if row.model else []
                self.roll_pick.options = [(label, value) for label, value in choices if value != row.version]
                self._show_try(row)

    def _show_try(self, row: DeploymentRow | None) -> None:
        self.fields, self.field_widgets = [], {}
        self.fields_box.children = ()
        self.answer.value = ""
        if row is None:
            self.try_title.value = "<b>try a request</b> · <i>select a healthy deployment</i>"
            self.request_box.layout.display, self.chat_box.layout.display = "", "none"
            return
        name = html.escape(row.name)
        if row.health != "healthy":
            self.try_title.value = f"<b>try {name}</b> · <i>it is {html.escape(row.health)}; the form appears when " \
                                   "it is healthy</i>"
            return
        if row.is_llm:
            self.request_box.layout.display, self.chat_box.layout.display = "none", ""
            if self.chat_state is None or self.chat_state.deployment != row.name:
                self.chat_state = ChatState(row.name)
                self.chat_log.value = ""
            self.try_title.value = f"<b>chat with {name}</b> · v{html.escape(row.version)} · <i>vLLM's OpenAI API</i>"
            return
        self.request_box.layout.display, self.chat_box.layout.display = "", "none"
        self.fields = self.model.fields(row.name)
        for f in self.fields:
            text = w.Text(description=f.name, placeholder=("optional · " if f.optional_extra or not f.required
                                                           else "") + f.hint,
                          layout=w.Layout(width="420px"), style={"description_width": "150px"})
            text.add_class("wb-deploy-field")
            text.add_class(f"wb-deploy-field-{_css_name(f.name)}")
            self.field_widgets[f.name] = text
        self.fields_box.children = tuple(self.field_widgets.values())
        self.try_title.value = f"<b>try {name}</b> · v{html.escape(row.version)} · <i>fields from its signature</i>"

    # ---- trying ------------------------------------------------------------------------------------
    def set_fields(self, **values: Any) -> None:
        """Type values into the request form (``set_fields(amount="12.5", colour="red")``)."""
        for key, value in values.items():
            if key not in self.field_widgets:
                raise KeyError(f"no field {key!r}; the form has {list(self.field_widgets)}")
            self.field_widgets[key].value = str(value)

    def send_request(self) -> Operation | None:
        row = self.selected
        if row is None or not self.field_widgets:
            self._show_error("select a healthy deployment first")
            return None
        name = row.name
        values = {k: t.value for k, t in self.field_widgets.items()}
        self.message.value = ""
        self.answer.value = "<i>sending …</i>"

        def done(op: Operation) -> None:
            if op.ok:
                self.last_answer = op.result
                self.answer.value = f"<div class='wb-deploy-answer-ok'>{answer_table(op.result)}</div>"
            else:
                self.last_answer = None
                self.answer.value = f"<span class='wb-deploy-error'>⚠ {html.escape(op.error)}</span>"

        return self._start(f"request to {name}", lambda: self.model.try_request(name, values), then=done,
                           request=True)

    def send_chat(self) -> Operation | None:
        state = self.chat_state
        if state is None:
            self._show_error("select a healthy vLLM deployment first")
            return None
        text = self.chat_input.value
        state.streaming = bool(self.chat_stream.value)
        self.chat_input.value = ""

        def draw(partial: str = "") -> None:
            lines = [f"<b>{t.role}</b>: {html.escape(t.content)}" for t in state.turns]
            if partial and (not state.turns or state.turns[-1].role == "user"):
                lines.append(f"<b>assistant</b>: {html.escape(partial)}▌")
            self.chat_log.value = f"<div class='wb-deploy-chat'>{'<br>'.join(lines)}</div>"

        def done(op: Operation) -> None:
            draw()
            if op.error:
                self.chat_log.value += f"<span class='wb-deploy-error'>⚠ {html.escape(op.error)}</span>"

        tokens = self.chat_max_tokens
        return self._start(f"chat with {state.deployment}",
                           lambda: self.model.chat_stream(state, text, max_tokens=tokens, on_text=draw), then=done,
                           request=True)

    # ---- live ---------------------------------------------------------------------------------------
    def close(self) -> None:
        self.stop_live()
        super().close()

    # ---- static snapshot ----------------------------------------------------------------------------
    def snapshot_html(self) -> str:
        """What the widget leaves where no kernel answers: the cluster, the deployments, the last answer."""
        fields: dict[str, Any] = {"deployments": len(self.rows),
                                  "healthy": sum(r.health == "healthy" for r in self.rows)}
        if self.capacity_now is not None:
            fields["cluster"] = self.capacity_now.summary()
        note = self.error or ""
        body = reprs.card("Deployments", fields, note=note, extra=rows_table(self.rows),
                          status="error" if note else "")
        if self.last_answer is not None and self.selected is not None:
            body += reprs.card(f"Last answer of {self.selected.name}", extra=answer_table(self.last_answer))
        return body

    def __repr__(self) -> str:
        return f"Deployer(deployments={[r.name for r in self.rows]})"

