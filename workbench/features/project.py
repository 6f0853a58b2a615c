"""A feature declaration as a Feast project of its own: apply, materialize, training frame, online lookup.

Each project lives in ``<feast_dir>/<project name>/``::

    feature_store.yaml   generated on every apply (project = the declaration's name)
    registry.db          its own file registry
    online.db            its own SQLite online store (local profile; Redis/Postgres key by project name)
    data/*.parquet       its offline tables (workbench.features.tables)
    declaration.json     the declaration, so a replica can look features up by project name alone
    manifest.json        what the last apply computed (rows, time range, column types)

so applying or materializing one project never touches another's files, registry or online rows. On a
cluster sharing no disk with the notebook (``Settings.state_in_bucket``) apply and materialize also publish
what a replica needs to the bucket, and replicas mirror it (:mod:`workbench.features.shared`).

The four calls of the features stage::

    project = apply_features(settings, declaration, dataset)      # tables + Feast apply
    materialize_features(settings, project.name)                  # latest states -> online store
    frame = feature_frame(settings, project.name, dataset, label="is_fraud")   # point in time
    online_features(settings, project.name, [{"user_id": 7, ..., "timestamp": t}])  # per request

For a request at ``t`` the online vector equals the training frame's row for the same entity at ``t``
(as long as the online store was materialized up to ``t``): windowed aggregates and time-relative
features are computed from the request time by the same on-demand transformation in both.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml
from tqdm.auto import tqdm

from workbench import locations
from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound, WorkbenchError
from workbench.features.declaration import (
    ColumnsView,
    FeatureDeclaration,
    Relative,
    RequestTime,
    SecondsSinceLast,
    WindowedView,
    feast_type_name,
)
from workbench.features.repo import _check_client, _online_store_config, online_store_error
from workbench.features.shared import check_online_store, mirror, publish, published_services
from workbench.features.tables import (
    FEATURE_TIMESTAMP,
    US,
    Dataset,
    History,
    check_rows,
    columns_sql,
    connect,
    histories,
    history_sql,
    write_table,
)
from workbench.features.transform import REQUEST_TIME, make_udf

if TYPE_CHECKING:
    from feast import FeatureStore

DECLARATION_FILE = "declaration.json"
MANIFEST_FILE = "manifest.json"
MATERIALIZED_FILE = "materialized.json"
YAML_FILE = "feature_store.yaml"
REGISTRY_FILE = "registry.db"
ONLINE_FILE = "online.db"
PUBLISHED = (MANIFEST_FILE, REGISTRY_FILE, MATERIALIZED_FILE, DECLARATION_FILE)
"""What a replica on a cluster without the notebook's disk needs of a project (workbench.features.shared)."""
ENTITY_TIMESTAMP = "event_timestamp"
NO_TIME = pd.Timestamp("2000-01-01", tz="UTC")
"""The entity-row time of a dataset without a timestamp (its feature rows sit at the epoch)."""
_ROW = "_workbench_row"
JOIN_ROWS_PER_CHUNK = 4_000_000
"""Rows of Feast's in-memory merge per call (~0.6 GB); beyond it the frame is built in several calls."""


@dataclass(frozen=True)
class FeatureProject:
    """What an apply produced: where the project lives and what its service needs and gives."""

    name: str
    path: Path
    service: str
    online_store: str
    entity_keys: tuple[str, ...]
    request_fields: tuple[str, ...]
    request_columns: tuple[str, ...]
    features: tuple[str, ...]
    timestamp: str | None
    tables: dict[str, int] = field(default_factory=dict)
    apply_seconds: float = 0.0

    @property
    def model_inputs(self) -> tuple[str, ...]:
        """A model trained on this project takes these columns: request columns, then features."""
        return (*self.request_columns, *self.features)


@dataclass(frozen=True)
class ProjectMaterializeInfo:
    """What was materialized into a project's online store, over which interval, how long it took."""

    project: str
    feature_views: tuple[str, ...]
    start: datetime
    end: datetime
    seconds: float


def project_dir(settings: Settings, name: str) -> Path:
    """``<feast_dir>/<name>``: everything of one feature project."""
    if isinstance(name, FeatureDeclaration):
        name = name.name
    FeatureDeclaration(name=name, entities=())  # the same name check as a declaration's
    return settings.feast_dir / name


