"""The Feast repository the package manages under ``settings.feast_dir``.

Layout::

    <feast_dir>/feature_store.yaml   generated from Settings on every apply (do not edit by hand)
    <feast_dir>/registry.db          file registry (one writer at a time)
    <feast_dir>/online.db            SQLite online store (local profile)
    <feast_dir>/data/*.parquet       feature tables written by compute_features (file offline store)

The online store follows ``settings.feast_online_store``:

* ``sqlite`` (default): ``<feast_dir>/online.db``; the connection setting is ignored.
* ``redis``: ``feast_online_store_connection`` is Feast's Redis connection string,
  ``host:port[,db=0][,password=...][,ssl=true]``, e.g. ``redis.feast.svc:6379``.
* ``postgres``: ``feast_online_store_connection`` is a URL,
  ``postgresql://user:password@host:5432/database?sslmode=require&schema=feast``; ``sslmode`` defaults
  to ``require`` and ``schema`` to ``public``.

Credentials never go into feature_store.yaml: it holds ``'${WORKBENCH_FEAST_REDIS_CONNECTION}'`` (the whole
Redis string) or ``'${WORKBENCH_FEAST_POSTGRES_PASSWORD}'``, which Feast's loader substitutes from the
environment of the process opening the store; the workbench sets them from Settings before it opens one
(:func:`export_feast_env`). To use the repository with the ``feast`` CLI, export them first.

The offline store stays Feast's ``file`` store over the Parquet tables in every profile; on a cluster
``feast_dir`` must be on storage that the notebook and the materializing process both see.

Feast is imported lazily: importing ``workbench.features`` stays cheap for the CLI and the server.
"""

from __future__ import annotations

import importlib.util
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlparse

import yaml

from workbench.config import Settings
from workbench.errors import ConfigError, InvalidInput, NotFound, ServiceUnavailable, WorkbenchError
from workbench.features.compute import (
    MERCHANT_FEATURES,
    MERCHANT_TABLE,
    USER_FEATURES,
    USER_TABLE,
    Transactions,
    compute_features,
    feature_data_dir,
)
from workbench.secrets import redact, redact_connection, yaml_single_quoted

if TYPE_CHECKING:
    from feast import FeatureStore

PROJECT = "workbench"
FEATURE_SERVICE = "fraud_model_v1"
USER_VIEW = "user_activity"
MERCHANT_VIEW = "merchant_risk"
USER_TTL = timedelta(days=7)
"""Longest user window: an older row says nothing about the last 7 days."""
MERCHANT_TTL = timedelta(days=30)
"""Longest merchant window (the 30-day fraud rate)."""
REGISTRY_FILE = "registry.db"
ONLINE_FILE = "online.db"
YAML_FILE = "feature_store.yaml"


@dataclass(frozen=True)
class FeatureRepoInfo:
    """What the registry holds after an apply: enough for a notebook to print and lineage to record."""

    repo_path: Path
    project: str
    online_store: str
    registry_path: Path
    entities: tuple[str, ...]
    feature_views: dict[str, tuple[str, ...]] = field(default_factory=dict)
    feature_services: dict[str, tuple[str, ...]] = field(default_factory=dict)
    apply_seconds: float = 0.0


REDIS_CONNECTION_ENV = "WORKBENCH_FEAST_REDIS_CONNECTION"
POSTGRES_PASSWORD_ENV = "WORKBENCH_FEAST_POSTGRES_PASSWORD"
"""The variables feature_store.yaml references for the online store's credentials (Feast's
``load_repo_config`` runs ``os.path.expandvars`` on the file before parsing it), so the file holds
``${WORKBENCH_FEAST_...}`` and never a password."""


class _EnvRef(str):
    """A ``${VAR}`` reference, dumped single-quoted (see :func:`feast_secret_env`)."""


