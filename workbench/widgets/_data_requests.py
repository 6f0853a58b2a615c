"""What crosses the data browser's comm: structured page requests in, Arrow IPC pages out.

The browser never sends SQL. It sends ``{offset, limit, sort, filters}``; this module checks every
part against the open dataset's columns before anything reaches DuckDB, so a bad request becomes a
readable message in the widget instead of a query error. Pages go back as one Arrow IPC stream
(schema + one record batch, uncompressed, no dictionaries) in the message's binary buffer, in the
small set of types the browser's hand-written reader decodes: ints, floats, strings, bools, dates and
timestamps, each with nulls. Anything else is sent as strings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from workbench.data.paging import OPS
from workbench.errors import InvalidInput

MAX_PAGE_ROWS = 1_000
"""Rows one request may ask for: a screenful is ~30, the browser asks in blocks of ``page_size``."""
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""A page's Arrow buffer stays under this (Jupyter's websocket ceiling is ~10 MB); fewer rows are sent if not."""
MAX_CELL_CHARS = 2_000
"""Longer strings are cut for display (with a trailing '…'), so one huge cell cannot fill a message."""
MAX_FILTERS = 20
_REQUEST_KEYS = {"type", "id", "offset", "limit", "sort", "filters"}


@dataclass(frozen=True)
class PageRequest:
    """A checked page request, in the terms of :func:`workbench.data.read_page`."""

    offset: int
    limit: int
    sort_by: list[str] = field(default_factory=list)
    descending: bool = False
    filters: list[tuple[str, str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The request as the browser would send it (used for the snapshot and for logs)."""
        return {"offset": self.offset, "limit": self.limit,
                "sort": [{"column": c, "desc": self.descending} for c in self.sort_by],
                "filters": [{"column": c, "op": o, "value": v} for c, o, v in self.filters]}


def _int(value: Any, what: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            (isinstance(value, float) and not value.is_integer()):
        raise InvalidInput(f"{what} must be a whole number, got {value!r}")
    number = int(value)
    if number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise InvalidInput(f"{what} must be {bound}, got {number}")
    return number


def _column(name: Any, columns: Sequence[str], what: str) -> str:
    if not isinstance(name, str) or name not in columns:
        raise InvalidInput(f"{what}: unknown column {name!r}; the dataset has {', '.join(columns)}")
    return name


def _scalar(value: Any, what: str) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{what}: {value!r} is not a finite number")
        return value
    raise InvalidInput(f"{what}: a value must be a number, string, bool or null, got {type(value).__name__}")


def parse_page_request(content: Mapping[str, Any], columns: Sequence[str]) -> PageRequest:
    """Check a browser request against the dataset's ``columns``; InvalidInput names what is wrong."""
    if not isinstance(content, Mapping):
        raise InvalidInput(f"a page request must be an object, got {type(content).__name__}")
    unknown = set(content) - _REQUEST_KEYS
    if unknown:
        raise InvalidInput(f"unknown keys in page request: {', '.join(sorted(map(str, unknown)))}")
    offset = _int(content.get("offset", 0), "offset", 0)
    limit = _int(content.get("limit", 100), "limit", 0, MAX_PAGE_ROWS)

    sort = content.get("sort") or []
    if not isinstance(sort, list):
        raise InvalidInput("sort must be a list of {column, desc}")
    sort_by: list[str] = []
    directions: set[bool] = set()
    for item in sort:
        if not isinstance(item, Mapping) or "column" not in item or set(item) - {"column", "desc"}:
            raise InvalidInput(f"a sort key must be {{column, desc}}, got {item!r}")
        name = _column(item["column"], columns, "sort")
        if name in sort_by:
            raise InvalidInput(f"sort: column {name!r} given twice")
        desc = item.get("desc", False)
        if not isinstance(desc, bool):
            raise InvalidInput(f"sort: desc must be true or false, got {desc!r}")
        sort_by.append(name)
        directions.add(desc)
    if len(directions) > 1:
        raise InvalidInput("sorting by several columns needs them all in one direction")

    raw_filters = content.get("filters") or []
    if not isinstance(raw_filters, list):
        raise InvalidInput("filters must be a list of {column, op, value}")
    if len(raw_filters) > MAX_FILTERS:
        raise InvalidInput(f"at most {MAX_FILTERS} filters, got {len(raw_filters)}")
    filters: list[tuple[str, str, Any]] = []
    for item in raw_filters:
        if not isinstance(item, Mapping) or set(item) != {"column", "op", "value"}:
            raise InvalidInput(f"a filter must be {{column, op, value}}, got {item!r}")
        name = _column(item["column"], columns, "filter")
        op = item["op"]
        if op not in OPS:
            raise InvalidInput(f"filter on {name!r}: operator {op!r} is not one of {', '.join(OPS)}")
        value = item["value"]
        what = f"filter {name} {op}"
        if op == "in":
            if not isinstance(value, list):
                raise InvalidInput(f"{what}: needs a list of values")
            value = [_scalar(v, what) for v in value]
        else:
            value = _scalar(value, what)
            if value is None and op not in ("==", "!="):
                raise InvalidInput(f"{what}: only == and != compare with null")
        filters.append((name, op, value))
    return PageRequest(offset, limit, sort_by, bool(directions and directions.pop()), filters)


def check_under_roots(path: str | Path, roots: Sequence[Path]) -> Path:
    """The resolved ``path`` if it lies under one of ``roots`` (symlinks followed), else InvalidInput.

    A notebook user may open their own files; the widget must not become a way to read the rest of the
    machine through a typed path, so everything outside the project and the datasets folder is refused.
    """
    if not isinstance(path, str | Path) or not str(path).strip():
        raise InvalidInput("give a file or folder path to open")
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    resolved = candidate.resolve()
    for root in roots:
        if resolved.is_relative_to(root.resolve()):
            return resolved
    allowed = " or ".join(str(r) for r in roots)
    raise InvalidInput(f"{path} is outside the folders this browser may open ({allowed})")


# ---- Arrow encoding -------------------------------------------------------------------------------
def _display_type(t: pa.DataType) -> pa.DataType | None:
    """The type a column is sent as, or None to send it as strings."""
    if pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_string(t) or pa.types.is_date32(t):
        return t
    if pa.types.is_floating(t):
        return pa.float64() if pa.types.is_float16(t) else t
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_timestamp(t):
        return pa.timestamp(t.unit, tz="UTC" if t.tz else None)
    if pa.types.is_date64(t):
        return pa.timestamp("ms")
    if pa.types.is_decimal(t):
        return pa.float64()
    if pa.types.is_null(t):
        return pa.string()
    return None


def _cut(array: pa.Array) -> pa.Array:
    values = array.to_pylist()
    if not any(isinstance(v, str) and len(v) > MAX_CELL_CHARS for v in values):
        return array
    return pa.array([v[:MAX_CELL_CHARS] + "…" if isinstance(v, str) and len(v) > MAX_CELL_CHARS else v
                     for v in values], pa.string())


def page_table(frame: pd.DataFrame) -> pa.Table:
    """A page as an Arrow table of browser-decodable types (see the module docstring)."""
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        target = _display_type(array.type)
        if target is None:
            array = pa.array([None if v is None else str(v) for v in array.to_pylist()], pa.string())
        elif target != array.type:
            array = array.cast(target)
        if pa.types.is_string(array.type):
            array = _cut(array)
        arrays.append(array)
        fields.append(pa.field(name, array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def to_ipc(table: pa.Table) -> bytes:
    """One Arrow IPC stream: the schema and a single record batch, uncompressed."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(1, table.num_rows))
    return sink.getvalue().to_pybytes()


def encode_page(frame: pd.DataFrame, max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[bytes, int]:
    """The page's IPC bytes and how many of its rows they hold (fewer than asked if the page is too big).

    The browser asks again from where the page stopped, so a page of wide rows still arrives, in
    several messages that each stay under ``max_bytes``.
    """
    table = page_table(frame)
    data = to_ipc(table)
    rows = table.num_rows
    while len(data) > max_bytes and rows > 1:
        rows = max(1, min(rows - 1, int(rows * max_bytes / len(data) * 0.9)))
        data = to_ipc(table.slice(0, rows))
    if len(data) > max_bytes:
        raise InvalidInput(f"one row of this dataset is larger than {max_bytes // (1024 * 1024)} MB; "
                           "choose fewer columns")
    return data, rows


def jsonable(value: Any) -> Any:
    """Plain JSON for traits: NaN and infinities become null (JSON has no NaN), tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    try:
        return jsonable(value.item())  # numpy scalars
    except AttributeError:
        return str(value)