def project_yaml(settings: Settings, name: str) -> str:
    """The feature_store.yaml of a project: its own registry and online store, the file offline store."""
    folder = project_dir(settings, name)
    online = _online_store_config(settings)
    if online["type"] == "sqlite":
        online = {"type": "sqlite", "path": str(folder / ONLINE_FILE)}
    config = {
        "project": name,
        "provider": "local",
        "registry": {"registry_type": "file", "path": str(folder / REGISTRY_FILE), "cache_ttl_seconds": 60},
        "online_store": online,
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }
    return "# generated by workbench.features from a FeatureDeclaration; edits are overwritten\n" + yaml.safe_dump(
        config, sort_keys=False)


# the Feast objects ------------------------------------------------------------------------------
def _aggregate_plans(declaration: FeatureDeclaration, found: Mapping[str, History]) -> dict[str, dict[str, Any]]:
    plans = {}
    for view in declaration.views:
        if not isinstance(view, WindowedView):
            continue
        history = found[view.entity]
        for agg in view.aggregates:
            step = agg.resolution_s * US if agg.resolution_s else None
            group = history.group_for(agg.column, agg.window, step)
            plans[agg.feature_name(view.entity)] = {
                "name": agg.feature_name(view.entity), "kind": "aggregate", "view": history.view,
                "group": group.gid, "function": agg.function, "fill": float(agg.fill),
                "window_us": agg.window_s * US if agg.window_s else None, "step_us": step,
                "dtype": "int64" if agg.function == "count" else "float64",
            }
    return plans


def _on_demand_plan(declaration: FeatureDeclaration, found: Mapping[str, History],
                    aggregates: Mapping[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], set[str]]:
    """The plan of the project's on-demand view, and the feature views it reads."""
    columns = {c: v.name for v in declaration.views if isinstance(v, ColumnsView) for c in v.columns}
    plan, sources = [], set()

    def operand(name: str) -> dict[str, Any]:
        if name in declaration.request_columns:
            return {"kind": "request", "column": name}
        if name in columns:
            sources.add(columns[name])
            return {"kind": "column", "view": columns[name], "column": name}
        sources.add(aggregates[name]["view"])
        return aggregates[name]

    for item in declaration.on_demand:
        if isinstance(item, SecondsSinceLast):
            view = found[item.entity].view
            sources.add(view)
            plan.append({"name": item.feature_name(), "kind": "since", "view": view,
                         "column": found[item.entity].last_event, "fill": float(item.fill)})
        elif isinstance(item, Relative):
            plan.append({"name": item.name, "kind": "relative", "value": operand(item.value),
                         "to": operand(item.to), "how": item.how, "fill": float(item.fill)})
        elif isinstance(item, RequestTime):
            plan.append({"name": item.name, "kind": "time", "part": item.part, "dtype": "int64"})
    return plan, sources


def on_demand_view(declaration: FeatureDeclaration) -> str:
    """The name of the project's one on-demand feature view."""
    return f"{declaration.name}_at_request"


def _service_plan(declaration: FeatureDeclaration,
                  found: Mapping[str, History]) -> tuple[list[dict[str, Any]], set[str]]:
    """The plan of the on-demand view, in declared feature order, and the feature views it reads."""
    aggregates = _aggregate_plans(declaration, found)
    plan: list[dict[str, Any]] = []
    sources: set[str] = set()
    for view in declaration.views:
        if isinstance(view, WindowedView):
            plan += [aggregates[n] for n in view.feature_names()]
            sources.add(found[view.entity].view)
    if declaration.on_demand:
        extra, more = _on_demand_plan(declaration, found, aggregates)
        plan += extra
        sources |= more
    return plan, sources


