"""Deployments on Ray Serve: deploy a registered model version, list, roll, roll back, delete.

The control plane is Ray Serve's declarative REST API on the dashboard (``PUT/GET
/api/serve/applications/``), the same one ``serve deploy`` and KubeRay's RayService use, so it works
unchanged against a remote cluster. Each workbench deployment is one Serve application named after it,
routed at ``/<name>``, built by :func:`workbench.serving.app.build_app`.

What is served lives in the deployment's ``user_config`` (model URI, version, the versions served before
it, batch settings). Changing it is one of Serve's in-place updates: every replica loads the new
version while the old one keeps answering, so a roll loses no request; :func:`rollback` moves back
along the recorded history the same way.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload
from urllib.parse import urlparse

import requests

from workbench.config import Settings
from workbench.errors import ConfigError, InvalidInput, NotFound, ServiceUnavailable, WorkbenchError
from workbench.runtime_env import serve_runtime_env
from workbench.services.processes import processes_listening_on
from workbench.serving.payload import DEPLOYMENT_CLASS, LEGACY_DEPLOYMENT_CLASSES
from workbench.serving.prediction_log import check_deployment_name, log_dir

if TYPE_CHECKING:
    from workbench.serving.vllm import LLMDeployment

APPS_PATH = "/api/serve/applications/"
IMPORT_PATH = "workbench.serving.app:build_app"
HISTORY_LIMIT = 10
_TERMINAL_FAILURES = ("DEPLOY_FAILED", "UNHEALTHY")


class DeploymentFailed(WorkbenchError):
    """Ray Serve could not bring a deployment up (a bad model, no resources, a crashing replica)."""


@dataclass(frozen=True)
class Autoscaling:
    """Replica bounds and the load (ongoing requests per replica) Serve scales toward."""

    min_replicas: int = 1
    max_replicas: int = 2
    target_ongoing_requests: float = 8.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise InvalidInput(f"autoscaling needs 0 <= min_replicas <= max_replicas and max_replicas >= 1, got "
                               f"{self.min_replicas}..{self.max_replicas}")
        if self.target_ongoing_requests <= 0:
            raise InvalidInput("autoscaling target_ongoing_requests must be > 0")

    def to_serve(self) -> dict[str, Any]:
        return {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests}


@dataclass(frozen=True)
class Resources:
    """Per-replica resources and batching; ``replicas`` is ignored when ``autoscaling`` is set."""

    replicas: int = 1
    num_cpus: float = 0.5
    num_gpus: float = 0.0
    autoscaling: Autoscaling | None = None
    max_batch_size: int = 32
    batch_wait_timeout_s: float = 0.005
    max_ongoing_requests: int = 64

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise InvalidInput(f"replicas must be >= 1, got {self.replicas}")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise InvalidInput("num_cpus and num_gpus must be >= 0")
        if not 1 <= self.max_batch_size <= 1024:
            raise InvalidInput(f"max_batch_size must be within 1..1024, got {self.max_batch_size}")
        if not 0 <= self.batch_wait_timeout_s <= 1:
            raise InvalidInput(f"batch_wait_timeout_s must be within 0..1 s, got {self.batch_wait_timeout_s}")
        if self.max_ongoing_requests < 1:
            raise InvalidInput("max_ongoing_requests must be >= 1")


@dataclass(frozen=True)
class DeploymentInfo:
    """What a deployment serves and how it is doing, as Ray Serve reports it."""

    name: str
    status: str
    url: str
    model_uri: str
    model_version: str
    history: list[dict[str, Any]]
    replicas: dict[str, int]
    route_prefix: str
    message: str = ""
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    applied_version: str = ""  # the version Serve has finished rolling every replica to
    last_deployed_s: float = 0.0

    @property
    def running(self) -> bool:
        return self.status == "RUNNING"

    @property
    def feature_service(self) -> str:
        """The Feast feature service the replicas look features up in; '' when every input is in the request."""
        return str((_deployment_config(self.config).get("user_config") or {}).get("feature_service") or "") \
            if self.config else ""

    @property
    def log_folder(self) -> Path | None:
        """Where the replicas append this deployment's prediction log: the deploying project's folder, which
        is not the reader's when a notebook of another project (or the JupyterLab root's dashboard) looks."""
        recorded = (self.config.get("args") or {}).get("settings") if self.config else None
        if not isinstance(recorded, dict):
            return None
        try:
            return log_dir(Settings.from_dict(recorded), self.name)
        except (WorkbenchError, TypeError, ValueError):
            return None

    def serves(self, version: str, after_s: float = 0.0) -> bool:
        """Every replica is up and serving ``version``, from a deploy stamped later than ``after_s``."""
        return (self.running and self.applied_version == version and self.last_deployed_s > after_s
                and set(self.replicas) == {"RUNNING"})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "url": self.url, "model_uri": self.model_uri,
                "model_version": self.model_version, "previous_versions": [h["model_version"] for h in self.history],
                "replicas": self.replicas, "message": self.message}


# The REST API -----------------------------------------------------------------------------------------
def _http(settings: Settings, method: str, body: dict[str, Any] | None = None, timeout_s: float | None = None
          ) -> requests.Response:
    url = settings.ray_address.rstrip("/") + APPS_PATH
    try:
        response = requests.request(method, url, json=body, timeout=timeout_s or max(30.0, settings.request_timeout_s))
    except requests.RequestException as exc:
        hint = "run `workbench up`" if settings.profile == "local" else "check ray_address in workbench.toml"
        raise ServiceUnavailable(f"Ray at {settings.ray_address} is not answering ({type(exc).__name__}): {hint}"
                                 ) from exc
    if response.status_code >= 400:
        raise DeploymentFailed(f"Ray Serve refused {method} {APPS_PATH} ({response.status_code}): "
                               f"{response.text[-2000:]}")
    return response


def serve_details(settings: Settings) -> dict[str, Any]:
    """Ray Serve's own account of every application (``GET /api/serve/applications/``)."""
    return dict(_http(settings, "GET").json())


