"""The deployer's state without any widget: which model version to serve where and with what, a check of
that request against the cluster before anything is deployed, the deployments as table rows, a request
form built from the served model's signature, and the long actions (deploy, roll, roll back, delete) as
:class:`Operation` s running in daemon threads. Tested headless.

Everything goes through the public serving API (:mod:`workbench.serving`: ``deploy``, ``update_deployment``,
``rollback``, ``delete_deployment``, ``list_deployments``, ``request_fields``, ``predict``; the vLLM
functions for language models) and the registry (model versions and aliases); nothing here talks to Ray
Serve or vLLM by itself, except a plain ``GET /health`` of a vLLM server, as any client would.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

import requests

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound, WorkbenchError, readable
from workbench.registry import ModelVersionInfo, parse_model_uri
from workbench.registry.client import mlflow_client, mlflow_errors
from workbench.serving import (
    Autoscaling,
    DeploymentInfo,
    LLMDeployment,
    Resources,
    chat,
    delete_deployment,
    deploy,
    get_deployment,
    list_deployments,
    list_llm_deployments,
    predict,
    request_fields,
    roll_llm,
    rollback,
    rollback_llm,
    stop_llm,
    update_deployment,
)
from workbench.serving.vllm import check_vllm_environment
from workbench.training.capacity import ClusterCapacity, cluster_capacity

RAY_SERVE: Final = "ray-serve"
VLLM: Final = "vllm"
TARGETS = (RAY_SERVE, VLLM)
LLM_KIND_TAG = "workbench.kind"  # workbench.llm.log_llm tags a language model's version and run "llm"
_EPS = 1e-9



def default_name(model: str) -> str:
    """A deployment name from a model name: lower case, letters/digits/'-', at most 63 characters."""
    name = re.sub(r"[^a-z0-9-]+", "-", model.lower()).strip("-")[:63].strip("-")
    return name or "model"


# the form ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeployForm:
    """What the deployer's form holds. ``version`` is a version number, ``latest`` or an alias
    (``champion``, ``challenger``); ``name`` defaults to one made from the model's name."""

    model: str = ""
    version: str = "latest"
    name: str = ""
    target: str = ""  # ray-serve | vllm; empty: from the version's kind (vLLM for a language model)
    replicas: int = 1
    num_cpus: float = 0.5
    num_gpus: float = 0.0
    autoscale: bool = False
    max_replicas: int = 2
    max_model_len: int = 512  # vLLM only

    def replace(self, **changes: Any) -> DeployForm:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def deployment_name(self) -> str:
        return self.name.strip() or default_name(self.model)

    def model_uri(self) -> str:
        if not self.model:
            raise InvalidInput("model: choose a registered model")
        key = self.version.strip() or "latest"
        uri = f"models:/{self.model}/{key}" if key.isdigit() or key == "latest" else f"models:/{self.model}@{key}"
        parse_model_uri(uri)  # InvalidInput names the accepted forms
        return uri

    def resources(self) -> Resources:
        """The Ray Serve resources; InvalidInput (from Resources/Autoscaling) names the bad value."""
        autoscaling = Autoscaling(min_replicas=self.replicas, max_replicas=self.max_replicas) if self.autoscale \
            else None
        return Resources(replicas=self.replicas, num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                         autoscaling=autoscaling)


@dataclass(frozen=True)
class DeployCheck:
    """``refusals``: the request cannot be met (deploy is refused, saying what to change); ``notes``: it can,
    with something worth knowing (it will wait for resources, replicas do not apply to vLLM…)."""

    uri: str
    name: str
    target: str
    refusals: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    capacity: ClusterCapacity | None = None

    @property
    def ok(self) -> bool:
        return not self.refusals

    def message(self) -> str:
        head = list(self.refusals) or [f"can deploy {self.uri} as {self.name!r} on {self.target}"]
        return "; ".join([*head, *self.notes])


