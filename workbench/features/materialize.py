"""Loading the latest feature values into the online store, so serving reads them in milliseconds."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound
from workbench.features.compute import read_manifest
from workbench.features.repo import MERCHANT_VIEW, USER_VIEW, feature_store, online_store_error


@dataclass(frozen=True)
class MaterializeInfo:
    """What was materialized, over which interval, and how long it took."""

    feature_views: tuple[str, ...]
    start: datetime
    end: datetime
    seconds: float


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise InvalidInput(f"{name} must be timezone-aware (UTC), got {value!r}")
    return value.astimezone(UTC)


def materialize(settings: Settings, end: datetime | None = None, start: datetime | None = None,
                feature_views: list[str] | None = None) -> MaterializeInfo:
    """Copy the latest row per entity with ``start <= event_timestamp < end`` into the online store.

    Defaults cover every computed row: ``start`` is the first transaction of the feature tables (the
    generated data may lie in the past, so Feast's own default of ``now - ttl`` would load nothing) and
    ``end`` is now, or just after the tables' snapshot time if that is later. Running it again is safe:
    the online store keeps one row per entity.
    """
    store = feature_store(settings)  # NotFound when the repository is not applied
    manifest = read_manifest(settings)
    as_of = datetime.fromisoformat(str(manifest["as_of"]))
    first = datetime.fromisoformat(str(manifest["first_event"]))
    end = _aware(end, "end") if end is not None else max(datetime.now(UTC), as_of + timedelta(seconds=1))
    start = _aware(start, "start") if start is not None else first - timedelta(seconds=1)
    if start >= end:
        raise InvalidInput(f"materialize start ({start}) must be before end ({end})")
    views = tuple(feature_views or (USER_VIEW, MERCHANT_VIEW))
    known = {v.name for v in store.list_feature_views(allow_cache=True)}
    unknown = sorted(set(views) - known)
    if unknown:
        raise NotFound(f"feature views {unknown} are not in the Feast registry; known: {sorted(known)}")
    started = time.perf_counter()
    try:
        store.materialize(start_date=start, end_date=end, feature_views=list(views))
    except Exception as exc:
        raise online_store_error(settings, exc, f"materializing {list(views)} from {start} to {end}") from exc
    return MaterializeInfo(views, start, end, time.perf_counter() - started)
