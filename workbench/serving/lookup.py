"""Where a model's inputs come from: the request, and a feature service when the model has one.

A model without a feature service (no ``workbench.feature_service`` tag on its version or run) takes every
signature column from the request and never touches Feast. A model with one gets a
:class:`FeatureLookup`: the entity keys (and request-time fields) the request must carry, the columns the
service fills from the online store, and any columns derived from the event time. The fraud feature
service is one such configuration (:class:`FraudLookup`: ids ``user_id``/``merchant_id``, ``amount`` from
the request, ``hour_of_day``/``is_night`` from the timestamp exactly as the training frame derives them,
the rest from Feast with the training frame's fill values); any other service is the feature project
that serves it (:class:`ProjectLookup`, over :func:`workbench.features.lookup_online`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound, WorkbenchError
from workbench.serving.payload import REQUEST_ID, TIMESTAMP, RequestSchema, Row
from workbench.serving.signature import Field, ModelSignature

TAG_FEATURE_SERVICE = "workbench.feature_service"
MAX_ID = 2**63 - 1
NIGHT_HOURS = range(0, 6)  # 00:00-05:59 UTC, as workbench.features.training.entity_frame


@dataclass
class FeatureLookup:
    """A feature service as the serving layer sees it (subclasses do the lookup)."""

    settings: Settings
    service: str
    entity_fields: tuple[Field, ...] = ()
    request_fields: tuple[Field, ...] = ()  # request-time inputs the service declares
    provides: tuple[str, ...] = ()  # model inputs read from the online store
    derived: tuple[str, ...] = ()  # model inputs computed from the event time
    time_field: str = TIMESTAMP  # the request field holding the event time

    def lookup(self, rows: Sequence[Row]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def derive(self, name: str, times: Sequence[datetime]) -> np.ndarray:
        raise NotImplementedError(name)


class FraudLookup(FeatureLookup):
    """The built-in fraud service: two integer ids, the amount, and the time of the transaction."""

    @classmethod
    def open(cls, settings: Settings, service: str, provides: Sequence[str] | None = None) -> FraudLookup:
        from workbench.features import REQUEST_FEATURES

        ids = tuple(Field(name, "long", minimum=0, description="entity key") for name in ("user_id", "merchant_id"))
        names = tuple(provides) if provides is not None else tuple(_service_features(settings, service))
        return cls(settings, service, entity_fields=ids,
                   request_fields=(Field("amount", "double", minimum=0.0),),
                   provides=names, derived=tuple(n for n in REQUEST_FEATURES if n != "amount"))

    def lookup(self, rows: Sequence[Row]) -> dict[str, np.ndarray]:
        from workbench.features import fraud_online_features

        frame = fraud_online_features(self.settings, [r.values["user_id"] for r in rows],
                                      [r.values["merchant_id"] for r in rows], feature_service=self.service)
        missing = [c for c in self.provides if c not in frame.columns]
        if missing:
            raise WorkbenchError(f"feature service {self.service!r} does not provide {missing}")
        return {name: frame[name].to_numpy() for name in self.provides}

    def derive(self, name: str, times: Sequence[datetime]) -> np.ndarray:
        hours = np.array([t.hour for t in times], dtype=np.int64)
        if name == "hour_of_day":
            return hours
        if name == "is_night":
            return np.isin(hours, list(NIGHT_HOURS)).astype(np.int64)
        raise KeyError(name)


class ProjectLookup(FeatureLookup):
    """A feature project's service (:mod:`workbench.features.project`): its entity keys and the request
    columns and fields it declares come from the request, its features from the project's online store at
    the request's time (the project's timestamp column, else ``timestamp``)."""

    project: str = ""

    @classmethod
    def open(cls, settings: Settings, service: str, signature: ModelSignature | None = None) -> ProjectLookup:
        from workbench.features import feature_project, project_for_service

        name = project_for_service(settings, service)
        project = feature_project(settings, name)
        own = {f.name: f for f in signature.inputs} if signature else {}
        keys = tuple(own.get(k, Field(k, "key", description="entity key")) for k in project.entity_keys)
        fields: list[Field] = []
        for column in (*project.request_columns, *project.request_fields):
            if column not in [f.name for f in fields] and column not in project.entity_keys:
                fields.append(own.get(column, Field(column, "double")))
        lookup = cls(settings, service, entity_fields=keys, request_fields=tuple(fields),
                     provides=tuple(project.features), time_field=project.timestamp or TIMESTAMP)
        lookup.project = name
        return lookup

    def lookup(self, rows: Sequence[Row]) -> dict[str, np.ndarray]:
        import pandas as pd

        from workbench.features import lookup_online

        names = [f.name for f in (*self.entity_fields, *self.request_fields)]
        frame = pd.DataFrame({name: [r.values.get(name) for r in rows] for name in names})
        frame[_WHEN] = pd.to_datetime([r.timestamp for r in rows], utc=True)
        found = lookup_online(self.settings, self.project, frame, time_column=_WHEN)
        missing = [c for c in self.provides if c not in found.columns]
        if missing:
            raise WorkbenchError(f"feature project {self.project!r} did not return {missing}")
        return {name: found[name].to_numpy() for name in self.provides}


_WHEN = "__workbench_request_time"


def _service_features(settings: Settings, service: str) -> list[str]:
    from workbench.features.repo import feature_store, get_feature_service

    try:
        found = get_feature_service(feature_store(settings), service)
    except NotFound:
        raise
    except WorkbenchError as exc:
        raise NotFound(f"feature service {service!r}: {exc}") from exc
    return [f.name for projection in found.feature_view_projections for f in projection.features]


def open_lookup(settings: Settings, service: str | None, signature: ModelSignature | None = None,
                provides: Sequence[str] | None = None) -> FeatureLookup | None:
    """The lookup of ``service``, or None for a model without one (then Feast is never touched).

    The first fraud service (``fraud_model_v1``, the global fraud repository) is :class:`FraudLookup`;
    every other service is the feature project that serves it (NotFound names the known ones).
    """
    if not service:
        return None
    from workbench.features import FEATURE_SERVICE

    if service == FEATURE_SERVICE:
        return FraudLookup.open(settings, service, provides)
    return ProjectLookup.open(settings, service, signature)


def request_schema(signature: ModelSignature, lookup: FeatureLookup | None, uri: str = "the model") -> RequestSchema:
    """What each instance must carry: the signature's columns that nobody else fills, plus the service's keys.

    With a feature service every signature column must come from the request-time fields the service
    declares, its online features, or the event time; anything else is InvalidInput at deploy.
    """
    if lookup is None:
        return RequestSchema(signature.inputs)
    extras = (REQUEST_ID, lookup.time_field)
    provided = set(lookup.provides) | set(lookup.derived)
    declared = {f.name for f in (*lookup.request_fields, *lookup.entity_fields)}
    missing = [f.name for f in signature.inputs if f.name not in provided and f.name not in declared]
    if missing:
        raise InvalidInput(f"model {uri} needs inputs {missing} that neither the request "
                           f"({[f.name for f in (*lookup.entity_fields, *lookup.request_fields)]}) nor feature service "
                           f"{lookup.service!r} provides; deploy it with the feature service it was trained on")
    fields: list[Field] = []
    seen: set[str] = set()
    by_name = {f.name: f for f in signature.inputs}
    for f in (*lookup.entity_fields, *lookup.request_fields):
        if f.name in seen:
            continue
        chosen = by_name.get(f.name, f)  # the model's own type wins for a column it takes
        if f.minimum is not None:
            chosen = chosen.with_minimum(f.minimum)
        fields.append(chosen)
        seen.add(f.name)
    return RequestSchema(tuple(fields), extras)