# on SafeDumper itself, so that every safe_dump of an online store block (the feature projects' yaml too)
# quotes the references; only this type is affected
yaml.SafeDumper.add_representer(_EnvRef, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", str(v), style="'"))


def feast_secret_env(settings: Settings) -> dict[str, str]:
    """The values of the variables feature_store.yaml references, escaped for the single quotes around the
    reference there (Feast substitutes before YAML parses, so a ``#`` or ``'`` in a password stays text)."""
    conn = settings.feast_online_store_connection
    if settings.feast_online_store == "redis" and conn:
        return {REDIS_CONNECTION_ENV: yaml_single_quoted(conn)}
    if settings.feast_online_store == "postgres" and conn:
        return {POSTGRES_PASSWORD_ENV: yaml_single_quoted(unquote(urlparse(conn).password or ""))}
    return {}


def export_feast_env(settings: Settings) -> None:
    """Put :func:`feast_secret_env` into this process's environment, where Feast's loader finds it.

    Every process that opens the store derives it from its own Settings (a Serve replica from
    ``WORKBENCH_FEAST_ONLINE_STORE_CONNECTION``, which it inherits from its Ray node), so the secret never
    travels in a file or a config.
    """
    os.environ.update(feast_secret_env(settings))


def _online_store_config(settings: Settings) -> dict[str, Any]:
    """The ``online_store`` block, credentials as ``${VAR}`` references only.

    It also exports the variables (:func:`export_feast_env`): whoever builds this block is about to write
    or open a repository with it (``apply_repo``, ``feature_store`` and the feature projects of
    ``workbench.features.project`` all do), and Feast will need them in this process.
    """
    kind = settings.feast_online_store
    conn = settings.feast_online_store_connection
    if kind == "sqlite":
        return {"type": "sqlite", "path": str(settings.feast_dir / ONLINE_FILE)}
    if kind == "redis":
        if not conn:
            raise ConfigError("feast_online_store = 'redis' needs feast_online_store_connection, "
                              "e.g. 'redis.feast.svc:6379'")
        export_feast_env(settings)
        return {"type": "redis", "connection_string": _EnvRef(f"${{{REDIS_CONNECTION_ENV}}}")}
    if kind == "postgres":
        url = urlparse(conn)
        if url.scheme not in ("postgres", "postgresql") or not url.hostname or not url.path.strip("/"):
            raise ConfigError("feast_online_store = 'postgres' needs feast_online_store_connection as "
                              "'postgresql://user:password@host:5432/database'")
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        export_feast_env(settings)
        return {
            "type": "postgres",
            "host": url.hostname,
            "port": url.port or 5432,
            "database": url.path.strip("/"),
            "db_schema": query.get("schema", "public"),
            "user": unquote(url.username or ""),
            "password": _EnvRef(f"${{{POSTGRES_PASSWORD_ENV}}}"),
            "sslmode": query.get("sslmode", "require"),
        }
    raise ConfigError(f"feast_online_store must be sqlite, redis or postgres, got {kind!r}")


def feature_store_yaml(settings: Settings) -> str:
    """The feature_store.yaml text for these settings (local provider, file offline store)."""
    config = {
        "project": PROJECT,
        "provider": "local",
        "registry": {
            "registry_type": "file",
            "path": str(settings.feast_dir / REGISTRY_FILE),
            "cache_ttl_seconds": 60,
        },
        "online_store": _online_store_config(settings),
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }
    text = yaml.safe_dump(config, sort_keys=False)  # '${VAR}' single-quoted: see feast_secret_env
    return "# generated by workbench.features from Settings; edits are overwritten\n" + text


def definitions(settings: Settings) -> list[Any]:
    """The Feast objects of the repository: entities, sources, feature views and the feature service."""
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    data = feature_data_dir(settings)
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64,
                  description="A card holder.")
    merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64,
                      description="A merchant accepting card payments.")
    user_source = FileSource(name="user_activity_source", path=str(data / USER_TABLE),
                             timestamp_field="event_timestamp",
                             description="Per-user aggregates of earlier transactions (compute_features).")
    merchant_source = FileSource(name="merchant_risk_source", path=str(data / MERCHANT_TABLE),
                                 timestamp_field="event_timestamp",
                                 description="Per-merchant aggregates of earlier transactions.")
    user_view = FeatureView(
        name=USER_VIEW, entities=[user], ttl=USER_TTL, source=user_source, online=True,
        schema=[Field(name="user_id", dtype=Int64)] + [
            Field(name=n, dtype=Int64 if "count" in n else Float64) for n in USER_FEATURES],
        description="How much and how often the user spent in the last 1 and 7 days, before this moment.",
        tags={"owner": "workbench", "stage": "features"},
    )
    merchant_view = FeatureView(
        name=MERCHANT_VIEW, entities=[merchant], ttl=MERCHANT_TTL, source=merchant_source, online=True,
        schema=[Field(name="merchant_id", dtype=Int64)] + [
            Field(name=n, dtype=Int64 if "count" in n else Float64) for n in MERCHANT_FEATURES],
        description="Merchant volume (7 days) and fraud rate (30 days), before this moment.",
        tags={"owner": "workbench", "stage": "features"},
    )
    service = FeatureService(name=FEATURE_SERVICE, features=[user_view, merchant_view],
                             description="Features of the fraud model, version 1.",
                             tags={"model": "fraud-detection"})
    return [user, merchant, user_source, merchant_source, user_view, merchant_view, service]


