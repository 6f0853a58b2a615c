"""Registered model versions: look up by alias or number, set aliases, register a run's model, read URIs.

A model reaches the registry from a run; in MLflow 3 the run's model is a LoggedModel (``models:/m-…``).
:func:`run_model_uri` finds it the way the training module records it (the ``workbench.model_uri`` tag)
and falls back to what MLflow itself knows (the run's model outputs, a logged model whose source run is
this one, a ``model/`` artifact folder), so runs logged by hand work too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound
from workbench.registry.client import mlflow_client, mlflow_errors, translate

DEFAULT_MODEL_NAME = "fraud-detector"
CHAMPION = "champion"
CHALLENGER = "challenger"
TAG_MODEL_URI = "workbench.model_uri"
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,254}$")
_MODEL_NAME = re.compile(r"^[^/@:]{1,256}$")
_VERSION = re.compile(r"^[1-9][0-9]*$")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_LOGGED_MODEL_ID = re.compile(r"^m-[0-9a-f]{32}$")
_URI_FORMS = ("models:/<name>@<alias>, models:/<name>/<version>, models:/<name>/latest, "
              "models:/m-<logged model id>, runs:/<run id>/<path>")


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered model version, with what points at it and where it came from."""

    name: str
    version: str
    aliases: tuple[str, ...]
    run_id: str
    source: str
    model_id: str
    status: str
    created_at: datetime | None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """The registry URI of exactly this version (stable, unlike an alias)."""
        return f"models:/{self.name}/{self.version}"

    @classmethod
    def from_mlflow(cls, mv: ModelVersion) -> ModelVersionInfo:
        created = (datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC)
                   if mv.creation_timestamp else None)
        return cls(name=mv.name, version=str(mv.version), aliases=tuple(mv.aliases or ()), run_id=mv.run_id or "",
                   source=mv.source or "", model_id=getattr(mv, "model_id", None) or "", status=str(mv.status),
                   created_at=created, description=mv.description or "", tags=dict(mv.tags or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "aliases": list(self.aliases), "run_id": self.run_id,
                "source": self.source, "model_id": self.model_id, "status": self.status, "uri": self.uri,
                "created_at": self.created_at.isoformat() if self.created_at else None,
                "description": self.description, "tags": dict(self.tags)}

    def _repr_html_(self) -> str:
        from workbench.monitoring import reprs

        return reprs.card(f"{self.name} version {self.version}", {
            "aliases": ", ".join(self.aliases) or "none", "status": self.status, "run": self.run_id or "–",
            "model": self.model_id or self.source, "registered": self.created_at, "uri": self.uri},
            note=self.description[:300])


@dataclass(frozen=True)
class ModelRef:
    """A parsed model URI: exactly one of (name + version | name + alias), model_id or run_id + path is set."""

    uri: str
    kind: str  # "version" | "alias" | "latest" | "logged_model" | "run"
    name: str = ""
    version: str = ""
    alias: str = ""
    model_id: str = ""
    run_id: str = ""
    path: str = ""


@dataclass(frozen=True)
class ResolvedModel:
    """What a model URI points at now: a loadable URI plus the run it came from (for lineage)."""

    uri: str
    load_uri: str
    run_id: str
    model_id: str = ""
    version: ModelVersionInfo | None = None


def parse_model_uri(uri: str) -> ModelRef:
    """Check the shape of a model URI without asking the server; InvalidInput lists the accepted forms."""
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidInput(f"a model URI is needed, one of {_URI_FORMS}; got {uri!r}")
    text = uri.strip()
    if text.startswith("runs:/"):
        run_id, _, path = text[len("runs:/"):].partition("/")
        if not _RUN_ID.match(run_id) or not path.strip("/"):
            raise InvalidInput(f"{uri!r} is not a run model URI: expected runs:/<32-hex run id>/<artifact path>")
        return ModelRef(text, "run", run_id=run_id, path=path.strip("/"))
    if not text.startswith("models:/"):
        raise InvalidInput(f"{uri!r} is not a model URI; use one of {_URI_FORMS}")
    rest = text[len("models:/"):]
    if _LOGGED_MODEL_ID.match(rest):
        return ModelRef(text, "logged_model", model_id=rest)
    if "@" in rest:
        name, _, alias = rest.partition("@")
        if not name or not _MODEL_NAME.match(name) or not _ALIAS.match(alias):
            raise InvalidInput(f"{uri!r} is not a valid alias URI: expected models:/<name>@<alias> (alias: "
                               "letters, digits, _ and -)")
        return ModelRef(text, "alias", name=name, alias=alias)
    name, sep, version = rest.rpartition("/")
    if not sep or not name or not _MODEL_NAME.match(name):
        raise InvalidInput(f"{uri!r} names no version or alias; use one of {_URI_FORMS}")
    if version == "latest":
        return ModelRef(text, "latest", name=name)
    if not _VERSION.match(version):
        raise InvalidInput(f"{uri!r}: the version must be a positive integer or 'latest', got {version!r}")
    return ModelRef(text, "version", name=name, version=version)


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or alias.lower() == "latest" \
            or re.match(r"^v\d+$", alias, flags=re.IGNORECASE):
        raise InvalidInput(f"alias must be letters, digits, _ and - (not 'latest' nor 'v<number>'), got {alias!r}")
    return alias


def _registered_model_or_not_found(client: MlflowClient, settings: Settings, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if str(exc.error_code) == "RESOURCE_DOES_NOT_EXIST":
            raise NotFound(f"no registered model {name!r} at {settings.mlflow_uri}; register one first "
                           "(register_best)") from exc
        raise translate(exc, f"reading registered model {name!r}") from exc


def _get_version(client: MlflowClient, settings: Settings, name: str, alias_or_version: str | int) -> ModelVersion:
    key = str(alias_or_version).strip()
    if not key:
        raise InvalidInput("give a version number, 'latest' or an alias such as 'champion'")
    _registered_model_or_not_found(client, settings, name)
    if _VERSION.match(key):
        try:
            return client.get_model_version(name, key)
        except MlflowException as exc:
            if str(exc.error_code) == "RESOURCE_DOES_NOT_EXIST":
                raise NotFound(f"registered model {name!r} has no version {key}") from exc
            raise translate(exc, f"reading version {key} of {name!r}") from exc
    if key == "latest":
        with mlflow_errors(f"listing versions of {name!r}"):
            versions = client.search_model_versions(f"name = '{_quote(name)}'")
        if not versions:
            raise NotFound(f"registered model {name!r} has no versions yet")
        return max(versions, key=lambda v: int(v.version))
    check_alias(key)
    try:
        return client.get_model_version_by_alias(name, key)
    except MlflowException as exc:
        if str(exc.error_code) in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"):
            with mlflow_errors(f"reading registered model {name!r}"):
                known = sorted(client.get_registered_model(name).aliases or {})
            raise NotFound(f"registered model {name!r} has no alias {key!r}"
                           + (f"; its aliases are {known}" if known else "; it has no aliases yet")) from exc
        raise translate(exc, f"reading alias {key!r} of {name!r}") from exc


def get_model_version(settings: Settings, model_name: str, alias_or_version: str | int) -> ModelVersionInfo:
    """Version ``alias_or_version`` (a number, ``"latest"`` or an alias) of ``model_name``; NotFound if absent."""
    client = mlflow_client(settings)
    return ModelVersionInfo.from_mlflow(_get_version(client, settings, model_name, alias_or_version))


def set_alias(settings: Settings, model_name: str, alias: str, version: str | int) -> ModelVersionInfo:
    """Point ``alias`` at ``version`` (moving it off any other version); return the version as it is now."""
    check_alias(alias)
    client = mlflow_client(settings)
    mv = _get_version(client, settings, model_name, version)
    with mlflow_errors(f"setting alias {alias!r} of {model_name!r} to version {mv.version}"):
        client.set_registered_model_alias(model_name, alias, mv.version)
        return ModelVersionInfo.from_mlflow(client.get_model_version(model_name, mv.version))


def resolve_model_uri(settings: Settings, uri: str) -> ResolvedModel:
    """Resolve any accepted model URI to the model behind it now; NotFound when it points at nothing."""
    ref = parse_model_uri(uri)
    client = mlflow_client(settings)
    if ref.kind in ("version", "alias", "latest"):
        key = ref.version if ref.kind == "version" else (ref.alias if ref.kind == "alias" else "latest")
        info = ModelVersionInfo.from_mlflow(_get_version(client, settings, ref.name, key))
        return ResolvedModel(ref.uri, info.uri, info.run_id, info.model_id, info)
    if ref.kind == "logged_model":
        try:
            logged = client.get_logged_model(ref.model_id)
        except MlflowException as exc:
            if str(exc.error_code) == "RESOURCE_DOES_NOT_EXIST":
                raise NotFound(f"no logged model {ref.model_id!r} at {settings.mlflow_uri}") from exc
            raise translate(exc, f"reading logged model {ref.model_id}") from exc
        return ResolvedModel(ref.uri, ref.uri, logged.source_run_id or "", ref.model_id)
    run = get_run(client, settings, ref.run_id)
    if ref.path == "model" or ref.path.startswith("model/"):
        found = run_model_uri(client, run)
        if found is not None:
            return ResolvedModel(ref.uri, found, ref.run_id, _model_id(found))
    return ResolvedModel(ref.uri, ref.uri, ref.run_id)


def get_run(client: MlflowClient, settings: Settings, run_id: str) -> Run:
    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if str(exc.error_code) == "RESOURCE_DOES_NOT_EXIST":
            raise NotFound(f"no MLflow run {run_id!r} at {settings.mlflow_uri}") from exc
        raise translate(exc, f"reading run {run_id}") from exc


def run_model_uri(client: MlflowClient, run: Run) -> str | None:
    """The URI of the model a run logged (``models:/m-…`` in MLflow 3), or None when it logged none."""
    tagged = run.data.tags.get(TAG_MODEL_URI, "")
    if tagged:
        return tagged
    outputs = getattr(run, "outputs", None)
    model_outputs = list(getattr(outputs, "model_outputs", None) or [])
    if model_outputs:
        latest = max(model_outputs, key=lambda o: o.step)
        return f"models:/{latest.model_id}"
    try:
        logged = client.search_logged_models([run.info.experiment_id],
                                             filter_string=f"source_run_id = '{run.info.run_id}'",
                                             max_results=10)
        if logged:
            return f"models:/{max(logged, key=lambda m: m.creation_timestamp).model_id}"
        if any(f.path == "model/MLmodel" for f in client.list_artifacts(run.info.run_id, "model")):
            return f"runs:/{run.info.run_id}/model"
    except MlflowException:
        return None
    return None


def _model_id(uri: str) -> str:
    rest = uri[len("models:/"):] if uri.startswith("models:/") else ""
    return rest if _LOGGED_MODEL_ID.match(rest) else ""


def _quote(text: str) -> str:
    return text.replace("'", "\\'")


def register_run(settings: Settings, model_name: str, run_id: str,
                 tags: dict[str, str] | None = None) -> ModelVersionInfo:
    """Register the model run ``run_id`` logged as a version of ``model_name`` (its existing version when
    it already is one); NotFound when the run is unknown or logged no model."""
    client = mlflow_client(settings)
    return ModelVersionInfo.from_mlflow(register_run_model(client, settings, model_name,
                                                           get_run(client, settings, run_id), tags))


def register_run_model(client: MlflowClient, settings: Settings, model_name: str, run: Run,
                       tags: dict[str, str] | None = None) -> ModelVersion:
    """The version of ``model_name`` holding ``run``'s model: reused when already registered, else created."""
    run_id = run.info.run_id
    model_uri = run_model_uri(client, run)
    if model_uri is None:
        raise NotFound(f"run {run_id} logged no model, so it cannot be registered (did its training job finish?)")
    with mlflow_errors(f"registering the model of run {run_id} as {model_name!r}"):
        try:
            client.create_registered_model(model_name, description="Registered by workbench.registry")
        except MlflowException as exc:
            if str(exc.error_code) not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        model_id = _model_id(model_uri)
        for mv in client.search_model_versions(f"name = '{_quote(model_name)}' and run_id = '{run_id}'"):
            if (getattr(mv, "model_id", None) or "") == model_id or mv.source == model_uri:
                if tags:
                    for key, value in tags.items():
                        client.set_model_version_tag(model_name, mv.version, key, value)
                return client.get_model_version(model_name, mv.version)
        source = model_uri
        if model_uri.startswith("runs:/"):
            source = f"{run.info.artifact_uri.rstrip('/')}/{model_uri.split('/', 2)[2]}"
        return client.create_model_version(model_name, source, run_id=run_id, tags=tags,
                                           model_id=model_id or None)