# the table --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeploymentRow:
    """One deployment as the table shows it (Ray Serve or vLLM)."""

    name: str
    target: str
    health: str  # healthy | updating | unhealthy | stopped
    status: str  # what the engine says (RUNNING, DEPLOYING, …; vLLM: running/stopped)
    model: str  # registered model name
    version: str  # the version served now
    previous: tuple[str, ...]  # versions served before, oldest first (what rollback goes back along)
    replicas: str  # "2 RUNNING" …
    url: str
    message: str = ""
    model_uri: str = ""

    @property
    def is_llm(self) -> bool:
        return self.target == VLLM

    def cells(self) -> list[str]:
        return [self.name, self.target, self.health, self.status, self.model, self.version,
                ", ".join(self.previous) or "–", self.replicas, self.url]


COLUMNS = ("deployment", "target", "health", "status", "model", "version", "before", "replicas", "url")


def _serve_row(info: DeploymentInfo) -> DeploymentRow:
    states = info.replicas
    # healthy: every replica up and serving the configured version (during a roll Serve says RUNNING while
    # the replicas still load the new version in place)
    if info.status == "RUNNING" and states and set(states) == {"RUNNING"} and \
            info.applied_version == info.model_version:
        health = "healthy"
    elif info.status in ("DEPLOY_FAILED", "UNHEALTHY"):
        health = "unhealthy"
    else:
        health = "updating"
    model = info.model_uri[len("models:/"):].rsplit("/", 1)[0] if info.model_uri.startswith("models:/") else ""
    replicas = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "0"
    return DeploymentRow(info.name, RAY_SERVE, health, info.status, model, info.model_version,
                         tuple(str(h.get("model_version", "")) for h in info.history), replicas, info.url,
                         info.message, info.model_uri)


def _vllm_healthy(deployment: LLMDeployment, timeout_s: float = 2.0) -> bool:
    try:
        return requests.get(f"{deployment.url}/health", timeout=timeout_s).status_code == 200
    except requests.RequestException:
        return False


def _llm_row(deployment: LLMDeployment) -> DeploymentRow:
    running = deployment.running
    healthy = running and _vllm_healthy(deployment)
    health = "healthy" if healthy else ("unhealthy" if running else "stopped")
    previous = tuple(u.rsplit("/", 1)[-1] for u in deployment.history)
    return DeploymentRow(deployment.name, VLLM, health, "running" if running else "stopped", deployment.model_name,
                         deployment.model_version, previous, "1 server" if running else "0", deployment.base_url,
                         "", deployment.model_uri)


# request fields ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestField:
    """One field of a scoring request, as ``request_fields`` reports it."""

    name: str
    kind: str
    required: bool = True
    nullable: bool = False
    optional_extra: bool = False  # request_id / timestamp: bookkeeping, may be left empty

    @property
    def hint(self) -> str:
        return {"integer": "whole number", "long": "whole number", "float": "number", "double": "number",
                "boolean": "true / false", "datetime": "ISO 8601 time", "key": "id (number or text)",
                "string": "text", "binary": "base64 text", "any": "JSON value"}.get(self.kind, self.kind)


_TRUE, _FALSE = ("true", "1", "yes", "y", "t"), ("false", "0", "no", "n", "f")


def parse_value(f: RequestField, text: str) -> Any:
    """The JSON value of one form entry, in the field's kind; InvalidInput names the field and what it takes."""
    raw = text.strip()
    kind = f.kind
    try:
        if kind in ("integer", "long"):
            return int(raw)
        if kind in ("float", "double"):
            number = float(raw)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError(raw)
            return number
        if kind == "boolean":
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise ValueError(raw)
        if kind == "key":
            return int(raw) if re.fullmatch(r"-?\d+", raw) else raw
        if kind == "any":
            try:
                return json.loads(raw)
            except ValueError:
                return raw
    except ValueError:
        raise InvalidInput(f"{f.name}: {text!r} is not a {f.hint}") from None
    return text  # string, binary, datetime: sent as typed; the deployment checks them and names the field