_CLIENTS = {"redis": ("redis", "feast[redis]"), "postgres": ("psycopg", "feast[postgres]")}


def _check_client(settings: Settings) -> None:
    """A clear error when the Python client of the configured online store is not installed."""
    module, extra = _CLIENTS.get(settings.feast_online_store, ("", ""))
    if module and importlib.util.find_spec(module) is None:
        raise ConfigError(f"feast_online_store = {settings.feast_online_store!r} needs the {module!r} client, "
                          f"which is not installed: pip install '{extra}==0.67.0' in this environment")


def online_store_error(settings: Settings, exc: Exception, doing: str) -> WorkbenchError:
    """The WorkbenchError for a Feast failure: ServiceUnavailable when a remote online store is
    unreachable (redis-py and psycopg raise their own ConnectionError/OperationalError types)."""
    if isinstance(exc, WorkbenchError):
        return exc
    kinds = " ".join(k.__name__ for k in type(exc).__mro__)
    if settings.feast_online_store != "sqlite" and re.search(r"Connection|Operational|Timeout", kinds):
        return ServiceUnavailable(f"the {settings.feast_online_store} online store at "
                                  f"{redact_connection(settings.feast_online_store_connection)!r} does not answer "
                                  f"while {doing}: {_redacted(settings, exc)}")
    return WorkbenchError(f"Feast failed while {doing} ({settings.feast_dir}): {_redacted(settings, exc)}")


def _redacted(settings: Settings, exc: Exception) -> str:
    """A client's error text without the store's secrets (redis-py and psycopg may quote the connection)."""
    url = urlparse(settings.feast_online_store_connection)
    secrets = [settings.feast_online_store_connection, *feast_secret_env(settings).values()]
    if settings.feast_online_store == "postgres":
        secrets.append(unquote(url.password or ""))
    return redact(str(exc), secrets)


_StoreKey = tuple[str, int, str, str]
_stores: dict[_StoreKey, FeatureStore] = {}
_lock = threading.Lock()


def _store_key(settings: Settings) -> _StoreKey | None:
    """Identifies an applied repository as these settings see it; None when it was never applied."""
    try:
        stamp = (settings.feast_dir / YAML_FILE).stat().st_mtime_ns
    except FileNotFoundError:
        return None
    return str(settings.feast_dir), stamp, settings.feast_online_store, settings.feast_online_store_connection


def _forget_stores(settings: Settings) -> None:
    with _lock:
        for key in [k for k in _stores if k[0] == str(settings.feast_dir)]:
            del _stores[key]


