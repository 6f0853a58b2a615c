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
REJECTED_SUFFIX = ".rejected"  # lines a compaction could not parse (workbench.serving.prediction_log)


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

    def jsonl(files: list[Path]) -> str:  # a cut line reads as all-NULL: drop it
        # a replica creates its file when it starts: files still empty are left out (DuckDB would read an
        # empty file as one column named "json"), and a log of empty files reads as no rows
        written = [f for f in files if f.stat().st_size > 0]
        if not written:
            return ("SELECT NULL::VARCHAR AS request_id, NULL::VARCHAR AS timestamp, NULL::VARCHAR AS deployment, "
                    "NULL::VARCHAR AS model_version, NULL::DOUBLE AS latency_ms WHERE false")
        listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in written)
        return (f"SELECT * FROM read_json([{listed}], format='newline_delimited', "
                "ignore_errors=true, union_by_name=true) WHERE request_id IS NOT NULL")

    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in _PARQUET:
            return [parquet_list([path])]
        if suffix in _JSONL:
            return [jsonl([path])]
        raise InvalidInput(f"{path}: a prediction log file must be Parquet (.parquet, .pq) or JSON lines (.jsonl)")
    parquet_files, lines = log_files(path)
    scans = []
    if parquet_files:
        scans.append(parquet_list(parquet_files))
    if lines:
        scans.append(jsonl(lines))
    if not scans:
        raise InvalidInput(f"{path} holds no .parquet or .jsonl files; is this the prediction log folder?")
    return scans


def parquet_list(files: Sequence[Path]) -> str:
    listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    return f"SELECT * FROM read_parquet([{listed}], union_by_name=true)"


def log_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(Parquet files, JSON-lines files) of a log folder, listed at one moment.

    A JSON-lines segment whose Parquet file exists has been compacted (``workbench.serving.prediction_log``)
    and is left out, so no row is read twice; listing both kinds together, instead of letting a glob
    run at query time, keeps a compaction finishing between the listing and the query from doing so.
    """
    parquet_files = sorted(folder.rglob("*.parquet"))
    compacted = {p.with_suffix("") for p in parquet_files}
    lines = [f for f in sorted(folder.rglob("*.jsonl")) if f.with_suffix("") not in compacted]
    return parquet_files, lines


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


def _count_lines(path: Path) -> int:
    """Non-blank lines of a JSON-lines file, streamed (a log is never loaded whole)."""
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def log_row_counts(source: LogSource) -> tuple[int, int]:
    """``(rows read, rows that could not be parsed)`` of a log.

    DuckDB reads the JSON lines with ``ignore_errors`` (a line cut short by a killed replica must not stop
    the whole read), which turns a bad line into a NULL row the view filters out. Those lines are
    counted here, against the lines in the files, so a monitoring result can say how many it skipped
    instead of dropping them silently. Parquet rows are always parsed; a DataFrame has none to skip.
    """
    if isinstance(source, pd.DataFrame):
        return len(source), 0
    path = Path(source).expanduser()
    con = duckdb.connect()
    try:
        open_log_view(con, source)
        row = con.execute(f"SELECT count(*) FROM {LOG_VIEW}").fetchone()
        rows = int(row[0]) if row else 0
        rejected = 0
        if path.is_file():
            parquet_files, files = ([], [path]) if path.suffix.lower() in _JSONL else ([path], [])
        else:
            parquet_files, files = log_files(path) if path.is_dir() else ([], [])
            # lines a compaction could not parse, set aside beside their segment's Parquet file
            rejected = sum(_count_lines(f) for f in path.rglob("*" + REJECTED_SUFFIX))
        parquet_rows = 0
        if parquet_files and files:
            got = con.execute(f"SELECT count(*) FROM ({parquet_list(parquet_files)})").fetchone()
            parquet_rows = int(got[0]) if got else 0
    finally:
        con.close()
    json_lines = sum(_count_lines(f) for f in files)
    json_rows = rows - parquet_rows
    return rows, (max(0, json_lines - json_rows) if files else 0) + rejected