def build_instance(fields: Sequence[RequestField], values: Mapping[str, str]) -> dict[str, Any]:
    """One scoring instance from the form's text values; an empty optional field is left out (or null)."""
    instance: dict[str, Any] = {}
    missing = []
    for f in fields:
        text = str(values.get(f.name, "") or "")
        if not text.strip():
            if f.required and not f.optional_extra:
                missing.append(f.name)
            elif f.nullable and not f.optional_extra:
                instance[f.name] = None
            continue
        instance[f.name] = parse_value(f, text)
    if missing:
        raise InvalidInput(f"fill in {', '.join(missing)} (required by the model's signature)")
    return instance


# long operations --------------------------------------------------------------------------------------
class Operation:
    """One long action in a daemon thread, with a progress line and its outcome; never raises into the kernel.

    ``watch()`` (optional) is polled every ``poll_s`` while the action runs to say how far it got (e.g. the
    deployment's Serve status); ``on_change(operation)`` is called from the threads at each change.
    """

    def __init__(self, what: str, action: Callable[[], Any], *, watch: Callable[[], str] | None = None,
                 on_change: Callable[[Operation], Any] | None = None, poll_s: float = 1.0) -> None:
        self.what = what
        self.action = action
        self.watch = watch
        self.on_change = on_change
        self.poll_s = poll_s
        self.phase = "starting"
        self.result: Any = None
        self.error = ""
        self.done = threading.Event()  # the action ended
        self.finished = threading.Event()  # ... and on_change has seen it (what wait() waits for)
        self.started = 0.0
        self.ended = 0.0
        self._thread = threading.Thread(target=self._run, name=f"wb-deploy-{what[:40]}", daemon=True)

    @property
    def ok(self) -> bool:
        return self.done.is_set() and not self.error

    @property
    def elapsed_s(self) -> float:
        return (self.ended or time.monotonic()) - self.started if self.started else 0.0

    def text(self) -> str:
        if not self.done.is_set():
            return f"{self.what}: {self.phase} ({self.elapsed_s:.0f} s)"
        return f"{self.what}: {'done' if self.ok else 'failed'} in {self.elapsed_s:.1f} s"

    def start(self) -> Operation:
        self.started = time.monotonic()
        self._thread.start()
        if self.watch is not None:
            threading.Thread(target=self._watch, name="wb-deploy-watch", daemon=True).start()
        return self

    def wait(self, timeout_s: float) -> bool:
        """Wait until the action ended and ``on_change`` handled its end; whether it did in time."""
        return self.finished.wait(timeout_s)

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:  # noqa: BLE001, S110 - a display failure must not end the action
                pass

    def _run(self) -> None:
        try:
            self.result = self.action()
        except Exception as exc:  # noqa: BLE001 - shown in the widget, never raised into the kernel
            self.error = readable(exc)
        finally:
            self.ended = time.monotonic()
            self.done.set()
            self._changed()
            self.finished.set()

    def _watch(self) -> None:
        while not self.done.wait(self.poll_s):
            try:
                phase = self.watch() if self.watch is not None else ""
            except Exception:  # noqa: BLE001 - a status read may fail while Serve is busy; keep waiting
                continue
            if phase and phase != self.phase and not self.done.is_set():
                self.phase = phase
                self._changed()


# the model --------------------------------------------------------------------------------------------
@dataclass
class ChatTurn:
    role: str
    content: str


@dataclass
class ChatState:
    """A chat with one vLLM deployment: the turns so far; the answer being streamed lands in ``partial``."""

    deployment: str
    turns: list[ChatTurn] = field(default_factory=list)
    partial: str = ""
    streaming: bool = True
    note: str = ""


