"""Declared schemas and their validation, computed by DuckDB over the files themselves.

A dataset version is only useful downstream if it keeps its promises (ids unique, amounts positive,
labels 0/1). Validation runs as a handful of aggregate queries over Parquet/CSV, so a 10M-row dataset
is checked without ever being loaded into pandas, and each broken rule names the column, how many rows
break it and a few example rows, which is what someone fixing the data needs.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast, get_args

import numpy as np
import pandas as pd

from workbench.data import _source
from workbench.data._source import Source, quote_ident
from workbench.errors import InvalidInput, ValidationFailed

DType = Literal["int", "float", "string", "bool", "timestamp"]
DTYPES: tuple[str, ...] = get_args(DType)
Rule = Literal["missing_column", "unexpected_column", "wrong_type", "nulls", "below_min", "above_max",
               "duplicates", "not_allowed"]
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class ColumnSpec:
    """What one column promises. ``min``/``max`` are inclusive bounds; timestamps take ISO strings."""

    name: str
    dtype: DType
    nullable: bool = True
    min: Any = None
    max: Any = None
    unique: bool = False
    allowed: Sequence[Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInput(f"a column spec needs a non-empty name, got {self.name!r}")
        if self.dtype not in DTYPES:
            raise InvalidInput(f"column {self.name!r}: dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.allowed is not None:
            if isinstance(self.allowed, str | bytes) or not isinstance(self.allowed, Iterable):
                raise InvalidInput(f"column {self.name!r}: allowed must be a list of values")
            object.__setattr__(self, "allowed", tuple(self.allowed))
        for bound in ("min", "max"):
            value = getattr(self, bound)
            if value is not None and self.dtype in ("string", "bool"):
                raise InvalidInput(f"column {self.name!r}: {bound} applies to numbers and timestamps only")
            if value is not None and self.dtype == "timestamp":
                object.__setattr__(self, bound, _iso(value, f"column {self.name!r}: {bound}"))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["allowed"] = list(self.allowed) if self.allowed is not None else None
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSpec:
        known = {"name", "dtype", "nullable", "min", "max", "unique", "allowed"}
        unknown = set(data) - known
        if unknown:
            raise InvalidInput(f"unknown keys in column spec {data.get('name')!r}: {sorted(unknown)}")
        return cls(**cast(dict[str, Any], dict(data)))


def _iso(value: Any, what: str) -> str:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{what} must be a timestamp such as '2026-01-01T00:00:00Z', got {value!r}") from exc
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.isoformat()


@dataclass(frozen=True)
class Schema:
    """An ordered set of column specs; extra columns are tolerated unless ``allow_extra_columns=False``."""

    columns: tuple[ColumnSpec, ...]
    allow_extra_columns: bool = True
    name: str = ""

    def __init__(self, columns: Iterable[ColumnSpec], allow_extra_columns: bool = True, name: str = "") -> None:
        cols = tuple(columns)
        names = [c.name for c in cols]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidInput(f"schema declares columns more than once: {dupes}")
        object.__setattr__(self, "columns", cols)
        object.__setattr__(self, "allow_extra_columns", allow_extra_columns)
        object.__setattr__(self, "name", name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __getitem__(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "allow_extra_columns": self.allow_extra_columns,
                "columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        if not isinstance(data, Mapping) or not isinstance(data.get("columns"), list):
            raise InvalidInput("a schema dict needs a 'columns' list")
        return cls([ColumnSpec.from_dict(c) for c in data["columns"]],
                   allow_extra_columns=bool(data.get("allow_extra_columns", True)),
                   name=str(data.get("name", "")))

    @classmethod
    def infer(cls, source: Source, name: str = "") -> Schema:
        """The schema the files actually have (types only, no constraints)."""
        data = _source.resolve(source)
        con = _source.connect()
        try:
            types = _source.columns_of(con, data)
        finally:
            con.close()
        specs = []
        for col, duck_type in types.items():
            logical = _source.logical_type(duck_type)
            specs.append(ColumnSpec(col, cast(DType, logical if logical in DTYPES else "string")))
        return cls(specs, name=name)


TRANSACTIONS_SCHEMA = Schema(
    [
        ColumnSpec("transaction_id", "int", nullable=False, min=1, unique=True),
        ColumnSpec("user_id", "int", nullable=False, min=0),
        ColumnSpec("merchant_id", "int", nullable=False, min=0),
        ColumnSpec("category", "string", nullable=False,
                   allowed=["grocery", "restaurant", "fuel", "travel", "electronics", "fashion",
                            "entertainment", "health", "digital_goods", "home"]),
        ColumnSpec("amount", "float", nullable=False, min=0.01),
        ColumnSpec("event_timestamp", "timestamp", nullable=False),
        ColumnSpec("device", "string", nullable=False, allowed=["mobile", "web", "pos"]),
        ColumnSpec("country", "string", nullable=False),
        ColumnSpec("is_night", "bool", nullable=False),
        ColumnSpec("is_fraud", "int", nullable=False, allowed=[0, 1]),
    ],
    name="transactions",
)


@dataclass(frozen=True)
class ValidationIssue:
    """One broken rule: ``examples`` holds up to five {file, row, value} dicts (rows count from 0)."""

    column: str
    rule: Rule
    count: int
    message: str
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ValidationReport:
    source: str
    n_rows: int
    issues: list[ValidationIssue]
    schema: Schema

    @property
    def ok(self) -> bool:
        return not self.issues

    def summary(self) -> str:
        if self.ok:
            return f"{self.source}: {self.n_rows:,} rows match schema {self.schema.name or '(unnamed)'}"
        lines = [f"{self.source}: {len(self.issues)} schema rule(s) broken over {self.n_rows:,} rows"]
        lines += [f"  - {issue.message}" for issue in self.issues]
        return "\n".join(lines)

    __str__ = summary

    def raise_if_failed(self) -> ValidationReport:
        """Raise ValidationFailed (carrying this report) if any rule is broken; else return self."""
        if not self.ok:
            raise ValidationFailed(self.summary(), report=self)
        return self

    def to_frame(self) -> pd.DataFrame:
        cols = ["column", "rule", "count", "message", "examples"]
        return pd.DataFrame([i.to_dict() for i in self.issues], columns=cols)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "n_rows": self.n_rows, "ok": self.ok,
                "issues": [i.to_dict() for i in self.issues], "schema": self.schema.to_dict()}


def _compatible(spec: DType, logical: str) -> bool:
    return logical == spec or (spec == "float" and logical == "int")


def validate(source: Source, schema: Schema | Mapping[str, Any]) -> ValidationReport:
    """Check a dataset against a schema with DuckDB; never loads the data into pandas."""
    if not isinstance(schema, Schema):
        schema = Schema.from_dict(schema)
    data = _source.resolve(source)
    con = _source.connect()
    try:
        return _validate(con, data, schema)
    finally:
        con.close()


def _validate(con: Any, data: _source.DataFiles, schema: Schema) -> ValidationReport:
    types = _source.columns_of(con, data)
    scan = _source.scan_sql(data)
    issues: list[ValidationIssue] = []
    checks: list[tuple[ColumnSpec, Rule, str, dict[str, Any]]] = []  # (spec, rule, condition, params)
    for i, spec in enumerate(schema.columns):
        if spec.name not in types:
            issues.append(ValidationIssue(spec.name, "missing_column", -1,
                                          f"column {spec.name!r} is missing (expected {spec.dtype})"))
            continue
        col = quote_ident(spec.name)
        logical = _source.logical_type(types[spec.name])
        type_ok = _compatible(spec.dtype, logical)
        if not type_ok:
            issues.append(ValidationIssue(
                spec.name, "wrong_type", -1,
                f"column {spec.name!r} has type {types[spec.name]} ({logical}), expected {spec.dtype}",
                [{"file": None, "row": None, "value": types[spec.name]}]))
        if not spec.nullable:
            checks.append((spec, "nulls", f"{col} IS NULL", {}))
        if type_ok:
            value = f"CAST({col} AS TIMESTAMPTZ)" if spec.dtype == "timestamp" else col
            bound = "CAST(${p} AS TIMESTAMPTZ)" if spec.dtype == "timestamp" else "${p}"
            if spec.min is not None:
                key = f"min{i}"
                checks.append((spec, "below_min", f"{value} < {bound.format(p=key)}", {key: spec.min}))
            if spec.max is not None:
                key = f"max{i}"
                checks.append((spec, "above_max", f"{value} > {bound.format(p=key)}", {key: spec.max}))
            if spec.allowed is not None:
                key = f"allowed{i}"
                checks.append((spec, "not_allowed", f"{col} IS NOT NULL AND NOT list_contains(${key}, {col})",
                               {key: list(spec.allowed)}))
    if not schema.allow_extra_columns:
        for extra in [c for c in types if c not in schema.names]:
            issues.append(ValidationIssue(extra, "unexpected_column", -1,
                                          f"column {extra!r} is not declared in the schema"))
    uniques = [s for s in schema.columns if s.unique and s.name in types]

    # One pass computes every count; examples are fetched only for the rules that fail.
    selects = ["count(*)"] + [f"count(*) FILTER (WHERE {cond})" for _, _, cond, _ in checks]
    selects += [f"count({quote_ident(s.name)}) - count(DISTINCT {quote_ident(s.name)})" for s in uniques]
    bound_params: dict[str, Any] = {}
    for _, _, _, values in checks:
        bound_params.update(values)
    with _source.errors_as_invalid_input(data, "validate"):
        row = con.execute(f"SELECT {', '.join(selects)} FROM {scan}",
                          _source.params(data, **bound_params)).fetchone()
    assert row is not None
    n_rows = int(row[0])
    issues = [ValidationIssue(i.column, i.rule, n_rows if i.count < 0 else i.count, i.message, i.examples)
              for i in issues]
    counts = row[1:]
    file_names = data.relative()
    numbered = _source.numbered_sql(data)
    for (spec, rule, cond, values), count in zip(checks, counts[:len(checks)], strict=True):
        if not count:
            continue
        with _source.errors_as_invalid_input(data, "validate"):
            rows = con.execute(
                f"SELECT __wb_file, __wb_row, {quote_ident(spec.name)} FROM {numbered} WHERE {cond} "
                f"ORDER BY __wb_file, __wb_row LIMIT {MAX_EXAMPLES}", _source.params(data, **values)).fetchall()
        examples = [{"file": file_names[int(f)], "row": int(r), "value": _jsonable(v)} for f, r, v in rows]
        issues.append(ValidationIssue(spec.name, rule, int(count), _message(spec, rule, int(count), examples),
                                      examples))
    for spec, count in zip(uniques, counts[len(checks):], strict=True):
        if not count:
            continue
        col = quote_ident(spec.name)
        with _source.errors_as_invalid_input(data, "validate"):
            rows = con.execute(
                f"SELECT {col}, count(*) AS n, list(__wb_row ORDER BY __wb_file, __wb_row)[1:3] AS r, "
                f"list(__wb_file ORDER BY __wb_file, __wb_row)[1:3] AS fi "
                f"FROM {numbered} WHERE {col} IS NOT NULL GROUP BY {col} HAVING count(*) > 1 "
                f"ORDER BY n DESC, {col} LIMIT {MAX_EXAMPLES}", _source.params(data)).fetchall()
        examples = [{"file": [file_names[int(x)] for x in fi], "row": [int(x) for x in r],
                     "value": _jsonable(v), "occurrences": int(n)} for v, n, r, fi in rows]
        issues.append(ValidationIssue(spec.name, "duplicates", int(count),
                                      _message(spec, "duplicates", int(count), examples), examples))
    order = {name: i for i, name in enumerate(schema.names)}
    issues.sort(key=lambda i: (order.get(i.column, len(order)), i.column))
    return ValidationReport(data.describe(), n_rows, issues, schema)


def _message(spec: ColumnSpec, rule: Rule, count: int, examples: list[dict[str, Any]]) -> str:
    what = {
        "nulls": "null values",
        "below_min": f"values below the minimum {spec.min!r}",
        "above_max": f"values above the maximum {spec.max!r}",
        "not_allowed": f"values outside the allowed set {list(spec.allowed or [])!r}",
        "duplicates": "duplicate values (rows beyond the first of each value)",
    }.get(rule, rule)
    shown = ", ".join(f"row {e['row']}" + (f" = {e['value']!r}" if rule != "nulls" else "")
                      for e in examples[:3])
    return f"column {spec.name!r}: {count:,} {what}" + (f" (e.g. {shown})" if shown else "")


def _jsonable(value: Any) -> Any:
    """Make a value from DuckDB safe for json.dumps (timestamps as ISO strings, no NaN)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, _dt.datetime | _dt.date | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)