def _feast_objects(declaration: FeatureDeclaration, folder: Path, types: Mapping[str, str]) -> list[Any]:
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, ValueType
    from feast.on_demand_feature_view import OnDemandFeatureView
    from feast.types import Array, Bool, Float64, Int64, String

    scalar = {"Int64": Int64, "Float64": Float64, "Bool": Bool, "String": String}
    data = folder / "data"
    entities: dict[str, Any] = {}
    for entity in declaration.entities:
        for key in entity.keys:
            if key not in entities:
                kind = ValueType.STRING if types[key].upper() == "VARCHAR" else ValueType.INT64
                entities[key] = Entity(name=key, join_keys=[key], value_type=kind,
                                       description=f"key column of entity {entity.name!r}")

    def key_fields(keys: Sequence[str]) -> list[Any]:
        return [Field(name=k, dtype=String if types[k].upper() == "VARCHAR" else Int64) for k in keys]

    objects: list[Any] = list(entities.values())
    found = histories(declaration)
    views: dict[str, Any] = {}
    for history in found.values():
        schema = [*key_fields(history.keys), Field(name=history.last_event, dtype=Int64)]
        for group in history.groups:
            for column in group.stored():
                part = column.rsplit("_", 1)[1]
                base = Int64 if part in ("start", "count") else Float64
                schema.append(Field(name=column, dtype=Array(base) if group.resolution_us else base))
        source = FileSource(name=f"{history.view}_source", path=str(data / f"{history.view}.parquet"),
                            timestamp_field=FEATURE_TIMESTAMP)
        views[history.view] = FeatureView(
            name=history.view, entities=[entities[k] for k in history.keys], ttl=timedelta(0), source=source,
            schema=schema, online=True, tags={"owner": "workbench", "kind": "history"},
            description=f"State of entity {history.entity!r} after each of its rows (partial window aggregates).")
        objects += [source, views[history.view]]
    for view in declaration.views:
        if isinstance(view, ColumnsView):
            keys = declaration.entity(view.entity).keys
            schema = [*key_fields(keys), *[Field(name=c, dtype=scalar[feast_type_name(types[c]) or "String"])
                                           for c in view.columns]]
            source = FileSource(name=f"{view.name}_source", path=str(data / f"{view.name}.parquet"),
                                timestamp_field=FEATURE_TIMESTAMP)
            views[view.name] = FeatureView(
                name=view.name, entities=[entities[k] for k in keys], ttl=timedelta(0), source=source,
                schema=schema, online=True, tags={"owner": "workbench", "kind": "columns"},
                description=view.description or f"Columns of entity {view.entity!r} as of its latest earlier row.")
            objects.append(source)
    request = RequestSource(name=f"{declaration.name}_request", schema=[
        Field(name=REQUEST_TIME, dtype=Int64), *[Field(name=c, dtype=Float64) for c in declaration.request_fields()]])
    objects.append(request)

    def odfv(name: str, plan: list[dict[str, Any]], sources: set[str], description: str) -> Any:
        schema = [Field(name=p["name"], dtype=Int64 if p.get("dtype") == "int64" else Float64) for p in plan]
        return OnDemandFeatureView(
            name=name, sources=[*[views[s] for s in sorted(sources)], request], schema=schema,
            udf=make_udf(plan), udf_string=json.dumps(plan, indent=1),  # type: ignore[arg-type]
            mode="pandas", description=description,
            tags={"owner": "workbench", "kind": "on_demand"})

    # One on-demand view computes every windowed and on-demand feature: Feast converts Arrow to pandas
    # and back once per on-demand view and request, which costs more than the transformation itself.
    served: list[Any] = [views[v.name] for v in declaration.views if isinstance(v, ColumnsView)]
    plan, sources = _service_plan(declaration, found)
    if plan:
        windowed = ", ".join(v.name for v in declaration.views if isinstance(v, WindowedView))
        served.append(odfv(on_demand_view(declaration), plan, sources,
                           f"At request time: windowed views ({windowed or 'none'}) and on-demand features."))
    objects += served
    objects.append(FeatureService(name=declaration.service_name, features=served,
                                  description=declaration.description or f"Features of project {declaration.name}.",
                                  tags={"owner": "workbench", "project": declaration.name}))
    return objects


# stores ----------------------------------------------------------------------------------------
_stores: dict[tuple[str, int], FeatureStore] = {}
_lock = threading.Lock()


def project_store(settings: Settings, name: str) -> FeatureStore:
    """The project's Feast ``FeatureStore`` (cached per process while its yaml is unchanged)."""
    folder = project_dir(settings, name)
    path = folder / YAML_FILE
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise NotFound(f"no feature project {name!r} under {settings.feast_dir}: run "
                       "workbench.features.apply_features(settings, declaration, dataset) first") from None
    if path.read_text() != project_yaml(settings, name):
        raise InvalidInput(f"feature project {name!r} was applied with other settings (online store now "
                           f"{settings.feast_online_store!r}): apply it again")
    key = (str(folder), stamp)
    with _lock:
        store = _stores.get(key)
        if store is None:
            from feast import FeatureStore

            try:
                store = FeatureStore(repo_path=str(folder))
            except Exception as exc:  # Feast raises many kinds while parsing and connecting
                raise WorkbenchError(f"cannot open feature project {name!r} at {folder}: {exc}") from exc
            _stores[key] = store
    return store


def load_declaration(settings: Settings, name: str) -> FeatureDeclaration:
    """The declaration a project was last applied with."""
    path = project_dir(settings, name) / DECLARATION_FILE
    if not path.is_file():
        raise NotFound(f"no feature project {name!r} under {settings.feast_dir}: run "
                       "workbench.features.apply_features(settings, declaration, dataset) first")
    return FeatureDeclaration.from_dict(json.loads(path.read_text()))


