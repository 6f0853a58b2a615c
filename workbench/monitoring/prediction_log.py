"""Reading the prediction log that the serving layer writes, and the labels that arrive later.

The log is a DataFrame, or Parquet / JSON-lines files (one file or a folder of them), with one row per served
prediction: ``request_id``, ``timestamp`` (UTC), ``deployment``, ``model_version``, ``score``,
``latency_ms`` and one numeric column per model input. Every monitoring function accepts either form;
Parquet is read through DuckDB so that only the columns (and rows) a computation needs are loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

import duckdb
import pandas as pd

from workbench.errors import InvalidInput, NotFound

LOG_COLUMNS = ("request_id", "timestamp", "deployment", "model_version", "score", "latency_ms")
LABEL_COLUMNS = ("request_id", "label")
# Columns of a log (or of a labelled log) that are never model inputs.
NON_FEATURE_COLUMNS = frozenset(LOG_COLUMNS) | {"label", "label_timestamp"}

LogSource: TypeAlias = "pd.DataFrame | str | os.PathLike[str]"
LOG_VIEW = "prediction_log"


_PARQUET = (".parquet", ".pq")
_JSONL = (".jsonl",)


def _log_scans(source: str | os.PathLike[str]) -> list[str]:
    """DuckDB queries over the Parquet and JSON-lines files of a log file or folder.

    Serving replicas append JSON lines (one file per replica); a line cut short by a killed replica was
    never acknowledged to a client, so it is skipped (``ignore_errors`` reads it as a NULL row, which
    the view filters out).
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise NotFound(f"prediction log {path} does not exist; pass a DataFrame, a .parquet/.jsonl file or a "
                       "folder of them (the serving layer writes the log there)")

    def parquet(glob: str) -> str:
        return "SELECT * FROM read_parquet('" + glob.replace("'", "''") + "', union_by_name=true)"

    def jsonl(glob: str) -> str:  # a cut line reads as all-NULL: drop it
        return ("SELECT * FROM read_json('" + glob.replace("'", "''") + "', format='newline_delimited', "
                "ignore_errors=true, union_by_name=true) WHERE request_id IS NOT NULL")

    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in _PARQUET:
            return [parquet(str(path))]
        if suffix in _JSONL:
            return [jsonl(str(path))]
        raise InvalidInput(f"{path}: a prediction log file must be Parquet (.parquet, .pq) or JSON lines (.jsonl)")
    scans = []
    if any(path.rglob("*.parquet")):
        scans.append(parquet(str(path / "**" / "*.parquet")))
    if any(path.rglob("*.jsonl")):
        scans.append(jsonl(str(path / "**" / "*.jsonl")))
    if not scans:
        raise InvalidInput(f"{path} holds no .parquet or .jsonl files; is this the prediction log folder?")
    return scans


def open_log_view(con: duckdb.DuckDBPyConnection, source: LogSource, view: str = LOG_VIEW) -> list[str]:
    """Make ``source`` queryable as ``view`` on ``con``; returns its column names.

    A DataFrame is registered without copying; files are scanned lazily, so aggregates over a large
    log never load it whole. Timestamps without a zone are read as UTC.
    """
    con.execute("SET TimeZone = 'UTC'")
    if isinstance(source, pd.DataFrame):
        con.register(view, source)
    elif isinstance(source, str | os.PathLike):
        union = " UNION ALL BY NAME ".join(f"({scan})" for scan in _log_scans(source))
        con.execute(f"CREATE OR REPLACE VIEW {view} AS {union}")
    else:
        raise InvalidInput("expected a DataFrame or a Parquet path for the prediction log, "
                           f"got {type(source).__name__}")
    return [row[0] for row in con.execute(f"DESCRIBE {view}").fetchall()]


def log_columns(source: LogSource) -> list[str]:
    """Column names of a log without reading its rows."""
    if isinstance(source, pd.DataFrame):
        return [str(c) for c in source.columns]
    con = duckdb.connect()
    try:
        return open_log_view(con, source)
    finally:
        con.close()


def require_columns(present: Sequence[str], needed: Sequence[str], what: str = "prediction log") -> None:
    """InvalidInput naming the missing columns and the ones that are there."""
    missing = [c for c in needed if c not in present]
    if missing:
        raise InvalidInput(f"the {what} lacks column(s) {missing}; it has {list(present)}")


def quote(name: str) -> str:
    """A column name quoted for DuckDB SQL."""
    return '"' + name.replace('"', '""') + '"'


def read_log(source: LogSource, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The log (or just ``columns`` of it) as a DataFrame; checks the columns exist."""
    if isinstance(source, pd.DataFrame):
        if columns is None:
            return source
        require_columns(list(source.columns), columns)
        return source.loc[:, list(columns)]
    con = duckdb.connect()
    try:
        present = open_log_view(con, source)
        wanted = present if columns is None else list(columns)
        require_columns(present, wanted)
        select = ", ".join(quote(c) for c in wanted)
        return con.execute(f"SELECT {select} FROM {LOG_VIEW}").df()
    finally:
        con.close()


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """Columns of ``frame`` that can be model inputs: numeric (or bool) and not log bookkeeping."""
    return [
        str(c) for c in frame.columns
        if str(c) not in NON_FEATURE_COLUMNS
        and (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
    ]
