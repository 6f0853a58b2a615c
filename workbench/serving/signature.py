"""A model's MLflow signature as the serving layer needs it: typed fields, JSON checks, a typed frame.

Every protocol (``/predict``, ``/invocations``, the v2 ``infer``) ends in rows of JSON values; each value is
checked here against the column its name points at, so a wrong type is a 422 naming the field rather
than an exception deep inside ``predict`` that would fail every request batched with it. The frame built
from checked values has exactly the dtypes MLflow's own schema enforcement accepts, so ``predict`` sees
what ``mlflow.pyfunc.load_model(uri).predict(frame)`` sees for the same rows.

Nulls: a column the signature marks optional (``required=False``, what ``infer_signature`` gives a column
with missing values) takes ``null`` when MLflow can carry a missing value in it (double, float, string,
boolean, binary, datetime). Integer columns cannot hold one in pandas/MLflow, so ``null`` there is refused
with the advice to log that column as double.
"""

from __future__ import annotations

import base64
import binascii
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import InvalidInput

_INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_NULLABLE_KINDS = frozenset({"double", "float", "string", "boolean", "binary", "datetime", "any"})
V2_DATATYPES = {"boolean": "BOOL", "integer": "INT32", "long": "INT64", "float": "FP32", "double": "FP64",
                "string": "BYTES", "binary": "BYTES", "datetime": "BYTES", "any": "BYTES", "key": "BYTES"}
"""The Open Inference Protocol datatype of each signature type (strings and times travel as BYTES)."""

NO_SIGNATURE_HINT = (
    "log it with a signature: mlflow.<flavor>.log_model(..., signature=mlflow.models.infer_signature(X, "
    "model.predict(X)), input_example=X.head()) with X a pandas DataFrame of the model's input columns "
    "(the workbench training stage does this for you)")