def _manifest(settings: Settings, name: str) -> dict[str, Any]:
    path = project_dir(settings, name) / MANIFEST_FILE
    if not path.is_file():
        raise NotFound(f"feature project {name!r} has no tables: apply it first")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _info(declaration: FeatureDeclaration, settings: Settings, tables: dict[str, int],
          seconds: float) -> FeatureProject:
    return FeatureProject(
        name=declaration.name, path=project_dir(settings, declaration.name), service=declaration.service_name,
        online_store=settings.feast_online_store, entity_keys=tuple(declaration.entity_keys()),
        request_fields=tuple(declaration.request_fields()), request_columns=declaration.request_columns,
        features=tuple(declaration.feature_names()), timestamp=declaration.timestamp, tables=tables,
        apply_seconds=seconds)


def feature_project(settings: Settings, name: str) -> FeatureProject:
    """What an applied project serves (read from its folder; no Feast call)."""
    declaration = load_declaration(settings, name)
    manifest = _manifest(settings, name)
    return _info(declaration, settings, dict(manifest.get("tables", {})), float(manifest.get("apply_seconds", 0.0)))


def project_for_service(settings: Settings, service: str) -> str:
    """The name of the applied project whose feature service is ``service`` (what a model's
    ``workbench.feature_service`` tag names), or NotFound listing the services there are."""
    if settings.state_in_bucket:
        return _published_project(settings, service)
    known: dict[str, str] = {}
    root = settings.feast_dir
    for path in sorted(root.glob(f"*/{DECLARATION_FILE}")) if root.is_dir() else []:
        try:
            declaration = FeatureDeclaration.from_dict(json.loads(path.read_text()))
        except (InvalidInput, ValueError):
            continue
        known[declaration.service_name] = declaration.name
    if service not in known:
        raise NotFound(f"no feature project under {root} serves feature service {service!r}; "
                       f"known services: {sorted(known)}")
    return known[service]


def _published_project(settings: Settings, service: str) -> str:
    """With state in the bucket, the project serving ``service`` as published there, mirrored into this
    process's feast_dir (a replica on the cluster has no other copy), its feature_store.yaml written from
    this process's settings."""
    check_online_store(settings)
    known = published_services(settings, DECLARATION_FILE)
    if service not in known:
        raise NotFound(f"no feature project in the bucket serves feature service {service!r}; known services: "
                       f"{sorted(known)} (apply_features publishes a project under this profile)")
    name = known[service]
    folder = project_dir(settings, name)
    mirror(settings, name, folder, PUBLISHED)
    text = project_yaml(settings, name)
    path = folder / YAML_FILE
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return name


# apply / materialize ----------------------------------------------------------------------------
def apply_features(settings: Settings, declaration: FeatureDeclaration, dataset: Dataset) -> FeatureProject:
    """Check the declaration against the dataset, compute its tables (DuckDB), apply its Feast project.

    Only ``<feast_dir>/<declaration.name>/`` is written. Applying again replaces the tables and the
    registry's objects (views no longer declared are deleted); the online store keeps its rows until
    :func:`materialize_features` runs.
    """
    if not isinstance(declaration, FeatureDeclaration):
        raise InvalidInput(f"declaration must be a FeatureDeclaration, got {type(declaration).__name__}")
    text = project_yaml(settings, declaration.name)  # ConfigError before any work when settings are wrong
    check_online_store(settings)
    _check_client(settings)
    con, types, label = connect(dataset, declaration.timestamp)
    declaration.check(types)
    n_rows = check_rows(con, declaration, label)
    folder = project_dir(settings, declaration.name)
    data = folder / "data"
    tables: dict[str, int] = {}
    for history in histories(declaration).values():
        tables[history.view] = write_table(con, history_sql(history), data / f"{history.view}.parquet")
    for view in declaration.views:
        if isinstance(view, ColumnsView):
            tables[view.name] = write_table(con, columns_sql(view, declaration.entity(view.entity).keys),
                                            data / f"{view.name}.parquet")
    span = con.execute("SELECT min(_t), max(_t) FROM src").fetchone()
    first_us, last_us = (int(span[0]), int(span[1])) if span and span[0] is not None else (0, 0)
    started = time.perf_counter()
    (folder / YAML_FILE).write_text(text)
    (folder / DECLARATION_FILE).write_text(json.dumps(declaration.to_dict(), indent=2))
    from feast import FeatureStore

    try:
        store = FeatureStore(repo_path=str(folder))
        objects = _feast_objects(declaration, folder, types)
        keep = {(type(o).__name__, o.name) for o in objects}
        registered: list[Any] = [*store.list_feature_services(), *store.list_on_demand_feature_views(),
                                 *store.list_feature_views(), *store.list_data_sources(), *store.list_entities()]
        stale = [o for o in registered if (type(o).__name__, o.name) not in keep]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            store.apply(objects, objects_to_delete=stale, partial=False)
    except WorkbenchError:
        raise
    except Exception as exc:
        raise online_store_error(settings, exc, f"applying feature project {declaration.name!r}") from exc
    seconds = time.perf_counter() - started
    manifest = {"project": declaration.name, "source": label, "rows": n_rows, "tables": tables,
                "first_event_us": first_us, "last_event_us": last_us, "types": types,
                "apply_seconds": seconds}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    publish(settings, declaration.name, folder, PUBLISHED)  # for a cluster's replicas, with state in the bucket
    return _info(declaration, settings, tables, seconds)


