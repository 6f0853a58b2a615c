"""Online lookup: the latest materialized features for (user, merchant) pairs, as a model input."""

from __future__ import annotations

import numbers
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound
from workbench.features.compute import COUNT_FEATURES, FILL_VALUES
from workbench.features.repo import FEATURE_SERVICE, feature_store, get_feature_service, online_store_error

if TYPE_CHECKING:
    from feast import FeatureStore


def _ids(values: Iterable[int], name: str) -> list[int]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidInput(f"{name} must be a list of integer ids, got {values!r}")
    out: list[int] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise InvalidInput(f"{name} must hold integer ids, got {value!r}")
        out.append(int(value))
    return out


_SERVICE_CACHE_S = 60.0  # as long as Feast caches the registry (cache_ttl_seconds in feature_store.yaml)
_services: dict[tuple[int, str], tuple[float, FeatureStore, Any, list[str]]] = {}


def _ready_service(store: FeatureStore, name: str) -> tuple[Any, list[str]]:
    """The service and its feature names, once all its views are materialized; kept for a minute,
    since turning registry protos into Feast objects costs more than the lookup itself."""
    key = (id(store), name)
    hit = _services.get(key)
    if hit and hit[1] is store and time.monotonic() - hit[0] < _SERVICE_CACHE_S:
        return hit[2], hit[3]
    service = get_feature_service(store, name, allow_cache=True)
    names: list[str] = []
    for projection in service.feature_view_projections:
        view = store.get_feature_view(projection.name, allow_registry_cache=True)
        if not view.materialization_intervals:
            raise NotFound(f"feature view {projection.name!r} was never materialized: run "
                           "workbench.features.materialize(settings) first")
        names += [f.name for f in projection.features]
    _services[key] = (time.monotonic(), store, service, names)
    return service, names


def online_features(settings: Settings, project: Any, entity_rows: Any = None,
                    feature_service: str = FEATURE_SERVICE, fill: bool = True,
                    time_column: str | None = None) -> pd.DataFrame:
    """Online features, two ways.

    ``online_features(settings, "<project>", entity_rows)``: the features of a feature project
    (:func:`workbench.features.apply_features`) for each entity row at its request time; see
    :func:`workbench.features.project.lookup_online`. This is what serving calls.

    ``online_features(settings, user_ids, merchant_ids, feature_service=...)``: the fraud repository
    of the first demo (``apply_repo``), kept until the notebook and serving move to the ``fraud``
    project (:func:`workbench.features.fraud_features`).
    """
    from workbench.features.declaration import FeatureDeclaration

    if isinstance(project, str | FeatureDeclaration):
        from workbench.features.project import lookup_online

        name = project.name if isinstance(project, FeatureDeclaration) else project
        if entity_rows is None:
            raise InvalidInput("online_features(settings, project, entity_rows): pass the entity rows to look up")
        return lookup_online(settings, name, entity_rows, time_column=time_column)
    return fraud_online_features(settings, project, entity_rows if entity_rows is not None else [],
                                 feature_service=feature_service, fill=fill)


def fraud_online_features(settings: Settings, user_ids: Iterable[int], merchant_ids: Iterable[int],
                          feature_service: str = FEATURE_SERVICE, fill: bool = True) -> pd.DataFrame:
    """One row per (user_ids[i], merchant_ids[i]) with the service's features, in request order.

    Ids the store has never seen get NaN features, which ``fill`` (the default, as in
    :func:`training_frame`) replaces with the no-history values of ``FILL_VALUES``: an unknown user
    looks to the model exactly like a first transaction looked in training. Empty or mismatched id
    lists raise InvalidInput; a store never materialized raises NotFound rather than answering NaN
    for everyone.
    """
    users, merchants = _ids(user_ids, "user_ids"), _ids(merchant_ids, "merchant_ids")
    if not users:
        raise InvalidInput("user_ids is empty: pass at least one (user_id, merchant_id) pair")
    if len(users) != len(merchants):
        raise InvalidInput(f"user_ids and merchant_ids pair up one to one; got {len(users)} users and "
                           f"{len(merchants)} merchants")
    store = feature_store(settings)
    service, names = _ready_service(store, feature_service)
    try:
        response = store.get_online_features(
            features=service, entity_rows={"user_id": users, "merchant_id": merchants})
    except Exception as exc:
        raise online_store_error(settings, exc, "looking up online features") from exc
    values = response.to_dict()
    columns: dict[str, np.ndarray] = {"user_id": np.asarray(users, dtype=np.int64),
                                      "merchant_id": np.asarray(merchants, dtype=np.int64)}
    for name in names:  # built with numpy: this runs per request, where pandas calls cost milliseconds
        column = np.array(values[name], dtype=np.float64)  # None (unknown id) becomes NaN
        if fill and name in FILL_VALUES:
            column[np.isnan(column)] = FILL_VALUES[name]
            columns[name] = column.astype(np.int64) if name in COUNT_FEATURES else column
        else:
            columns[name] = column
    return pd.DataFrame(columns)
