"""Declaring features for your own dataset: entities, feature views, on-demand features, a service.

A :class:`FeatureDeclaration` is data, not code: a notebook builds one from these dataclasses (or
``FeatureDeclaration.from_dict`` reads one from parameters or JSON), and
:func:`workbench.features.apply_features` turns it into a Feast project of its own::

    FeatureDeclaration(
        name="churn", timestamp="ts",
        entities=[Entity("customer", keys=["customer_id"])],
        views=[WindowedView("customer_activity", entity="customer", aggregates=[
                   Aggregate("count", "7d"), Aggregate("mean", "30d", column="basket value")]),
               ColumnsView("customer_profile", entity="customer", columns=["plan", "tenure"])],
        on_demand=[SecondsSinceLast("customer"),
                   Relative("basket_vs_mean", value="basket value", to="customer_basket value_mean_30d")],
        request_columns=["basket value", "channel"],
    )

What each feature of a row at time ``t`` means (the same in training frames and online lookups):

* a **windowed aggregate** (``count``, ``sum``, ``mean``, ``std``, ``min``, ``max`` over ``10m``, ``1h``,
  ``1d``, ``7d``, ``30d``, ... or ``ever``) covers the entity's rows strictly before ``t`` whose time is
  at or after ``floor(t, resolution) - window``: windows slide in steps of ``resolution`` (by default
  about a 24th of the window: 10 s for 10 min, 1 min for 1 h, 1 h for 1 d, 6 h for 7 d, 1 d for 30 d).
  That step is what lets a serving replica age a window exactly from a bounded state: the online store
  keeps per-step partial aggregates, and the request time decides which steps are still inside;
* a **precomputed column** is the value in the entity's latest row strictly before ``t`` (without a
  timestamp: the entity's one row);
* an **on-demand feature** is computed from the request (its time and fields) and the entity state:
  :class:`SecondsSinceLast`, :class:`Relative` (a ratio or difference of two values), :class:`RequestTime`.

Every check that can be made without the dataset is made on construction; :meth:`FeatureDeclaration.check`
adds those against the dataset's columns and types. Each is an :class:`InvalidInput` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from workbench.errors import InvalidInput

AGGREGATES = ("count", "sum", "mean", "std", "min", "max")
EVER = "ever"
NO_HISTORY_GAP_S = 30 * 86_400.0
"""Default :class:`SecondsSinceLast` of an entity's first row (no earlier one): 30 days."""
_UNITS_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 7 * 86_400}
_STEPS_S = (1, 5, 10, 30, 60, 300, 600, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200, 86_400)
_MIN_STEPS = 24
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_PROJECT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RESERVED_PROJECTS = ("data", "frames")
"""Folder names of the package's own fraud repository under ``feast_dir``: not usable as project names."""
RESERVED_COLUMNS = ("event_timestamp", "request_time_us", "feature_timestamp")
"""Column names the generated Feast objects use for themselves; no feature may be called so."""