def _aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{what} must be a timezone-aware datetime (UTC), got {value!r}")
    return value.astimezone(UTC)


def materialize_features(settings: Settings, name: str, end: datetime | None = None,
                         start: datetime | None = None) -> ProjectMaterializeInfo:
    """Load each entity's latest state with ``start <= time <= end`` into the project's online store.

    Defaults: from the epoch (everything) to now, or to just after the last row if that is later.
    Running it again, or with a later ``end``, is safe: the online store keeps one row per entity.
    The latest rows are picked by DuckDB and written with Feast's ``write_to_online_store`` (what
    ``FeatureStore.materialize`` does, without its in-memory load of every row of the tables).
    """
    import duckdb

    store = project_store(settings, name)
    declaration = load_declaration(settings, name)
    manifest = _manifest(settings, name)
    last = datetime.fromtimestamp(manifest["last_event_us"] / US, tz=UTC) + timedelta(seconds=1)
    end = _aware(end, "end") if end is not None else max(datetime.now(UTC), last)
    start = _aware(start, "start") if start is not None else datetime(1970, 1, 1, tzinfo=UTC)
    if start >= end:
        raise InvalidInput(f"materialize start ({start}) must be before end ({end})")
    folder = project_dir(settings, name)
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    views = []
    for view, (keys, _) in state_tables(declaration).items():
        key_list = ", ".join('"' + k.replace('"', '""') + '"' for k in keys)
        latest = con.execute(
            f"SELECT * FROM read_parquet($path) WHERE {FEATURE_TIMESTAMP} BETWEEN $start AND $end "
            f"QUALIFY row_number() OVER (PARTITION BY {key_list} ORDER BY {FEATURE_TIMESTAMP} DESC) = 1",
            {"path": str(folder / "data" / f"{view}.parquet"), "start": start, "end": end}).df()
        if latest.empty:
            continue
        write_states(settings, store, view, latest, f"materializing {view!r} of feature project {name!r}")
        views.append(view)
    info = ProjectMaterializeInfo(name, tuple(views), start, end, time.perf_counter() - started)
    (folder / MATERIALIZED_FILE).write_text(json.dumps(
        {"start": start.isoformat(), "end": end.isoformat(), "views": views, "seconds": info.seconds}, indent=2))
    publish(settings, name, folder, (MATERIALIZED_FILE,))
    _services.pop(str(folder), None)
    return info


def write_states(settings: Settings, store: FeatureStore, view: str, states: pd.DataFrame, doing: str,
                 cached: bool = False) -> None:
    """Write rows of a state table (its ``feature_timestamp`` as read back by DuckDB) to the online store;
    a store that refuses is an error saying what was being done (``doing``)."""
    states[FEATURE_TIMESTAMP] = pd.to_datetime(states[FEATURE_TIMESTAMP], utc=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            store.write_to_online_store(view, df=states, allow_registry_cache=cached)
    except Exception as exc:
        raise online_store_error(settings, exc, doing) from exc


# training frames --------------------------------------------------------------------------------
def _read(dataset: Dataset) -> pd.DataFrame:
    if isinstance(dataset, pd.DataFrame):
        return dataset.reset_index(drop=True)
    path = str(dataset)
    if not locations.exists(path):
        raise NotFound(f"dataset not found at {path}: pass a Parquet file or folder, or a DataFrame")
    try:
        return locations.read_parquet(path)
    except Exception as exc:
        raise InvalidInput(f"cannot read the dataset at {path} as Parquet: {exc}") from exc


def utc_times(values: pd.Series, what: str) -> pd.Series:
    try:
        stamps = pd.to_datetime(values)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} must hold timestamps: {exc}") from exc
    stamps = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    return stamps.astype("datetime64[ns, UTC]").dt.floor("us")