def feature_store(settings: Settings) -> FeatureStore:
    """The applied repository's ``FeatureStore`` (cached per process), for anything this package lacks.

    Raises NotFound when :func:`apply_repo` has not run for this ``feast_dir``, and InvalidInput when it
    ran with other settings (another online store), so that a stale repo is never used silently.
    """
    key = _store_key(settings)
    store = _stores.get(key) if key else None
    if store is not None:
        return store
    if key is None or not (settings.feast_dir / REGISTRY_FILE).is_file():
        raise NotFound(f"no Feast repository at {settings.feast_dir}: run "
                       "workbench.features.apply_repo(settings) first")
    if (settings.feast_dir / YAML_FILE).read_text() != feature_store_yaml(settings):
        raise InvalidInput(f"the Feast repository at {settings.feast_dir} was applied with other settings "
                           f"(online store now {settings.feast_online_store!r}): run "
                           "workbench.features.apply_repo(settings) again")
    with _lock:
        store = _stores.get(key)
        if store is None:
            from feast import FeatureStore

            try:
                store = FeatureStore(repo_path=str(settings.feast_dir))
            except Exception as exc:  # Feast raises many kinds while parsing and connecting
                raise WorkbenchError(f"cannot open the Feast repository at {settings.feast_dir}: {exc}") from exc
            _stores[key] = store
    return store


def apply_repo(settings: Settings, transactions: Transactions | None = None) -> FeatureRepoInfo:
    """Write feature_store.yaml and register the definitions; safe to run again (idempotent).

    With ``transactions`` the feature tables are (re)computed first. Without, the tables need not exist
    yet (registering is metadata only), but :func:`materialize` and :func:`training_frame` will ask for
    them.
    """
    text = feature_store_yaml(settings)  # ConfigError before any work when the settings are wrong
    _check_client(settings)
    if transactions is not None:
        compute_features(settings, transactions)
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    path = settings.feast_dir / YAML_FILE
    previous = path.read_text() if path.is_file() else None
    path.write_text(text)
    _forget_stores(settings)
    from feast import FeatureStore

    started = time.perf_counter()
    try:
        store = FeatureStore(repo_path=str(settings.feast_dir))
        store.apply(definitions(settings))
    except Exception as exc:
        if previous is None:  # leave the repository as it was: applied with the old settings, or not at all
            path.unlink(missing_ok=True)
        else:
            path.write_text(previous)
        raise online_store_error(settings, exc, "applying the repository") from exc
    elapsed = time.perf_counter() - started
    key = _store_key(settings)
    if key:
        with _lock:
            _stores[key] = store
    return repo_info(settings, apply_seconds=elapsed)


def repo_info(settings: Settings, apply_seconds: float = 0.0) -> FeatureRepoInfo:
    """What the registry holds now (entities, views with their features, services)."""
    store = feature_store(settings)
    views = {v.name: tuple(f.name for f in v.features) for v in store.list_feature_views()}
    services = {
        s.name: tuple(f"{p.name}:{f.name}" for p in s.feature_view_projections for f in p.features)
        for s in store.list_feature_services()
    }
    return FeatureRepoInfo(
        repo_path=settings.feast_dir,
        project=store.project,
        online_store=settings.feast_online_store,
        registry_path=settings.feast_dir / REGISTRY_FILE,
        entities=tuple(sorted(e.name for e in store.list_entities())),
        feature_views=views,
        feature_services=services,
        apply_seconds=apply_seconds,
    )


def get_feature_service(store: FeatureStore, name: str, allow_cache: bool = False) -> Any:
    """The named FeatureService, or NotFound naming the ones that exist."""
    from feast.errors import FeatureServiceNotFoundException

    if not isinstance(name, str) or not name:
        raise InvalidInput(f"feature_service must be a service name such as {FEATURE_SERVICE!r}, got {name!r}")
    try:
        return store.get_feature_service(name, allow_cache=allow_cache)
    except FeatureServiceNotFoundException as exc:
        known = sorted(s.name for s in store.list_feature_services())
        raise NotFound(f"feature service {name!r} is not in the Feast registry; known: {known}") from exc