def _app_configs(details: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: app["deployed_app_config"] for name, app in (details.get("applications") or {}).items()
            if app.get("deployed_app_config")}


def _stamp(details: dict[str, Any], name: str) -> float:
    """When Serve last (re)deployed application ``name`` (head-node clock; 0 when it does not exist)."""
    return float(((details.get("applications") or {}).get(name) or {}).get("last_deployed_time_s") or 0.0)


def serve_config(settings: Settings, apps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The Serve config PUT to the head. Only the local head gets its proxy's place and address from us; a
    cluster's are the operator's (RayService, the head's Service), and loopback would mean nothing there."""
    body: dict[str, Any] = {"applications": list(apps.values())}
    if settings.profile == "local":
        body = {"proxy_location": "HeadOnly", "http_options": {"host": settings.host, "port": settings.serve_port},
                **body}
    return body


def _put(settings: Settings, apps: dict[str, dict[str, Any]]) -> None:
    """PUT the whole set of applications (Serve's API is declarative: what is left out is deleted)."""
    _http(settings, "PUT", serve_config(settings, apps))


CHANGE_RETRIES = 5
T = TypeVar("T")


@contextmanager
def _serve_lock(settings: Settings) -> Iterator[None]:
    """One writer at a time of the Serve application set of this Ray head, across processes on this machine.

    Serve's REST API is declarative (a PUT replaces every application), so two notebooks deploying at once
    would each PUT the set they read and delete the other's new app. The lock is keyed by the head's address,
    not the project, because several projects or notebooks may point at one head.
    """
    digest = hashlib.sha1(settings.ray_address.rstrip("/").encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"workbench-serve-{digest}.lock"
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _change_apps(settings: Settings, name: str,
                 change: Callable[[dict[str, Any], dict[str, dict[str, Any]]], T]) -> tuple[T, dict[str, Any]]:
    """Read-modify-write of the application set: under the lock, read it fresh, let ``change`` alter
    application ``name`` (and nothing else) in place, re-read and compare just before the PUT (on a cluster
    another client may not share the lock), and retry when something else changed meanwhile.
    Returns what ``change`` returned and the details read before the change."""
    for _ in range(CHANGE_RETRIES):
        with _serve_lock(settings):
            details = serve_details(settings)
            before = _app_configs(details)
            apps = copy.deepcopy(before)
            result = change(details, apps)
            others = {k: v for k, v in apps.items() if k != name}
            if others != {k: v for k, v in before.items() if k != name}:
                raise DeploymentFailed(f"changing {name!r} must not alter other applications (a bug)")
            if _app_configs(serve_details(settings)) != before:
                continue  # someone else changed the set between our read and now: read it again
            _put(settings, apps)
            return result, details
    raise DeploymentFailed(f"the Serve application set kept changing while {name!r} was being changed "
                           f"({CHANGE_RETRIES} tries); try again")


def _deployment_config(app: dict[str, Any]) -> dict[str, Any]:
    for deployment in app.get("deployments") or []:
        if deployment.get("name") in (DEPLOYMENT_CLASS, *LEGACY_DEPLOYMENT_CLASSES):
            return dict(deployment)
    raise NotFound(f"application {app.get('name')!r} is not a workbench deployment")


_SETTLED_TRIGGERS = {"CONFIG_UPDATE_COMPLETED", "UPSCALE_COMPLETED", "DOWNSCALE_COMPLETED"}


def _info(settings: Settings, name: str, app: dict[str, Any]) -> DeploymentInfo:
    config = app.get("deployed_app_config") or {}
    user = (_deployment_config(config).get("user_config") or {}) if config else {}
    states: dict[str, int] = {}
    # Serve's application message says *that* a deployment failed ("Failed to update the deployments
    # ['ModelServer']"); the deployment's own message says why (the replica's exception): keep both.
    messages = [str(app.get("message") or "")]
    applied = ""
    for deployment in (app.get("deployments") or {}).values():
        for replica in deployment.get("replicas") or []:
            states[replica.get("state", "?")] = states.get(replica.get("state", "?"), 0) + 1
        messages.append(str(deployment.get("message") or ""))
        # HEALTHY after a config update, or after a scale (a resources-only roll ends in DOWNSCALE_COMPLETED /
        # UPSCALE_COMPLETED, and such a roll used to wait for a CONFIG_UPDATE_COMPLETED that never came)
        if deployment.get("status") == "HEALTHY" and deployment.get("status_trigger") in _SETTLED_TRIGGERS:
            applied = str(((deployment.get("deployment_config") or {}).get("user_config") or {})
                          .get("model_version", ""))
    prefix = app.get("route_prefix") or f"/{name}"
    return DeploymentInfo(name=name, status=str(app.get("status", "UNKNOWN")),
                          url=settings.serve_url + prefix, model_uri=str(user.get("model_uri", "")),
                          model_version=str(user.get("model_version", "")), history=list(user.get("history") or []),
                          replicas=states, route_prefix=prefix,
                          message=" | ".join(dict.fromkeys(m for m in messages if m)), config=config,
                          applied_version=applied, last_deployed_s=float(app.get("last_deployed_time_s") or 0.0))


def list_deployments(settings: Settings) -> list[DeploymentInfo]:
    """Every workbench deployment on the cluster, with status and what it serves."""
    details = serve_details(settings)
    out = []
    for name, app in (details.get("applications") or {}).items():
        config = app.get("deployed_app_config") or {}
        if config.get("import_path") == IMPORT_PATH:
            out.append(_info(settings, name, app))
    return sorted(out, key=lambda d: d.name)


def get_deployment(settings: Settings, name: str) -> DeploymentInfo:
    """One deployment; NotFound names the ones that exist."""
    check_deployment_name(name)
    for info in list_deployments(settings):
        if info.name == name:
            return info
    names = [d.name for d in list_deployments(settings)]
    raise NotFound(f"no deployment {name!r} on Ray at {settings.ray_address}; deployments: {names or 'none'}")


# Checks before anything is deployed ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    uri: str  # the pinned URI replicas load (models:/<name>/<version>)
    version: str
    requested: str
    feature_service: str | None  # None: every input comes from the request, Feast is never asked
    contract: dict[str, Any] = field(default_factory=dict)  # what the answers hold (serving.contract)


NO_FEATURE_SERVICE = ("", "unknown", "none")
"""Tag values that mean "trained without a feature store" (a lineage card writes "unknown" where it has none)."""


def _service_tag(tags: dict[str, str]) -> str | None:
    from workbench.serving.lookup import TAG_FEATURE_SERVICE

    value = str(tags.get(TAG_FEATURE_SERVICE) or "").strip()
    return None if value.lower() in NO_FEATURE_SERVICE else value


def _resolve(settings: Settings, model_uri: str, feature_service: str | None,
             default_service: str | None = None) -> _Target:
    """Pin ``model_uri`` to a registered version and check it can be served.

    The model needs a column-based signature (InvalidInput says how to log one). Its feature service is
    ``feature_service``, else the version's or its run's ``workbench.feature_service`` tag, else
    ``default_service`` (a roll keeps the deployment's), else none;
    only with one is Feast asked, and then every signature column must come from the request-time fields
    it declares, its features or the event time.
    """
    from workbench.features import FEATURE_SERVICE, FRAUD_SERVICE
    from workbench.registry import resolve_model_uri
    from workbench.serving.contract import contract_from_metadata
    from workbench.serving.lookup import open_lookup, request_schema
    from workbench.serving.signature import read_signature

    if not isinstance(model_uri, str) or not model_uri.startswith("models:/"):
        raise InvalidInput(f"deploy a registered model: model_uri must look like 'models:/<name>@champion' or "
                           f"'models:/<name>/<version>', got {model_uri!r}")
    if feature_service is not None and (not isinstance(feature_service, str) or not feature_service):
        raise InvalidInput(f"feature_service must be a feature service name or None, got {feature_service!r}")
    resolved = resolve_model_uri(settings, model_uri)
    if resolved.version is None:
        raise InvalidInput(f"{model_uri} is not a registered model version; register it first "
                           "(workbench.registry.register_best)")
    version = resolved.version
    run_tags = _run_tags(settings, version.run_id)
    service = feature_service or _service_tag(version.tags) or _service_tag(run_tags) or default_service or None
    info = _model_info(settings, resolved.load_uri)
    signature = read_signature(info.signature, resolved.load_uri)
    if service == FEATURE_SERVICE and settings.state_in_bucket:
        raise ConfigError(
            f"{model_uri} takes features from {service!r}, the fraud demo's global feature repository, which lives "
            f"on the notebook's disk ({settings.feast_dir}); replicas on a cluster sharing no disk with it cannot "
            "open it. Declare the features as a feature project (workbench.features.apply_features publishes it "
            "to the bucket), or serve this model from the local profile")
    if service:
        request_schema(signature, open_lookup(settings, service, signature), resolved.load_uri)
    from workbench.data.task import TAG_TASK

    contract = contract_from_metadata(info.metadata, run_task=version.tags.get(TAG_TASK) or run_tags.get(TAG_TASK),
                                      fallback_task="binary" if service in (FEATURE_SERVICE, FRAUD_SERVICE) else None)
    return _Target(resolved.load_uri, version.version, model_uri, service, contract.to_dict())


def _run_tags(settings: Settings, run_id: str) -> dict[str, str]:
    from workbench.registry.client import mlflow_client

    if not run_id:
        return {}
    try:
        return dict(mlflow_client(settings).get_run(run_id).data.tags)
    except Exception:  # noqa: BLE001 - a run we cannot read (deleted, no permission) tags nothing
        return {}


def _model_info(settings: Settings, load_uri: str) -> Any:
    import mlflow
    from mlflow.models import get_model_info

    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    try:
        return get_model_info(load_uri)
    except Exception as exc:  # noqa: BLE001 - MLflow raises several kinds for a missing model
        raise NotFound(f"cannot read the model at {load_uri}: {exc}") from exc


def _check_gpus(settings: Settings, resources: Resources) -> None:
    if resources.num_gpus <= 0:
        return
    from workbench.training import cluster_gpus

    available = cluster_gpus(settings)
    if available < resources.num_gpus:
        raise InvalidInput(f"each replica asks for {resources.num_gpus} GPU but Ray at {settings.ray_address} has "
                           f"{available:g}; deploy with num_gpus=0 (the same code scores on CPU)")


# Deploy, roll, roll back, delete ----------------------------------------------------------------------
def _user_config(target: _Target, resources: Resources, history: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model_uri": target.uri, "model_version": target.version, "requested_uri": target.requested,
            "contract": target.contract, "feature_service": target.feature_service,
            "history": history[-HISTORY_LIMIT:], "max_batch_size": resources.max_batch_size,
            "batch_wait_timeout_s": resources.batch_wait_timeout_s}


def _replica_settings(settings: Settings) -> dict[str, Any]:
    """The settings replicas are built from, secrets left out. On a cluster the notebook's folders mean nothing
    to a replica (another machine): they are left out too, and the replica's own working dir takes their
    place."""
    recorded = settings.to_dict(secrets=False)
    if settings.profile != "local":
        for name in ("project_dir", "state_dir"):
            recorded.pop(name, None)
    return recorded


def app_config(settings: Settings, name: str, target: _Target, resources: Resources,
               history: list[dict[str, Any]] | None = None, code: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Serve application config for one deployment (what ``serve deploy`` would take). ``code``: the
    ``runtime_env`` keys shipping the workbench (:func:`workbench.runtime_env.serve_runtime_env`, which deploy
    passes on a cluster; a RayService export leaves them to the image)."""
    deployment: dict[str, Any] = {
        "name": DEPLOYMENT_CLASS,
        "max_ongoing_requests": resources.max_ongoing_requests,
        "ray_actor_options": {"num_cpus": resources.num_cpus, "num_gpus": resources.num_gpus},
        "user_config": _user_config(target, resources, history or []),
    }
    if resources.autoscaling:
        deployment["autoscaling_config"] = resources.autoscaling.to_serve()
    else:
        deployment["num_replicas"] = resources.replicas
    return {
        "name": name,
        "route_prefix": f"/{name}",
        "import_path": IMPORT_PATH,
        # no secret in the config: Serve's REST API (GET /api/serve/applications/) returns args and
        # runtime_env to anyone who can reach the dashboard, and rollback PUTs back what it GETs. Replicas
        # read the secret fields from the environment they inherit from their Ray node (Settings.from_dict):
        # `workbench up` starts the head with Settings.secret_env(), a cluster gives its pods a Secret.
        # `secret_variables` names (never holds) what replicas need from that environment, so a RayService
        # export can ask for a Kubernetes Secret for each (workbench.export.rayservice)
        "args": {"settings": _replica_settings(settings), "deployment": name,
                 "feature_service": target.feature_service, "secret_variables": sorted(settings.secret_env())},
        # on a cluster the replicas run the notebook's workbench, shipped (py_modules), and reach the bucket
        # by its address; its keys, like every secret, come from the nodes' environment
        "runtime_env": {**(code or {}),
                        "env_vars": {**settings.engine_env(), **settings.job_storage_env()}},
        "deployments": [deployment],
    }


def wait_until(settings: Settings, name: str, ready: Callable[[DeploymentInfo], bool], timeout_s: float,
               progress: bool = False, what: str = "RUNNING") -> DeploymentInfo:
    """Poll Serve until ``ready(info)``; DeploymentFailed with Serve's message when it gives up."""
    deadline = time.monotonic() + timeout_s
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=None, desc=f"deployment {name}", bar_format="{desc}: {postfix} [{elapsed}]")
    info: DeploymentInfo | None = None
    try:
        while True:
            details = serve_details(settings).get("applications") or {}
            app = details.get(name)
            info = _info(settings, name, app) if app else None
            if bar is not None:
                bar.set_postfix_str(info.status if info else "waiting for Serve")
            if info is not None and ready(info):
                return info
            if info is not None and info.status in _TERMINAL_FAILURES:
                raise DeploymentFailed(f"deployment {name!r} is {info.status}: {info.message or 'see the Serve logs'} "
                                       f"(logs under {settings.ray_dir}/session_latest/logs/serve)")
            if time.monotonic() > deadline:
                state = f"{info.status}: {info.message}" if info else "not created"
                raise DeploymentFailed(f"deployment {name!r} did not become {what} within {timeout_s:.0f} s ({state})")
            time.sleep(0.5)
    finally:
        if bar is not None:
            bar.close()


@overload
def deploy(settings: Settings, model_uri: str, name: str = ..., *, target: Literal["ray-serve"] = ...,
           resources: Resources | None = ..., feature_service: str | None = ..., timeout_s: float = ...,
           progress: bool = ..., **llm_options: Any) -> DeploymentInfo: ...


@overload
def deploy(settings: Settings, model_uri: str, name: str = ..., *, target: Literal["vllm"],
           resources: Resources | None = ..., feature_service: str | None = ..., timeout_s: float = ...,
           progress: bool = ..., **llm_options: Any) -> LLMDeployment: ...


def deploy(settings: Settings, model_uri: str, name: str = "fraud", *, target: str = "ray-serve",
           resources: Resources | None = None, feature_service: str | None = None, timeout_s: float = 600.0,
           progress: bool = True, **llm_options: Any) -> DeploymentInfo | LLMDeployment:
    """Serve a registered model version (``models:/<name>@champion`` or ``models:/<name>/<version>``).

    ``target="ray-serve"`` (tabular models): the alias is resolved now and the version pinned, so every
    replica serves the same version until you :func:`update_deployment`. Raises InvalidInput for a name
    in use, NotFound for a model or alias that does not exist, InvalidInput when the model's inputs are
    not what the feature service gives, InvalidInput for a model without a signature (the message says how
    to log one). Every signature column is a request field unless the model has a feature service
    (``feature_service``, or the ``workbench.feature_service`` tag of its version or run): then the service's
    entity keys and request-time fields are, and Feast fills the rest. ``timeout_s`` bounds the wait for
    every replica to serve the version. ``target="vllm"`` (language models) hands over to
    :func:`workbench.serving.vllm.deploy_llm` with ``llm_options`` (max_model_len, dtype, …).
    """
    if target == "vllm":
        from workbench.serving.vllm import deploy_llm

        return deploy_llm(settings, model_uri, name, **llm_options)
    if target != "ray-serve":
        raise InvalidInput(f"target must be 'ray-serve' or 'vllm', got {target!r}")
    if llm_options:
        raise InvalidInput(f"options {sorted(llm_options)} apply to target='vllm' only")
    check_deployment_name(name)
    resources = resources or Resources()
    if name in _app_configs(serve_details(settings)):
        raise InvalidInput(f"a deployment named {name!r} already exists; roll it with update_deployment(settings, "
                           f"{name!r}, model_uri=...) or delete_deployment it first")
    pinned = _resolve(settings, model_uri, feature_service)
    _check_gpus(settings, resources)
    log_dir(settings, name).mkdir(parents=True, exist_ok=True)
    config = app_config(settings, name, pinned, resources, code=serve_runtime_env(settings))

    def add(details: dict[str, Any], apps: dict[str, dict[str, Any]]) -> None:
        if name in apps:
            raise InvalidInput(f"a deployment named {name!r} was created meanwhile; roll it with "
                               "update_deployment or choose another name")
        apps[name] = config

    _, details = _change_apps(settings, name, add)
    put_at = _stamp(details, name)
    deadline = time.monotonic() + timeout_s
    info = wait_until(settings, name, lambda i: i.serves(pinned.version, put_at), timeout_s, progress)
    _wait_routed(info, deadline)
    return info


def _wait_routed(info: DeploymentInfo, deadline: float) -> None:
    """Wait until the ingress routes ``/<name>`` on every process that accepts its connections.

    Serve reports RUNNING before its HAProxy ingress has reloaded the new route (CI saw a 404 on the first
    request). A reload starts a new HAProxy with ``-sf <old pid>``, and for a moment both processes accept
    on the port: the first 200 may come from the new one while the next request lands on the old one,
    which has no route yet (CI saw exactly that: ``/ping`` answered, ``/predict`` right after was 404). So on
    a local ingress ``deploy`` also waits until one process alone listens on the port, then asks again.
    """
    url = f"{info.url.rstrip('/')}/ping"
    parsed = urlparse(url)
    local = parsed.hostname in ("127.0.0.1", "localhost", "::1") and parsed.port is not None
    status: int | str = "not asked"
    while True:
        status = _ping(url)
        if status == 200:
            listeners = processes_listening_on(parsed.port) if local and parsed.port else set()
            if len(listeners) <= 1:
                if not local or _ping(url) == 200:
                    return
            else:
                status = f"200, but {len(listeners)} ingress processes still listen on port {parsed.port}"
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    raise DeploymentFailed(f"deployment {info.name!r} is RUNNING but its route {url} does not answer ({status})")


def _ping(url: str) -> int | str:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException as exc:
        return type(exc).__name__


def update_deployment(settings: Settings, name: str, model_uri: str | None = None, *,
                      resources: Resources | None = None, timeout_s: float = 600.0, progress: bool = True
                      ) -> DeploymentInfo:
    """Roll ``name`` to another model version and/or other resources, without dropping a request.

    A new model version is loaded by the running replicas in place (each keeps answering with the old
    version until the new one is loaded); the version served before is kept for :func:`rollback`.
    """
    current = get_deployment(settings, name)

    def roll(details: dict[str, Any], apps: dict[str, dict[str, Any]]) -> _Target:
        if name not in apps:
            raise NotFound(f"deployment {name!r} was deleted meanwhile")
        app = apps[name]
        deployment = _deployment_config(app)
        user = dict(deployment.get("user_config") or {})
        history = list(user.get("history") or [])
        if model_uri is not None:
            target = _resolve(settings, model_uri, None,
                              user.get("feature_service", app["args"].get("feature_service")) or None)
            if target.version != current.model_version:
                history.append({"model_uri": current.model_uri, "model_version": current.model_version,
                                "requested_uri": str(user.get("requested_uri", current.model_uri)),
                                "contract": user.get("contract") or {},
                                "feature_service": user.get("feature_service", app["args"].get("feature_service"))})
        else:
            target = _Target(current.model_uri, current.model_version, str(user.get("requested_uri", "")),
                             user.get("feature_service", app["args"].get("feature_service")) or None,
                             dict(user.get("contract") or {}))
        chosen = resources
        if chosen is None:
            chosen = Resources(
                replicas=int(deployment.get("num_replicas") or 1),
                num_cpus=float((deployment.get("ray_actor_options") or {}).get("num_cpus", 0.5)),
                num_gpus=float((deployment.get("ray_actor_options") or {}).get("num_gpus", 0.0)),
                autoscaling=Autoscaling(**{k: v for k, v in (deployment.get("autoscaling_config") or {}).items()
                                           if k in ("min_replicas", "max_replicas", "target_ongoing_requests")})
                if deployment.get("autoscaling_config") else None,
                max_batch_size=int(user.get("max_batch_size", 32)),
                batch_wait_timeout_s=float(user.get("batch_wait_timeout_s", 0.005)),
                max_ongoing_requests=int(deployment.get("max_ongoing_requests") or 64))
        _check_gpus(settings, chosen)
        updated = app_config(settings, name, target, chosen, history, code=serve_runtime_env(settings))
        updated["args"] = app["args"]  # same code and settings: Serve updates the replicas in place
        apps[name] = updated
        return target

    target, details = _change_apps(settings, name, roll)
    put_at = _stamp(details, name)
    deadline = time.monotonic() + timeout_s
    info = wait_until(settings, name, lambda i: i.serves(target.version, put_at), timeout_s, progress)
    _wait_routed(info, deadline)  # as deploy: RUNNING can come before the ingress routes /<name> again
    return info


def rollback(settings: Settings, name: str, *, timeout_s: float = 600.0, progress: bool = True) -> DeploymentInfo:
    """Serve the version that was served before the last roll (in place, like a roll)."""
    if name not in _app_configs(serve_details(settings)):
        get_deployment(settings, name)  # raises NotFound with the names that exist

    def back(details: dict[str, Any], apps: dict[str, dict[str, Any]]) -> dict[str, Any]:
        if name not in apps:
            raise NotFound(f"deployment {name!r} was deleted meanwhile")
        app = apps[name]
        deployment = _deployment_config(app)
        user = dict(deployment.get("user_config") or {})
        history = list(user.get("history") or [])
        if not history:
            raise InvalidInput(f"deployment {name!r} has served only version {user.get('model_version')}: nothing to "
                               "roll back to")
        previous = history.pop()
        user.update(model_uri=previous["model_uri"], model_version=previous["model_version"],
                    requested_uri=previous.get("requested_uri", previous["model_uri"]), history=history,
                    contract=previous.get("contract") or {},
                    feature_service=previous.get("feature_service", user.get("feature_service")))
        deployment["user_config"] = user
        app["deployments"] = [deployment if d.get("name") == deployment["name"] else d for d in app["deployments"]]
        return previous

    previous, details = _change_apps(settings, name, back)
    put_at = _stamp(details, name)
    deadline = time.monotonic() + timeout_s
    info = wait_until(settings, name, lambda i: i.serves(previous["model_version"], put_at), timeout_s, progress)
    _wait_routed(info, deadline)
    return info


def delete_deployment(settings: Settings, name: str, *, timeout_s: float = 120.0) -> None:
    """Stop serving ``name`` (its prediction log stays for monitoring)."""
    if name not in _app_configs(serve_details(settings)):
        get_deployment(settings, name)

    def remove(details: dict[str, Any], apps: dict[str, dict[str, Any]]) -> None:
        apps.pop(name, None)

    _change_apps(settings, name, remove)
    deadline = time.monotonic() + timeout_s
    while name in (serve_details(settings).get("applications") or {}):
        if time.monotonic() > deadline:
            raise DeploymentFailed(f"deployment {name!r} was still shutting down after {timeout_s:.0f} s")
        time.sleep(0.5)


def describe(info: DeploymentInfo) -> str:
    """One line per deployment, for the CLI and notebooks."""
    return json.dumps(info.to_dict())


def kserve_manifest(settings: Settings, model_uri: str, name: str = "fraud", *, resources: Resources | None = None,
                    namespace: str = "default", storage_uri: str | None = None, memory: str = "1Gi"
                    ) -> dict[str, Any]:
    """The deployment :func:`deploy` would make, as a validated KServe ``InferenceService`` manifest.

    ``storage_uri`` defaults to the model version's artifact location in MLflow (an ``s3://`` or
    ``gs://`` bucket on a cluster; a local ``file://`` path here, which you would replace).
    """
    from workbench.registry.client import mlflow_client
    from workbench.serving.kserve import inference_service

    check_deployment_name(name)
    resources = resources or Resources()
    target = _resolve(settings, model_uri, None)
    if storage_uri is None:
        from workbench.registry import resolve_model_uri

        resolved = resolve_model_uri(settings, target.uri)
        client = mlflow_client(settings)
        location = ""
        if resolved.model_id:
            location = client.get_logged_model(resolved.model_id).artifact_location
        if not location:
            location = client.get_model_version_download_uri(*target.uri[len("models:/"):].rsplit("/", 1))
        storage_uri = location if "://" in location else f"file://{location}"
    auto = resources.autoscaling
    return inference_service(
        name, storage_uri, namespace=namespace,
        replicas=auto.min_replicas if auto else resources.replicas,
        max_replicas=auto.max_replicas if auto else resources.replicas,
        num_cpus=resources.num_cpus, num_gpus=int(resources.num_gpus + 0.999), memory=memory,
        model_version=target.version, feature_service=target.feature_service or "")