def parse_duration(text: str, what: str) -> int:
    """Seconds in ``"10m"``, ``"1h"``, ``"7d"``, ``"2w"``, ``"30s"``; InvalidInput naming ``what`` otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text) if isinstance(text, str) else None
    if not match or int(match.group(1)) <= 0:
        raise InvalidInput(f"{what} must be a duration such as '10m', '1h', '1d', '7d' or '30d' "
                           f"(or 'ever' for a window), got {text!r}")
    return int(match.group(1)) * _UNITS_S[match.group(2)]


def default_resolution_s(window_s: int) -> int:
    """The coarsest step of ``_STEPS_S`` that divides the window into at least 24 steps (else 1 s)."""
    fits = [s for s in _STEPS_S if window_s % s == 0 and window_s // s >= _MIN_STEPS]
    return max(fits) if fits else 1


def _names(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Iterable) or not all(isinstance(v, str) and v for v in value):
        raise InvalidInput(f"{what} must be a list of column names, got {value!r}")
    return tuple(value)


def _identifier(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidInput(f"{what} must be a name of letters, digits and underscores starting with a letter, "
                           f"got {value!r}")
    return value


@dataclass(frozen=True)
class Entity:
    """What features are *about*: one or more key columns of the dataset (``("user_id", "country")``)."""

    name: str
    keys: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        _identifier(self.name, "Entity.name")
        keys = _names(self.keys, f"entity {self.name!r} keys")
        if not keys or len(set(keys)) != len(keys):
            raise InvalidInput(f"entity {self.name!r} needs one or more distinct key columns, got {list(keys)}")
        object.__setattr__(self, "keys", keys)


@dataclass(frozen=True)
class Aggregate:
    """One windowed aggregate of a :class:`WindowedView`: ``function`` of ``column`` over ``window``.

    ``column`` may be None for ``count`` (count the entity's rows). ``fill`` is the value of ``mean``,
    ``std``, ``min`` and ``max`` over an empty window (``std`` needs two rows); ``count`` and ``sum`` of
    nothing are 0. ``name`` defaults to ``<entity>_<column or 'rows'>_<function>_<window>``.
    """

    function: str
    window: str
    column: str | None = None
    name: str | None = None
    resolution: str | None = None
    fill: float = 0.0

    def __post_init__(self) -> None:
        if self.function not in AGGREGATES:
            raise InvalidInput(f"unknown aggregate {self.function!r}: use one of {list(AGGREGATES)}")
        if self.window != EVER:
            window_s = parse_duration(self.window, f"the window of aggregate {self.function!r}")
            if self.resolution is not None:
                step = parse_duration(self.resolution, f"the resolution of aggregate {self.function!r}")
                if window_s % step:
                    raise InvalidInput(f"resolution {self.resolution!r} must divide window {self.window!r} "
                                       "evenly (e.g. '1h' for '1d')")
        elif self.resolution is not None:
            raise InvalidInput("an 'ever' window has no resolution: drop resolution=")
        if self.column is None and self.function != "count":
            raise InvalidInput(f"aggregate {self.function!r} over {self.window!r} needs column=: only 'count' "
                               "counts rows without a column")
        if self.column is not None and (not isinstance(self.column, str) or not self.column):
            raise InvalidInput(f"aggregate column must be a column name, got {self.column!r}")
        if self.name is not None:
            _identifier(self.name, "Aggregate.name")
        if not isinstance(self.fill, int | float) or isinstance(self.fill, bool):
            raise InvalidInput(f"Aggregate.fill must be a number, got {self.fill!r}")

    @property
    def window_s(self) -> int | None:
        """Window length in seconds; None for ``ever``."""
        return None if self.window == EVER else parse_duration(self.window, "window")

    @property
    def resolution_s(self) -> int | None:
        if self.window_s is None:
            return None
        return parse_duration(self.resolution, "resolution") if self.resolution else default_resolution_s(
            self.window_s)

    def feature_name(self, entity: str) -> str:
        if self.name:
            return self.name
        column = re.sub(r"\W+", "_", self.column).strip("_") if self.column else "rows"
        return f"{entity}_{column or 'col'}_{self.function}_{self.window}"


@dataclass(frozen=True)
class WindowedView:
    """Aggregates per entity over the dataset's timestamp, point in time (see the module docstring)."""

    name: str
    entity: str
    aggregates: tuple[Aggregate, ...]
    description: str = ""

    def __post_init__(self) -> None:
        _identifier(self.name, "WindowedView.name")
        aggregates = tuple(a if isinstance(a, Aggregate) else Aggregate(**a) for a in self.aggregates)
        if not aggregates:
            raise InvalidInput(f"windowed view {self.name!r} declares no aggregates")
        object.__setattr__(self, "aggregates", aggregates)

    def feature_names(self) -> list[str]:
        return [a.feature_name(self.entity) for a in self.aggregates]


@dataclass(frozen=True)
class ColumnsView:
    """Precomputed columns of the dataset as features of an entity: the value in the entity's latest row
    strictly before the request (without a timestamp, each entity must have one row)."""

    name: str
    entity: str
    columns: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        _identifier(self.name, "ColumnsView.name")
        columns = _names(self.columns, f"columns of view {self.name!r}")
        if not columns:
            raise InvalidInput(f"columns view {self.name!r} declares no columns")
        object.__setattr__(self, "columns", columns)

    def feature_names(self) -> list[str]:
        return list(self.columns)


@dataclass(frozen=True)
class SecondsSinceLast:
    """On demand: seconds from the entity's latest earlier row to the request time (``fill`` without one)."""

    entity: str
    name: str | None = None
    fill: float = NO_HISTORY_GAP_S

    def __post_init__(self) -> None:
        if self.name is not None:
            _identifier(self.name, "SecondsSinceLast.name")

    def feature_name(self) -> str:
        return self.name or f"{self.entity}_seconds_since_last"


@dataclass(frozen=True)
class Relative:
    """On demand: ``value / to`` (``how="ratio"``) or ``value - to`` (``"difference"``), where each is a
    request column or another declared feature (e.g. the amount against the user's 7-day mean).
    ``fill`` replaces a missing operand or a division by zero."""

    name: str
    value: str
    to: str
    how: Literal["ratio", "difference"] = "ratio"
    fill: float = 0.0

    def __post_init__(self) -> None:
        _identifier(self.name, "Relative.name")
        if self.how not in ("ratio", "difference"):
            raise InvalidInput(f"Relative {self.name!r}: how must be 'ratio' or 'difference', got {self.how!r}")

    def feature_name(self) -> str:
        return self.name


TIME_PARTS = ("hour", "day_of_week", "is_weekend")


@dataclass(frozen=True)
class RequestTime:
    """On demand: a part of the request time in UTC (``hour`` 0-23, ``day_of_week`` 0 = Monday,
    ``is_weekend`` 0/1)."""

    name: str
    part: str = "hour"

    def __post_init__(self) -> None:
        _identifier(self.name, "RequestTime.name")
        if self.part not in TIME_PARTS:
            raise InvalidInput(f"RequestTime {self.name!r}: part must be one of {list(TIME_PARTS)}, got {self.part!r}")

    def feature_name(self) -> str:
        return self.name


View = WindowedView | ColumnsView
OnDemand = SecondsSinceLast | Relative | RequestTime
_VIEW_KINDS: dict[str, type] = {"windowed": WindowedView, "columns": ColumnsView}
_ON_DEMAND_KINDS: dict[str, type] = {"seconds_since_last": SecondsSinceLast, "relative": Relative,
                                     "request_time": RequestTime}


@dataclass(frozen=True)
class FeatureDeclaration:
    """A feature project: its name (the Feast project, its folder under ``feast_dir``), the dataset's
    ``timestamp`` column (None: no time, so no windows), entities, views, on-demand features, the
    ``request_columns`` a scoring request carries and the model uses as they are, and the ``service``
    (default: the project name) that a model is trained on and served with."""

    name: str
    entities: tuple[Entity, ...]
    views: tuple[View, ...] = ()
    on_demand: tuple[OnDemand, ...] = ()
    request_columns: tuple[str, ...] = ()
    timestamp: str | None = None
    service: str | None = None
    description: str = ""
    _kinds: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _PROJECT.match(self.name) or self.name in RESERVED_PROJECTS:
            raise InvalidInput(f"feature project name must be lower-case letters, digits and underscores, "
                               f"starting with a letter, not {list(RESERVED_PROJECTS)}; got {self.name!r}")
        entities = tuple(e if isinstance(e, Entity) else Entity(**e) for e in self.entities)
        object.__setattr__(self, "entities", entities)
        object.__setattr__(self, "views", tuple(self.views))
        object.__setattr__(self, "on_demand", tuple(self.on_demand))
        object.__setattr__(self, "request_columns", _names(self.request_columns, "request_columns"))
        if self.service is not None:
            _identifier(self.service, "FeatureDeclaration.service")
        if self.timestamp is not None and (not isinstance(self.timestamp, str) or not self.timestamp):
            raise InvalidInput(f"timestamp must be a column name or None, got {self.timestamp!r}")
        self._check_structure()

    # structure ------------------------------------------------------------------------------------
    def _check_structure(self) -> None:
        by_name = {}
        for entity in self.entities:
            if entity.name in by_name:
                raise InvalidInput(f"entity {entity.name!r} is declared twice")
            by_name[entity.name] = entity
        names: dict[str, str] = {}

        def claim(name: str, where: str) -> None:
            if name in names:
                raise InvalidInput(f"duplicate feature name {name!r}: {names[name]} and {where} both produce it; "
                                   "rename one (name=...)")
            if name in RESERVED_COLUMNS:
                raise InvalidInput(f"{where} may not be called {name!r}: the name is reserved for the Feast project")
            names[name] = where

        view_names = set()
        for view in self.views:
            if not isinstance(view, WindowedView | ColumnsView):
                raise InvalidInput(f"views holds {view!r}: use WindowedView or ColumnsView")
            if view.name in view_names or view.name in {f"{e}_history" for e in by_name}:
                raise InvalidInput(f"view name {view.name!r} is used twice (or clashes with a generated "
                                   "'<entity>_history' view)")
            view_names.add(view.name)
            if view.entity not in by_name:
                raise InvalidInput(f"view {view.name!r} is about entity {view.entity!r}, which is not declared; "
                                   f"declared: {sorted(by_name)}")
            if isinstance(view, WindowedView) and self.timestamp is None:
                windows = sorted({a.window for a in view.aggregates})
                raise InvalidInput(f"windowed view {view.name!r} aggregates over {windows}, but the declaration has "
                                   "no timestamp: set FeatureDeclaration(timestamp='<time column>') or use a "
                                   "ColumnsView")
            for feature in view.feature_names():
                claim(feature, f"view {view.name!r}")
        for column in self.request_columns:
            claim(column, "request_columns")
        for item in self.on_demand:
            if not isinstance(item, SecondsSinceLast | Relative | RequestTime):
                raise InvalidInput(f"on_demand holds {item!r}: use SecondsSinceLast, Relative or RequestTime")
            if isinstance(item, SecondsSinceLast):
                if item.entity not in by_name:
                    raise InvalidInput(f"SecondsSinceLast is about entity {item.entity!r}, which is not declared; "
                                       f"declared: {sorted(by_name)}")
                if self.timestamp is None:
                    raise InvalidInput(f"SecondsSinceLast({item.entity!r}) needs the dataset's timestamp: set "
                                       "FeatureDeclaration(timestamp='<time column>')")
            if isinstance(item, RequestTime) and self.timestamp is None:
                raise InvalidInput(f"RequestTime {item.name!r} needs the dataset's timestamp (training rows have no "
                                   "time otherwise): set FeatureDeclaration(timestamp='<time column>')")
            claim(item.feature_name(), f"on-demand feature {item.feature_name()!r}")
        for item in self.on_demand:
            if isinstance(item, Relative):
                for operand in (item.value, item.to):
                    if operand not in names or names[operand].startswith("on-demand"):
                        raise InvalidInput(f"Relative {item.name!r} refers to {operand!r}, which is neither a "
                                           "request column nor a view's feature; declare it first")
        object.__setattr__(self, "_kinds", names)

    # what it declares -----------------------------------------------------------------------------
    @property
    def service_name(self) -> str:
        return self.service or self.name

    def entity(self, name: str) -> Entity:
        for entity in self.entities:
            if entity.name == name:
                return entity
        raise InvalidInput(f"entity {name!r} is not declared; declared: {[e.name for e in self.entities]}")

    def entity_keys(self) -> list[str]:
        """Every key column of every entity the service needs, in declaration order, once."""
        used = {v.entity for v in self.views} | {o.entity for o in self.on_demand if isinstance(o, SecondsSinceLast)}
        keys: list[str] = []
        for entity in self.entities:
            if entity.name in used:
                keys += [k for k in entity.keys if k not in keys]
        return keys

    def feature_names(self, kinds: Sequence[str] = ("windowed", "columns", "on_demand")) -> list[str]:
        """The service's features in order: views as declared, then the on-demand ones."""
        out: list[str] = []
        for view in self.views:
            kind = "windowed" if isinstance(view, WindowedView) else "columns"
            if kind in kinds:
                out += view.feature_names()
        if "on_demand" in kinds:
            out += [o.feature_name() for o in self.on_demand]
        return out

    def model_inputs(self) -> list[str]:
        """What a model trained on this project takes: request columns, then the service's features."""
        return [*self.request_columns, *self.feature_names()]

    def request_fields(self) -> list[str]:
        """Request columns the on-demand features read (they must come with every lookup)."""
        fields: list[str] = []
        for item in self.on_demand:
            if isinstance(item, Relative):
                fields += [c for c in (item.value, item.to) if c in self.request_columns and c not in fields]
        return fields

    # against a dataset ----------------------------------------------------------------------------
    def check(self, columns: Mapping[str, str]) -> None:
        """Check against a dataset's columns (name -> DuckDB type); InvalidInput naming what to fix."""
        cols = list(columns)
        for entity in self.entities:
            for key in entity.keys:
                if key not in columns:
                    raise InvalidInput(f"entity {entity.name!r}: key column {key!r} is not in the dataset; its "
                                       f"columns are {cols}")
                if not (_is_integer(columns[key]) or columns[key].upper() == "VARCHAR"):
                    raise InvalidInput(f"entity {entity.name!r}: key column {key!r} holds {columns[key]}; keys must "
                                       "be integers or strings")
        if self.timestamp is not None:
            if self.timestamp not in columns:
                raise InvalidInput(f"the timestamp column {self.timestamp!r} is not in the dataset; its columns "
                                   f"are {cols}")
            if not columns[self.timestamp].upper().startswith(("TIMESTAMP", "DATE")):
                raise InvalidInput(f"the timestamp column {self.timestamp!r} holds {columns[self.timestamp]}, not "
                                   "timestamps: convert it (pd.to_datetime) or declare another column")
        for column in self.request_columns:
            if column not in columns:
                raise InvalidInput(f"request column {column!r} is not in the dataset; its columns are {cols}")
        for view in self.views:
            if isinstance(view, ColumnsView):
                for column in view.columns:
                    if column not in columns:
                        raise InvalidInput(f"columns view {view.name!r}: column {column!r} is not in the dataset; "
                                           f"its columns are {cols}")
                    if feast_type_name(columns[column]) is None:
                        raise InvalidInput(f"columns view {view.name!r}: column {column!r} holds {columns[column]}; "
                                           "only numbers, booleans and strings can be features")
                continue
            for aggregate in view.aggregates:
                if aggregate.column is None:
                    continue
                if aggregate.column not in columns:
                    raise InvalidInput(f"windowed view {view.name!r}: aggregate column {aggregate.column!r} is not "
                                       f"in the dataset; its columns are {cols}")
                if not (_is_numeric(columns[aggregate.column]) or columns[aggregate.column].upper() == "BOOLEAN"):
                    raise InvalidInput(f"windowed view {view.name!r}: column {aggregate.column!r} holds "
                                       f"{columns[aggregate.column]}; aggregates need numbers or booleans")
        for item in self.on_demand:
            if isinstance(item, Relative):
                for operand in (item.value, item.to):
                    if operand in self.request_columns and not _is_numeric(columns[operand]):
                        raise InvalidInput(f"Relative {item.name!r}: request column {operand!r} holds "
                                           f"{columns[operand]}, not numbers")
                    if operand in self.feature_names(kinds=("columns",)) and not _is_numeric(columns[operand]):
                        raise InvalidInput(f"Relative {item.name!r}: column {operand!r} holds {columns[operand]}, "
                                           "not numbers")

    # serialization --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "timestamp": self.timestamp, "service": self.service,
            "description": self.description, "request_columns": list(self.request_columns),
            "entities": [{**asdict(e), "keys": list(e.keys)} for e in self.entities],
            "views": [], "on_demand": [],
        }
        for view in self.views:
            kind = "windowed" if isinstance(view, WindowedView) else "columns"
            data = asdict(view)
            if isinstance(view, ColumnsView):
                data["columns"] = list(view.columns)
            out["views"].append({"kind": kind, **data})
        for item in self.on_demand:
            kind = next(k for k, cls in _ON_DEMAND_KINDS.items() if isinstance(item, cls))
            out["on_demand"].append({"kind": kind, **asdict(item)})
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureDeclaration:
        """The inverse of :meth:`to_dict` (also what a notebook parameter in JSON looks like)."""
        try:
            body = dict(data)
            views = []
            for view in body.pop("views", []):
                view = dict(view)
                kind = view.pop("kind", "windowed")
                if kind not in _VIEW_KINDS:
                    raise InvalidInput(f"view kind must be one of {sorted(_VIEW_KINDS)}, got {kind!r}")
                if kind == "windowed":
                    view["aggregates"] = tuple(Aggregate(**a) for a in view.get("aggregates", ()))
                views.append(_VIEW_KINDS[kind](**view))
            on_demand = []
            for item in body.pop("on_demand", []):
                item = dict(item)
                kind = item.pop("kind", "")
                if kind not in _ON_DEMAND_KINDS:
                    raise InvalidInput(f"on-demand kind must be one of {sorted(_ON_DEMAND_KINDS)}, got {kind!r}")
                on_demand.append(_ON_DEMAND_KINDS[kind](**item))
            entities = tuple(Entity(**e) for e in body.pop("entities", ()))
            return cls(entities=entities, views=tuple(views), on_demand=tuple(on_demand), **body)
        except TypeError as exc:  # an unknown or missing field
            raise InvalidInput(f"invalid feature declaration: {exc}") from exc


_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT")


def _is_integer(duck_type: str) -> bool:
    return duck_type.upper() in _INTEGER_TYPES


def _is_numeric(duck_type: str) -> bool:
    upper = duck_type.upper()
    return _is_integer(upper) or upper in ("FLOAT", "DOUBLE", "REAL") or upper.startswith("DECIMAL")


def feast_type_name(duck_type: str) -> str | None:
    """The Feast type of a precomputed column of this DuckDB type (Int64, Float64, Bool, String), or None."""
    upper = duck_type.upper()
    if _is_integer(upper):
        return "Int64"
    if _is_numeric(upper):
        return "Float64"
    if upper == "BOOLEAN":
        return "Bool"
    if upper == "VARCHAR":
        return "String"
    return None