class DeployerModel:
    """Choose, check and deploy model versions; list deployments; try requests; roll, roll back, delete."""

    def __init__(self, settings: Settings, *, timeout_s: float = 600.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._fields: dict[tuple[str, str], list[RequestField]] = {}

    # the registry -----------------------------------------------------------------------------------
    def models(self) -> list[str]:
        """Every registered model's name, sorted."""
        client = mlflow_client(self.settings)
        with mlflow_errors("listing registered models"):
            return sorted(m.name for m in _all_pages(client.search_registered_models))

    def versions(self, model: str) -> list[ModelVersionInfo]:
        """The model's versions, newest first."""
        if not model:
            return []
        client = mlflow_client(self.settings)
        quoted = model.replace("'", "\\'")
        with mlflow_errors(f"listing versions of {model!r}"):
            found = [ModelVersionInfo.from_mlflow(v) for v in
                     _all_pages(lambda **kw: client.search_model_versions(f"name = '{quoted}'", **kw))]
            # a search leaves the versions' aliases out; the registered model has them all
            aliases = dict(client.get_registered_model(model).aliases or {}) if found else {}
        by_version: dict[str, list[str]] = {}
        for alias, number in aliases.items():
            by_version.setdefault(str(number), []).append(alias)
        found = [replace(v, aliases=tuple(sorted(set(v.aliases) | set(by_version.get(v.version, ())))))
                 for v in found]
        return sorted(found, key=lambda v: int(v.version), reverse=True)

    def version_choices(self, model: str) -> list[tuple[str, str]]:
        """(label, value) for the version picker: aliases first (``champion → 3``), then ``latest`` and
        each version number, newest first."""
        versions = self.versions(model)
        aliases = sorted(((a, v.version) for v in versions for a in v.aliases),
                         key=lambda p: (p[0] not in ("champion", "challenger"), p[0]))
        out = [(f"{a} → v{ver}", a) for a, ver in aliases]
        if versions:
            out.append((f"latest → v{versions[0].version}", "latest"))
        return out + [(f"v{v.version}" + (f" ({', '.join(v.aliases)})" if v.aliases else ""), v.version)
                      for v in versions]

    @staticmethod
    def pick(versions: Sequence[ModelVersionInfo], key: str) -> ModelVersionInfo | None:
        """The version ``key`` (number, ``latest`` or alias) names among ``versions`` (newest first)."""
        key = key.strip() or "latest"
        if key == "latest":
            return versions[0] if versions else None
        return next((v for v in versions if v.version == key or key in v.aliases), None)

    def resolve(self, model: str, version: str) -> ModelVersionInfo:
        from workbench.registry import get_model_version

        return get_model_version(self.settings, model, version or "latest")

    @staticmethod
    def is_llm(version: ModelVersionInfo) -> bool:
        return version.tags.get(LLM_KIND_TAG) == "llm"

    def vllm_missing(self) -> str:
        """Why vLLM cannot be used here ('' when its environment is installed)."""
        try:
            check_vllm_environment(self.settings)
        except WorkbenchError as exc:
            return str(exc)
        return ""

    # capacity and the check ----------------------------------------------------------------------
    def capacity(self) -> ClusterCapacity:
        return cluster_capacity(self.settings)

    def check(self, form: DeployForm, capacity: ClusterCapacity | None = None,
              version: ModelVersionInfo | None = None, existing: Collection[str] | None = None) -> DeployCheck:
        """Whether ``form`` can be deployed, and if not why: a bad value, a name in use, a target that does not
        fit the model, vLLM not installed, more GPUs or CPUs than the cluster has. Asks MLflow and Ray for
        what is not given (``capacity``, the resolved ``version``, the ``existing`` deployment names)."""
        uri = form.model_uri()
        name = form.deployment_name
        from workbench.serving.prediction_log import check_deployment_name

        check_deployment_name(name)
        if form.target and form.target not in TARGETS:
            raise InvalidInput(f"target must be one of {TARGETS}, got {form.target!r}")
        version = version or self.resolve(form.model, form.version)
        refusals: list[str] = []
        notes: list[str] = []
        llm = self.is_llm(version)
        form = form.replace(target=form.target or (VLLM if llm else RAY_SERVE))
        if form.target == VLLM and not llm:
            refusals.append(f"{form.model} v{version.version} is not a language model (vLLM serves models logged "
                            "with workbench.llm.log_llm): choose Ray Serve")
        if form.target == RAY_SERVE and llm:
            refusals.append(f"{form.model} v{version.version} is a language model: choose vLLM")
        if form.target == VLLM:
            missing = self.vllm_missing()
            if missing:
                refusals.append(f"vLLM is not installed here: {missing}")
            notes.append("vLLM runs one server per deployment on this host: replicas and CPUs do not apply")
        if name in (existing if existing is not None else {r.name for r in self.rows()}):
            refusals.append(f"a deployment named {name!r} exists: roll it (below) or choose another name")
        capacity = capacity if capacity is not None else self.capacity()
        if form.target == RAY_SERVE:
            resources = form.resources()  # InvalidInput for a bad count
            low = resources.autoscaling.min_replicas if resources.autoscaling else resources.replicas
            high = resources.autoscaling.max_replicas if resources.autoscaling else resources.replicas
            for what, each, total, free, fix in (
                    ("GPU", resources.num_gpus, capacity.gpus_total, capacity.gpus_free,
                     "set GPUs to 0 (the same code scores on CPU)" if capacity.gpus_total == 0
                     else "lower replicas or GPUs per replica"),
                    ("CPU", resources.num_cpus, capacity.cpus_total, capacity.cpus_free,
                     "lower replicas or CPUs per replica")):
                if each <= 0:
                    continue
                need = low * each
                if need > total + _EPS:
                    refusals.append(f"{low} replica{'s' if low != 1 else ''} × {each:g} {what} = {need:g} {what}s, "
                                    f"the cluster has {total:g}: {fix}")
                elif need > free + _EPS:
                    notes.append(f"{free:g} of {total:g} {what}s are free now: replicas wait until some are")
                elif high * each > total + _EPS:
                    notes.append(f"at most {int(total // each)} replicas fit the cluster's {total:g} {what}s")
        elif form.num_gpus > capacity.gpus_total + _EPS and capacity.gpus_total == 0:
            notes.append("no GPUs on this cluster: vLLM runs its CPU build")
        return DeployCheck(uri, name, form.target, tuple(refusals), tuple(notes), capacity)

    # deployments -------------------------------------------------------------------------------------
    def rows(self) -> list[DeploymentRow]:
        """Every deployment (Ray Serve, then vLLM), by name."""
        rows = [_serve_row(d) for d in list_deployments(self.settings)]
        rows += [_llm_row(d) for d in list_llm_deployments(self.settings)]
        return rows

    def row(self, name: str) -> DeploymentRow | None:
        return next((r for r in self.rows() if r.name == name), None)

    def serve_status(self, name: str) -> str:
        """What Serve says of ``name`` now (for progress lines)."""
        try:
            info = get_deployment(self.settings, name)
        except WorkbenchError:
            return "waiting for Serve"
        replicas = ", ".join(f"{n} {s}" for s, n in sorted(info.replicas.items()))
        return f"{info.status}" + (f" · replicas {replicas}" if replicas else "") + \
            (f" · serving v{info.applied_version}" if info.applied_version else "")

    # actions (blocking; the widget runs them as Operations) -------------------------------------------
    def deploy(self, form: DeployForm, capacity: ClusterCapacity | None = None) -> DeploymentRow:
        """Check, then deploy and wait until every replica serves the version; InvalidInput when refused."""
        checked = self.check(form, capacity)
        if not checked.ok:
            raise InvalidInput("not deployed: " + checked.message())
        if checked.target == VLLM:
            deploy(self.settings, checked.uri, checked.name, target="vllm", max_model_len=form.max_model_len,
                   dtype="auto" if form.num_gpus > 0 else "float32")
        else:
            deploy(self.settings, checked.uri, checked.name, resources=form.resources(), timeout_s=self.timeout_s,
                   progress=False)
        return self._row_or_raise(checked.name)

    def roll(self, name: str, version: str) -> DeploymentRow:
        """Serve another version (number or alias) of the deployment's model, in place."""
        row = self._row_or_raise(name)
        uri = DeployForm(model=row.model, version=version).model_uri()
        if row.is_llm:
            roll_llm(self.settings, name, uri)
        else:
            update_deployment(self.settings, name, uri, timeout_s=self.timeout_s, progress=False)
        return self._row_or_raise(name)

    def rollback(self, name: str) -> DeploymentRow:
        row = self._row_or_raise(name)
        if row.is_llm:
            rollback_llm(self.settings, name)
        else:
            rollback(self.settings, name, timeout_s=self.timeout_s, progress=False)
        return self._row_or_raise(name)

    def delete(self, name: str) -> str:
        row = self._row_or_raise(name)
        if row.is_llm:
            stop_llm(self.settings, name, forget=True)
        else:
            delete_deployment(self.settings, name)
        self._fields = {k: v for k, v in self._fields.items() if k[0] != name}
        return name

    def _row_or_raise(self, name: str) -> DeploymentRow:
        rows = self.rows()
        row = next((r for r in rows if r.name == name), None)
        if row is None:
            raise NotFound(f"no deployment {name!r}; deployments: {[r.name for r in rows] or 'none'}")
        return row

    # trying a request --------------------------------------------------------------------------------
    def fields(self, name: str) -> list[RequestField]:
        """The request fields of deployment ``name`` (its served version's signature), cached per version."""
        row = self._row_or_raise(name)
        key = (name, row.version)
        if key not in self._fields:
            described = request_fields(self.settings, name)
            out = [RequestField(str(f["name"]), str(f.get("type", "any")), bool(f.get("required", True)),
                                bool(f.get("nullable", False))) for f in described.get("fields") or []]
            out += [RequestField(str(e), "datetime" if e == "timestamp" else "string", False, False, True)
                    for e in described.get("optional") or []]
            self._fields = {k: v for k, v in self._fields.items() if k[0] != name}
            self._fields[key] = out
        return self._fields[key]

    def try_request(self, name: str, values: Mapping[str, str]) -> dict[str, Any]:
        """Send one instance built from the form's text values; the deployment's answer for it."""
        instance = build_instance(self.fields(name), values)
        body = predict(self.settings, name, [instance])
        predictions = body.get("predictions") or []
        answer = dict(predictions[0]) if predictions and isinstance(predictions[0], Mapping) else \
            {"prediction": predictions[0] if predictions else None}
        if body.get("model_version") is not None:
            answer.setdefault("model_version", body["model_version"])
        return answer

    def chat_stream(self, state: ChatState, text: str, *, max_tokens: int = 128,
                    on_text: Callable[[str], Any] | None = None) -> str:
        """Send ``text`` as the next user turn and stream the answer (``on_text(answer_so_far)`` per piece).

        Through :func:`workbench.serving.chat`, which streams and makes vLLM's errors readable ones.
        """
        if not text.strip():
            raise InvalidInput("type a message first")
        state.turns.append(ChatTurn("user", text))
        messages = [{"role": t.role, "content": t.content} for t in state.turns]
        state.partial = ""

        def piece(so_far: str) -> None:
            state.partial = so_far
            if on_text is not None:
                on_text(so_far)

        try:
            result = chat(self.settings, state.deployment, messages, max_tokens=max_tokens, temperature=0.0,
                          stream=state.streaming, on_text=piece)
        except BaseException:
            state.turns.pop()
            raise
        state.partial = result.text
        answer = state.partial
        state.turns.append(ChatTurn("assistant", answer))
        state.partial = ""
        if on_text is not None:
            on_text(answer)
        return answer


def _all_pages(search: Callable[..., Any], page: int = 200) -> Iterator[Any]:
    token = None
    while True:
        found = search(max_results=page, page_token=token)
        yield from found
        token = getattr(found, "token", None)
        if not token:
            return


__all__ = ["COLUMNS", "ChatState", "DeployCheck", "DeployForm", "DeployerModel", "DeploymentRow", "Operation",
           "RAY_SERVE", "RequestField", "TARGETS", "VLLM", "build_instance", "default_name",
           "parse_value", "readable"]
