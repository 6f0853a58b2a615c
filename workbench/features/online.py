"""Online lookup: the latest materialized features for (user, merchant) pairs, as a model input."""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import pandas as pd

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound, ServiceUnavailable, WorkbenchError
from workbench.features.compute import fill_missing
from workbench.features.repo import FEATURE_SERVICE, feature_store, get_feature_service


def _ids(values: Iterable[int], name: str) -> list[int]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidInput(f"{name} must be a list of integer ids, got {values!r}")
    out: list[int] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise InvalidInput(f"{name} must hold integer ids, got {value!r}")
        out.append(int(value))
    return out


def online_features(settings: Settings, user_ids: Iterable[int], merchant_ids: Iterable[int],
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
    service = get_feature_service(store, feature_service, allow_cache=True)
    names: list[str] = []
    for projection in service.feature_view_projections:
        view = store.get_feature_view(projection.name, allow_registry_cache=True)
        if not view.materialization_intervals:
            raise NotFound(f"feature view {projection.name!r} was never materialized: run "
                           "workbench.features.materialize(settings) first")
        names += [f.name for f in projection.features]
    try:
        response = store.get_online_features(
            features=service, entity_rows={"user_id": users, "merchant_id": merchants})
    except ConnectionError as exc:
        raise ServiceUnavailable(f"the {settings.feast_online_store} online store does not answer "
                                 f"({settings.feast_online_store_connection}): {exc}") from exc
    except Exception as exc:
        raise WorkbenchError(f"Feast online lookup failed: {exc}") from exc
    frame = response.to_df()
    for name in names:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    frame = frame[["user_id", "merchant_id", *names]]
    return fill_missing(frame) if fill else frame