class PayloadError(InvalidInput):
    """A request that cannot be scored; ``field`` names where (e.g. ``instances[3].amount``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


@dataclass(frozen=True)
class Field:
    """One input a request carries: its name, its signature type, and what values it accepts."""

    name: str
    kind: str  # boolean | integer | long | float | double | string | binary | datetime | any | key (int or str)
    required: bool = True
    minimum: float | None = None  # a configuration's extra bound (the fraud ids and amounts are >= 0)
    description: str = ""

    @property
    def nullable(self) -> bool:
        return not self.required and self.kind in _NULLABLE_KINDS

    @property
    def v2_datatype(self) -> str:
        return V2_DATATYPES[self.kind]

    def with_minimum(self, minimum: float) -> Field:
        return replace(self, minimum=minimum)

    def check(self, value: Any, where: str) -> Any:
        """``value`` as the Python value the frame holds; PayloadError(where, ...) when it does not fit."""
        if value is None:
            if self.nullable:
                return None
            if not self.required:
                raise PayloadError(where, f"cannot be null: a {self.kind} column cannot hold a missing value in "
                                   "MLflow; send a value, or log the model with this column as double")
            raise PayloadError(where, f"is required and cannot be null (a {self.kind} value)")
        kind = self.kind
        if kind == "boolean":
            if not isinstance(value, bool):
                raise PayloadError(where, f"must be true or false, got {value!r}")
            return value
        if kind in _INT_RANGES:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                if isinstance(value, float) and value.is_integer() and math.isfinite(value):
                    value = int(value)  # 3.0 from a client that writes every number as a float
                else:
                    raise PayloadError(where, f"must be an integer, got {value!r}")
            low, high = _INT_RANGES[kind]
            if self.minimum is not None:
                low = max(low, int(self.minimum))
            if not low <= int(value) <= high:
                raise PayloadError(where, f"must be between {low} and {high}, got {value}")
            return int(value)
        if kind in ("double", "float"):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise PayloadError(where, f"must be a number, got {value!r}")
            number = float(value)
            if not math.isfinite(number):
                raise PayloadError(where, f"must be a finite number, got {value!r}")
            if self.minimum is not None and number < self.minimum:
                raise PayloadError(where, f"must be a finite number >= {self.minimum:g}, got {value!r}")
            return number
        if kind == "string":
            if not isinstance(value, str):
                raise PayloadError(where, f"must be a string, got {value!r}")
            return value
        if kind == "binary":
            if not isinstance(value, str):
                raise PayloadError(where, f"must be base64-encoded bytes in a string, got {value!r}")
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise PayloadError(where, "is not valid base64") from None
        if kind == "datetime":
            return parse_time(value, where)
        if kind == "key":
            if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
                raise PayloadError(where, f"must be an entity key (an integer or a non-empty string), got {value!r}")
            return value
        return value  # array / object / map columns: passed through as JSON


def parse_time(value: Any, where: str) -> datetime:
    """An ISO 8601 string as an aware UTC datetime (a time without a zone is read as UTC)."""
    if not isinstance(value, str):
        raise PayloadError(where, f"must be an ISO 8601 string such as '2026-01-31T13:45:00Z', got {value!r}")
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise PayloadError(where, f"is not an ISO 8601 time: {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _kind(col: Any) -> str:
    """The serving kind of an MLflow ColSpec type (DataType, Array, Object, Map, AnyType)."""
    name = getattr(getattr(col, "type", None), "name", None)
    return name if isinstance(name, str) and name in V2_DATATYPES and name != "key" else "any"


@dataclass(frozen=True)
class ModelSignature:
    """The named, column-based input schema of a model and what its outputs are called."""

    inputs: tuple[Field, ...]
    outputs: tuple[Field, ...]  # column outputs; empty for a tensor (one unnamed output)
    output_tensor: str = "FP64"  # v2 datatype of an unnamed tensor output

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.inputs]

    def field(self, name: str) -> Field:
        for f in self.inputs:
            if f.name == name:
                return f
        raise KeyError(name)


_TENSOR_V2 = {"bool": "BOOL", "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
              "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
              "float16": "FP16", "float32": "FP32", "float64": "FP64"}


def read_signature(signature: Any, uri: str) -> ModelSignature:
    """From an ``mlflow.models.ModelSignature`` (or None); InvalidInput says how to log a usable one."""
    schema = getattr(signature, "inputs", None)
    if schema is None:
        raise InvalidInput(f"model {uri} has no signature, so requests cannot be checked or mapped onto its "
                           f"inputs; {NO_SIGNATURE_HINT}")
    if schema.is_tensor_spec():
        raise InvalidInput(f"model {uri} has a tensor input signature; the workbench serves column-based "
                           f"models (one named input per column): {NO_SIGNATURE_HINT}")
    if not schema.has_input_names():
        raise InvalidInput(f"model {uri} has an input signature without column names; {NO_SIGNATURE_HINT}")
    inputs = tuple(Field(str(c.name), _kind(c), bool(getattr(c, "required", True))) for c in schema.inputs)
    names = [f.name for f in inputs]
    if len(set(names)) != len(names):
        raise InvalidInput(f"model {uri} names an input column twice: {names}")
    outputs: tuple[Field, ...] = ()
    tensor = "FP64"
    out = getattr(signature, "outputs", None)
    if out is not None:
        if out.is_tensor_spec():
            dtype = getattr(out.inputs[0].type, "name", "float64") if out.inputs else "float64"
            tensor = _TENSOR_V2.get(str(dtype), "BYTES")
        elif out.has_input_names():
            outputs = tuple(Field(str(c.name), _kind(c), bool(getattr(c, "required", True))) for c in out.inputs)
        elif out.inputs:
            tensor = V2_DATATYPES.get(_kind(out.inputs[0]), "BYTES")
    return ModelSignature(inputs, outputs, tensor)


_NUMPY_KINDS = {"double": np.float64, "float": np.float32, "long": np.int64, "integer": np.int32}


def column(field: Field, values: Sequence[Any] | np.ndarray) -> Any:
    """One frame column of checked values, in the dtype MLflow's schema enforcement takes for ``field``."""
    kind = field.kind
    if isinstance(values, np.ndarray) and values.dtype != object and kind in _NUMPY_KINDS:
        if kind in ("long", "integer") and values.dtype.kind == "f" and np.isnan(values).any():
            # a feature store's answer for an entity it has never seen; a cast would make it a huge integer
            raise InvalidInput(f"{field.name}: no value was found for some rows, and the model takes it as {kind}, "
                               "which cannot be missing: train with nulls in it (then it is an optional double)")
        return values.astype(_NUMPY_KINDS[kind], copy=False)  # looked-up or derived: already numbers
    has_null = any(v is None for v in values)
    if kind == "double":
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if kind == "float":
        return np.array([np.nan if v is None else v for v in values], dtype=np.float32)
    if kind == "long":
        return np.array(values, dtype=np.int64)
    if kind == "integer":
        return np.array(values, dtype=np.int32)
    if kind == "boolean" and not has_null:
        return np.array(values, dtype=bool)
    if kind == "datetime":  # MLflow wants zone-naive times: UTC without the zone
        return pd.to_datetime(list(values), utc=True).tz_localize(None)
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def to_json(value: Any) -> Any:
    """A value of a frame or of a prediction as plain JSON (NaN and NaT as null, times as ISO strings)."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, np.ndarray):
        return [to_json(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)
