"""The scoring request: what a client sends, checked field by field before anything is scored.

What an instance carries comes from the deployed model, not from this module: its signature's columns
(less those a feature service looks up), plus the feature service's entity keys and request-time fields
when the model has one (:class:`RequestSchema`, built by :mod:`workbench.serving.lookup`). Optional per
instance: ``request_id`` (echoed back and used as the prediction log key; generated when absent) and
``timestamp`` (ISO 8601, the event time; defaults to now, UTC), unless the model has columns of those
names. Anything else is refused, so a misspelt field fails loudly instead of being ignored.

Three wire forms land in the same :class:`Row` list, checked by the same code:

* ``POST /predict``  ``{"instances": [{<field>: value, ...}, ...]}``; errors name ``instances[3].<field>``;
* ``POST /invocations`` (MLflow's scoring protocol) ``{"dataframe_split": {"columns", "data"}}`` or
  ``{"dataframe_records": [...]}``; errors name ``dataframe_records[3].<field>`` or
  ``dataframe_split.data[3].<field>``;
* ``POST /v2/models/<model>/infer`` (Open Inference Protocol) ``{"inputs": [{"name", "shape", "datatype",
  "data"}, ...]}``, one input per column; errors name ``inputs[<column>].data[3]``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from workbench.serving.signature import Field, PayloadError, parse_time

MAX_INSTANCES = 1000
MAX_REQUEST_ID_CHARS = 128
DEPLOYMENT_CLASS = "ModelServer"
"""The Ray Serve deployment inside each workbench application."""
LEGACY_DEPLOYMENT_CLASSES = ("FraudScorer",)
"""What the deployment was called when it served only the fraud model (apps deployed before still list)."""
REQUEST_ID, TIMESTAMP = "request_id", "timestamp"

__all__ = ["MAX_INSTANCES", "PayloadError", "RequestSchema", "Row", "parse_invocations", "parse_payload", "parse_v2"]


@dataclass(frozen=True)
class RequestSchema:
    """The fields an instance carries, in order; ``extras`` are the optional bookkeeping fields."""

    fields: tuple[Field, ...]
    extras: tuple[str, ...] = field(default=(REQUEST_ID, TIMESTAMP))

    def __post_init__(self) -> None:
        names = {f.name for f in self.fields}
        object.__setattr__(self, "extras", tuple(e for e in self.extras if e not in names))

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def time_field(self) -> str | None:
        """The optional field holding the event time (``timestamp``, or a feature project's time column)."""
        return next((e for e in self.extras if e != REQUEST_ID), None)

    @property
    def required(self) -> list[str]:
        return [f.name for f in self.fields if f.required]

    def to_dict(self) -> dict[str, Any]:
        return {"fields": [{"name": f.name, "type": f.kind, "required": f.required, "nullable": f.nullable,
                            **({"minimum": f.minimum} if f.minimum is not None else {})} for f in self.fields],
                "optional": list(self.extras)}


@dataclass(frozen=True)
class Row:
    """One validated instance: its log key, its event time and one checked value per schema field."""

    request_id: str
    timestamp: datetime
    values: dict[str, Any]


Where = Callable[[int, str], str]


def _request_id(value: Any, where: str) -> str:
    if value is None:
        return uuid.uuid4().hex
    if not isinstance(value, str) or not value or len(value) > MAX_REQUEST_ID_CHARS:
        raise PayloadError(where, f"must be a non-empty string of at most {MAX_REQUEST_ID_CHARS} characters")
    return value


def parse_row(raw: Any, schema: RequestSchema, index: int, where: Where, now: datetime,
              default_id: str | None = None) -> Row:
    """One instance from its JSON object; PayloadError names the first bad field."""
    if not isinstance(raw, dict):
        raise PayloadError(where(index, "").rstrip("."), f"must be an object with fields {schema.required}, got "
                           f"{type(raw).__name__}")
    known = set(schema.names) | set(schema.extras)
    unknown = [k for k in raw if k not in known]
    if unknown:
        optional = [f.name for f in schema.fields if not f.required] + list(schema.extras)
        raise PayloadError(where(index, str(unknown[0])), f"is not a known field; send {schema.required}"
                           + (f" and optionally {optional}" if optional else ""))
    values: dict[str, Any] = {}
    for f in schema.fields:
        if f.name in raw:
            values[f.name] = f.check(raw[f.name], where(index, f.name))
        elif f.required:
            raise PayloadError(where(index, f.name), "is required")
        elif not f.nullable:
            raise PayloadError(where(index, f.name), f"is required: MLflow cannot pass a missing value to a {f.kind} "
                               "column (log the model with this column as double to make it optional)")
        else:
            values[f.name] = None
    if REQUEST_ID in schema.extras and raw.get(REQUEST_ID) is not None:
        request_id = _request_id(raw[REQUEST_ID], where(index, REQUEST_ID))
    else:
        request_id = default_id or uuid.uuid4().hex
    time_field = schema.time_field
    stamp = raw.get(time_field) if time_field else None
    timestamp = now if stamp is None else parse_time(stamp, where(index, time_field or TIMESTAMP))
    return Row(request_id, timestamp, values)


def _rows(raw: Sequence[Any], schema: RequestSchema, where: Where, list_field: str,
          default_ids: Sequence[str] | None = None) -> list[Row]:
    if len(raw) > MAX_INSTANCES:
        raise PayloadError(list_field, f"holds {len(raw)} items; send at most {MAX_INSTANCES} per request")
    now = datetime.now(UTC)
    rows = [parse_row(item, schema, i, where, now, default_ids[i] if default_ids else None)
            for i, item in enumerate(raw)]
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if row.request_id in seen:
            raise PayloadError(where(i, REQUEST_ID), f"{row.request_id!r} appears twice in this request")
        seen.add(row.request_id)
    return rows


def _only(body: Any, allowed: Sequence[str], example: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise PayloadError(allowed[0], f"is required: send {example}")
    extra = [k for k in body if k not in allowed]
    if extra:
        raise PayloadError(str(extra[0]), f"is not a known field; the body holds only {list(allowed)}")
    return body


def parse_payload(body: Any, schema: RequestSchema) -> list[Row]:
    """``{"instances": [...]}`` (``POST /predict``) as rows, or PayloadError for the first problem found.

    Request ids must be unique within a request: the prediction log is keyed by them.
    """
    example = '{"instances": [{' + ", ".join(f'"{n}": …' for n in schema.required[:3]) + "}]}"
    if not isinstance(body, dict) or "instances" not in body:
        raise PayloadError("instances", f"is required: send {example}")
    _only(body, ["instances"], example)
    raw = body["instances"]
    if not isinstance(raw, list) or not raw:
        raise PayloadError("instances", "must be a non-empty list of objects")
    return _rows(raw, schema, lambda i, name: f"instances[{i}].{name}", "instances")


def parse_invocations(body: Any, schema: RequestSchema) -> list[Row]:
    """MLflow's ``/invocations`` body (``dataframe_split`` or ``dataframe_records``) as rows."""
    forms = ["dataframe_split", "dataframe_records"]
    example = '{"dataframe_split": {"columns": [...], "data": [[...]]}} or {"dataframe_records": [{...}]}'
    if isinstance(body, dict):
        extra = [k for k in body if k not in (*forms, "params")]
        if extra:
            raise PayloadError(str(extra[0]), f"is not supported here (a column-based model): send {example}")
    if not isinstance(body, dict) or not any(k in body for k in forms):
        raise PayloadError("dataframe_split", f"or dataframe_records is required: send {example}")
    if "params" in body and body["params"]:
        raise PayloadError("params", "is not supported: this model takes no inference parameters")
    if "dataframe_split" in body and "dataframe_records" in body:
        raise PayloadError("dataframe_records", "send one of dataframe_split and dataframe_records, not both")
    if "dataframe_records" in body:
        records = body["dataframe_records"]
        if not isinstance(records, list) or not records:
            raise PayloadError("dataframe_records", "must be a non-empty list of objects")
        return _rows(records, schema, lambda i, name: f"dataframe_records[{i}].{name}", "dataframe_records")
    split = body["dataframe_split"]
    if not isinstance(split, dict):
        raise PayloadError("dataframe_split", 'must be an object {"columns": [...], "data": [[...], ...]}')
    extra = [k for k in split if k not in ("columns", "data", "index")]
    if extra:
        raise PayloadError(f"dataframe_split.{extra[0]}", 'is not a known field; send "columns" and "data"')
    columns, data = split.get("columns"), split.get("data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise PayloadError("dataframe_split.columns", "must be a list of column names")
    if len(set(columns)) != len(columns):
        raise PayloadError("dataframe_split.columns", "names a column twice")
    if not isinstance(data, list) or not data:
        raise PayloadError("dataframe_split.data", "must be a non-empty list of rows")
    records = []
    for i, values in enumerate(data):
        if not isinstance(values, list) or len(values) != len(columns):
            raise PayloadError(f"dataframe_split.data[{i}]", f"must be a list of {len(columns)} values, one per column")
        records.append(dict(zip(columns, values, strict=True)))
    return _rows(records, schema, lambda i, name: f"dataframe_split.data[{i}].{name}", "dataframe_split.data")


def parse_v2(body: Any, schema: RequestSchema) -> tuple[list[Row], str | None]:
    """An Open Inference Protocol ``infer`` body (one input per column) as rows, and the request ``id``.

    Each input is ``{"name", "shape": [n] or [n, 1], "datatype", "data": [n values]}``; the ``parameters``
    (``{"content_type": "pd"}``, what MLServer wants for a pandas model) are accepted and need not be set.
    Rows get request ids ``<id>-<row>`` when the request has an ``id``, else fresh ones.
    """
    body = _only(body, ["inputs", "id", "parameters", "outputs"], '{"inputs": [{"name", "shape", "datatype", "data"}]}')
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise PayloadError("inputs", "is required: a non-empty list of {name, shape, datatype, data}, one per column")
    request_id = body.get("id")
    if request_id is not None and (not isinstance(request_id, str) or not request_id
                                   or len(request_id) > MAX_REQUEST_ID_CHARS - 8):
        raise PayloadError("id", f"must be a non-empty string of at most {MAX_REQUEST_ID_CHARS - 8} characters")
    columns: dict[str, list[Any]] = {}
    n: int | None = None
    for k, item in enumerate(inputs):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise PayloadError(f"inputs[{k}]", "must be an object with name, shape, datatype and data")
        name = item["name"]
        where = f"inputs[{name}]"
        extra = [key for key in item if key not in ("name", "shape", "datatype", "data", "parameters")]
        if extra:
            raise PayloadError(f"{where}.{extra[0]}", "is not a known field of an input")
        if name in columns:
            raise PayloadError(where, "appears twice")
        data, shape = item.get("data"), item.get("shape")
        if not isinstance(data, list):
            raise PayloadError(f"{where}.data", "must be a list of values")
        if isinstance(data, list) and data and all(isinstance(v, list) and len(v) == 1 for v in data):
            data = [v[0] for v in data]  # [[1.0], [2.0]]: a column written as n x 1
        if not isinstance(shape, list) or not shape or not all(isinstance(s, int) for s in shape) \
                or shape[0] != len(data) or any(s != 1 for s in shape[1:]):
            raise PayloadError(f"{where}.shape", f"must be [{len(data)}] or [{len(data)}, 1] for {len(data)} values "
                               "(one column per input)")
        if not isinstance(item.get("datatype"), str):
            raise PayloadError(f"{where}.datatype", "is required (BOOL, INT64, FP64, BYTES, ...)")
        if n is not None and len(data) != n:
            raise PayloadError(f"{where}.data", f"holds {len(data)} values where the other inputs hold {n}")
        n = len(data)
        columns[name] = data
    assert n is not None
    if n == 0:
        raise PayloadError("inputs", "hold no rows")
    records = [{name: values[i] for name, values in columns.items()} for i in range(n)]
    ids = [f"{request_id}-{i}" for i in range(n)] if request_id else None
    return _rows(records, schema, lambda i, name: f"inputs[{name}].data[{i}]" if name else f"inputs.data[{i}]",
                 "inputs", ids), request_id