def _entity_rows(declaration: FeatureDeclaration, frame: pd.DataFrame, types: Mapping[str, str]) -> pd.DataFrame:
    """The entity frame Feast joins on: keys, a time unique per row, the request time and fields."""
    rows = pd.DataFrame({_ROW: np.arange(len(frame))})
    for key in declaration.entity_keys():
        rows[key] = frame[key].astype(str) if types.get(key, "").upper() == "VARCHAR" else frame[key]
    for column in declaration.request_fields():
        rows[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    if declaration.timestamp:
        stamps = utc_times(frame[declaration.timestamp], declaration.timestamp)
        rows[REQUEST_TIME] = stamps.astype("int64").to_numpy() // 1000
        rank = stamps.groupby(stamps).cumcount().to_numpy()
        if len(rank) and rank.max() >= 1000:
            raise InvalidInput(f"{rank.max() + 1} rows share one timestamp; at most 1000 can (Feast's point-in-time "
                               "join would merge them): spread or sample the rows")
    else:
        stamps = pd.Series(NO_TIME, index=frame.index).astype("datetime64[ns, UTC]")
        rows[REQUEST_TIME] = stamps.astype("int64").to_numpy() // 1000
        rank = np.arange(len(frame))
    # Feast collapses entity rows with equal keys and time; nanoseconds below the microsecond keep them apart
    rows[ENTITY_TIMESTAMP] = stamps.reset_index(drop=True) + pd.to_timedelta(rank, unit="ns")
    return rows


def _join_cost(declaration: FeatureDeclaration, folder: Path, rows: pd.DataFrame) -> np.ndarray:
    """Per entity row, the rows Feast's merge makes of it: its entity's feature rows, per view."""
    import duckdb

    cost = np.ones(len(rows), dtype=np.int64)
    con = duckdb.connect()
    tables = {h.view: h.keys for h in histories(declaration).values()}
    tables |= {v.name: declaration.entity(v.entity).keys for v in declaration.views if isinstance(v, ColumnsView)}
    for view, keys in tables.items():
        path = folder / "data" / f"{view}.parquet"
        cols = ", ".join('"' + k.replace('"', '""') + '"' for k in keys)
        counts = con.execute(f"SELECT {cols}, count(*) AS _n FROM read_parquet($p) GROUP BY ALL",
                             {"p": str(path)}).df()
        merged = rows[list(keys)].merge(counts, how="left", on=list(keys))["_n"]
        cost += merged.fillna(1).clip(lower=1).astype("int64").to_numpy()
    return cost


def _chunks(cost: np.ndarray, rows_per_chunk: int) -> list[np.ndarray]:
    if rows_per_chunk < 1:
        raise InvalidInput(f"rows_per_chunk must be >= 1, got {rows_per_chunk}")
    starts, total = [0], 0
    for i, c in enumerate(cost.tolist()):
        if total and total + c > rows_per_chunk:
            starts.append(i)
            total = 0
        total += c
    return [c for c in np.split(np.arange(len(cost)), starts[1:]) if len(c)]


def historical_features(settings: Settings, name: str, rows: pd.DataFrame,
                        rows_per_chunk: int = JOIN_ROWS_PER_CHUNK) -> pd.DataFrame:
    """Feast's ``get_historical_features`` of the project's service for prepared entity rows, in row order."""
    store = project_store(settings, name)
    declaration = load_declaration(settings, name)
    service = store.get_feature_service(declaration.service_name, allow_cache=True)
    features = declaration.feature_names()
    chunks = _chunks(_join_cost(declaration, project_dir(settings, name), rows), rows_per_chunk)
    parts = []
    for chunk in tqdm(chunks, desc="training frame", unit="chunk", disable=len(chunks) < 2):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parts.append(store.get_historical_features(entity_df=rows.iloc[chunk], features=service).to_df())
        except Exception as exc:
            raise WorkbenchError(f"Feast could not build the training frame of project {name!r}: {exc}") from exc
    joined = pd.concat(parts, ignore_index=True)
    if len(joined) != len(rows) or set(joined[_ROW]) != set(rows[_ROW]):
        raise WorkbenchError(f"Feast returned {len(joined)} rows for {len(rows)} entity rows")
    return joined.sort_values(_ROW).reset_index(drop=True)[[_ROW, *features]]


def state_tables(declaration: FeatureDeclaration) -> dict[str, tuple[tuple[str, ...], list[str]]]:
    """Per feature view of the project: its join keys and stored columns."""
    out = {h.view: (h.keys, [h.last_event, *[c for g in h.groups for c in g.stored()]])
           for h in histories(declaration).values()}
    for view in declaration.views:
        if isinstance(view, ColumnsView):
            out[view.name] = (declaration.entity(view.entity).keys, list(view.columns))
    return out


def duckdb_features(settings: Settings, name: str, rows: pd.DataFrame) -> pd.DataFrame:
    """What ``get_historical_features`` answers for prepared entity rows, by DuckDB's ASOF join.

    The same semantics as Feast's file store (per view, the latest row with the same keys at or before
    the row's time; no TTL) and the very transformation Feast runs (:func:`transform.evaluate` with the
    plans registered in the on-demand views), without Feast's in-memory merge of every entity row with
    every feature row of its entity. The integration tests hold the two equal.
    """
    import duckdb
    import pyarrow as pa
    import pyarrow.compute as pc

    from workbench.features.transform import evaluate

    declaration = load_declaration(settings, name)
    folder = project_dir(settings, name)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("entity_rows", rows.drop(columns=[ENTITY_TIMESTAMP], errors="ignore"))
    select, joins = ["r.*"], []
    for i, (table_name, (keys, columns)) in enumerate(state_tables(declaration).items()):
        path = str(folder / "data" / f"{table_name}.parquet").replace("'", "''")
        on = " AND ".join(f'r."{k}" = t{i}."{k}"' for k in keys)
        joins.append(f"ASOF LEFT JOIN (SELECT *, epoch_us({FEATURE_TIMESTAMP}) AS _fu FROM read_parquet('{path}')) "
                     f"AS t{i} ON {on} AND r.{REQUEST_TIME} >= t{i}._fu")
        select += [f't{i}."{c}" AS "{table_name}__{c}"' for c in columns]
    sql = f"SELECT {', '.join(select)} FROM entity_rows r {' '.join(joins)}"
    try:
        table = con.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        raise WorkbenchError(f"DuckDB could not join the feature tables of project {name!r}: {exc}") from exc
    table = table.take(pc.sort_indices(table[_ROW]))  # sorting here, not in SQL: no shuffling of list columns
    joined = table.to_pandas(types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_list(t) else None)
    plan, _ = _service_plan(declaration, histories(declaration))
    computed = evaluate(plan, joined) if plan else pd.DataFrame(index=joined.index)
    out = {_ROW: joined[_ROW].to_numpy()}
    for view in declaration.views:
        if isinstance(view, ColumnsView):
            out |= {c: joined[f"{view.name}__{c}"].to_numpy() for c in view.columns}
        else:
            out |= {c: computed[c].to_numpy() for c in view.feature_names()}
    out |= {c: computed[c].to_numpy() for c in declaration.feature_names(kinds=("on_demand",))}
    return pd.DataFrame(out)
    return out


def feature_frame(settings: Settings, name: str, dataset: Dataset, label: str | None = None,
                  keep: Sequence[str] = (), engine: str = "duckdb",
                  rows_per_chunk: int = JOIN_ROWS_PER_CHUNK) -> pd.DataFrame:
    """The point-in-time training frame of a project over a dataset, one row per dataset row, in order.

    Columns: ``keep`` (e.g. an id), the entity keys, the timestamp, the request columns, the service's
    features (each row at its own time) and ``label`` last. ``engine="duckdb"`` (default) joins with
    DuckDB and runs the project's on-demand transformation itself; ``"feast"`` asks Feast's
    ``get_historical_features`` (same values; its in-memory merge is quadratic in an entity's rows).
    """
    if engine not in ("duckdb", "feast"):
        raise InvalidInput(f"engine must be 'duckdb' or 'feast', got {engine!r}")
    declaration = load_declaration(settings, name)
    types = dict(_manifest(settings, name).get("types", {}))
    frame = _read(dataset)
    wanted = [*keep, *declaration.entity_keys(), *([declaration.timestamp] if declaration.timestamp else []),
              *declaration.request_columns, *([label] if label else [])]
    missing = [c for c in dict.fromkeys(wanted) if c not in frame.columns]
    if missing:
        raise InvalidInput(f"the dataset lacks columns {missing} that project {name!r} needs; its columns are "
                           f"{list(frame.columns)}")
    if frame.empty:
        raise InvalidInput("the dataset is empty: there is nothing to build a training frame for")
    clash = sorted(set(declaration.feature_names()) & set(wanted))
    if clash:
        raise InvalidInput(f"columns {clash} are both dataset columns and features of project {name!r}: drop them")
    rows = _entity_rows(declaration, frame, types)
    joined = historical_features(settings, name, rows, rows_per_chunk) if engine == "feast" else duckdb_features(
        settings, name, rows)
    out = frame[list(dict.fromkeys(c for c in wanted if c != label))].reset_index(drop=True)
    if declaration.timestamp:
        out[declaration.timestamp] = utc_times(out[declaration.timestamp], declaration.timestamp)
    out = pd.concat([out, joined.drop(columns=[_ROW])], axis=1)
    if label:
        out[label] = frame[label].to_numpy()
    return out


# online lookup ----------------------------------------------------------------------------------
_SERVICE_CACHE_S = 60.0
_services: dict[str, tuple[float, FeatureStore, Any, FeatureDeclaration, dict[str, str]]] = {}


def _ready(settings: Settings, name: str) -> tuple[FeatureStore, Any, FeatureDeclaration, dict[str, str]]:
    """Store, service, declaration and column types of a materialized project; kept for a minute."""
    key = str(project_dir(settings, name))
    store = project_store(settings, name)
    hit = _services.get(key)
    if hit and hit[1] is store and time.monotonic() - hit[0] < _SERVICE_CACHE_S:
        return hit[1], hit[2], hit[3], hit[4]
    declaration = load_declaration(settings, name)
    service = store.get_feature_service(declaration.service_name, allow_cache=False)
    if not (project_dir(settings, name) / MATERIALIZED_FILE).is_file():
        raise NotFound(f"feature project {name!r} was never materialized: run "
                       "workbench.features.materialize_features(settings, project) first")
    types = dict(_manifest(settings, name).get("types", {}))
    _services[key] = (time.monotonic(), store, service, declaration, types)
    return store, service, declaration, types


def _request_rows(rows: Any) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        return rows.reset_index(drop=True)
    if isinstance(rows, Mapping):
        return pd.DataFrame(dict(rows))
    if isinstance(rows, Sequence) and not isinstance(rows, str | bytes) and all(isinstance(r, Mapping) for r in rows):
        return pd.DataFrame(list(rows))
    raise InvalidInput("entity rows must be a DataFrame, a list of dicts or a dict of lists, got "
                       f"{type(rows).__name__}")


def lookup_online(settings: Settings, name: str, rows: Any, time_column: str | None = None) -> pd.DataFrame:
    """The service's features for each entity row at its request time, from the online store.

    ``rows`` carry the entity keys, the request fields the on-demand features read, and the request
    time in ``time_column`` (default: the project's timestamp column, else ``timestamp``); rows without
    a time are looked up at now. Answers one row per input row, in order: the keys, then the features.
    """
    store, service, declaration, types = _ready(settings, name)
    frame = _request_rows(rows)
    if frame.empty:
        raise InvalidInput("no entity rows: pass at least one")
    keys, fields = declaration.entity_keys(), declaration.request_fields()
    missing = [c for c in (*keys, *fields) if c not in frame.columns]
    if missing:
        raise InvalidInput(f"entity rows lack {missing}: project {name!r} looks up features by {keys} and reads "
                           f"{fields or 'no fields'} from the request")
    column = time_column or next((c for c in (declaration.timestamp, "timestamp") if c and c in frame.columns), None)
    now_us = int(time.time() * US)
    if column is None or column not in frame.columns:
        request_us = np.full(len(frame), now_us, dtype=np.int64)
    else:
        stamps = utc_times(frame[column], column)
        known = stamps.notna().to_numpy()
        request_us = np.full(len(frame), now_us, dtype=np.int64)
        request_us[known] = stamps[known].astype("int64").to_numpy() // 1000
    entity_rows: dict[str, list[Any]] = {REQUEST_TIME: request_us.tolist()}
    for key in keys:
        values = frame[key].tolist()
        try:
            entity_rows[key] = [str(v) for v in values] if types.get(key, "").upper() == "VARCHAR" else [
                int(v) for v in values]
        except (TypeError, ValueError) as exc:
            kind = "strings" if types.get(key, "").upper() == "VARCHAR" else "integers"
            raise InvalidInput(f"entity key {key!r} must hold {kind}: {exc}") from exc
    for name_ in fields:
        entity_rows[name_] = pd.to_numeric(frame[name_], errors="coerce").astype("float64").tolist()
    try:
        response = store.get_online_features(features=service, entity_rows=entity_rows).to_dict()
    except Exception as exc:
        raise online_store_error(settings, exc, f"looking up features of project {name!r}") from exc
    out: dict[str, Any] = {key: entity_rows[key] for key in keys}
    for feature in declaration.feature_names():
        values = response[feature]
        if all(v is None or isinstance(v, int | float | np.number) for v in values) and not all(
                isinstance(v, bool) for v in values if v is not None):
            integer = all(isinstance(v, int | np.integer) for v in values)
            out[feature] = np.array(values, dtype=np.int64) if integer else np.array(values, dtype=np.float64)
        else:
            out[feature] = values
    return pd.DataFrame(out)
