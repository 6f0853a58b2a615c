"""Feature tables for the fraud model, computed with DuckDB window functions.

Every feature row describes what was known *just before* a moment: the row of a user at time ``t``
aggregates that user's transactions with ``event_timestamp < t`` only (rows at exactly ``t``, the
transaction itself included, are excluded with ``EXCLUDE GROUP``). A training row for a transaction at
``t`` therefore never sees its own amount or label, nor anything later, which is what makes Feast's
point-in-time join (latest feature row at or before ``t``) leak-free.

Users get two rows per transaction time ``t``: one at ``t`` (what that transaction may see) and one
at ``t + 1 µs`` (the state right after it), so an entity timestamp between two transactions sees the
earlier one too. Between rows the windows do not slide: a 1-day count stays as it was at the last row.

Amounts count in whole cents, so window sums are exact integers and every run writes identical
tables (floating-point sums would change in the last bits with DuckDB's thread scheduling, and with
them the training frame's content hash). Timestamps are floored to microseconds. Windows are
half-open: ``1d`` means ``t - 1 day <= event_timestamp < t``. Aggregates over an empty window are
null (means, std, fraud rate, time since last) or 0 (counts); see ``FILL_VALUES``.

Merchant features are daily snapshots: the row at ``D`` (midnight UTC) aggregates the merchant's
transactions before ``D``, and a transaction on day ``D`` joins that row. Two reasons: Feast's file
offline store joins every entity row with every feature row of the same entity, so one busy merchant
with a row per transaction makes the join quadratic (a 50k-row frame with one merchant holding half
the traffic needs >20 GB); and fraud labels arrive days late in practice, so a merchant's fraud rate
refreshed daily is what production could know anyway.

Besides these rows, each user and merchant gets a *snapshot* row at ``as_of`` (by default one second
after the last transaction) computed the same way: it is what an online request at ``as_of`` should
see, so the online store holds features that include the entity's latest transactions instead of
lagging one transaction (or one day) behind the training rows.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeAlias

import duckdb
import pandas as pd

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound

TRANSACTION_COLUMNS = ("user_id", "merchant_id", "amount", "event_timestamp", "is_fraud")
"""Columns the feature computation needs (the generated dataset has more; they are ignored here)."""

USER_FEATURES = (
    "user_txn_count_1d",
    "user_txn_count_7d",
    "user_amount_mean_1d",
    "user_amount_mean_7d",
    "user_amount_std_7d",
    "user_seconds_since_last_txn",
)
MERCHANT_FEATURES = ("merchant_txn_count_7d", "merchant_fraud_rate_30d")
COUNT_FEATURES = ("user_txn_count_1d", "user_txn_count_7d", "merchant_txn_count_7d")

NO_HISTORY_GAP_S = 30 * 86_400.0
"""``user_seconds_since_last_txn`` of a user's first transaction (no earlier one): 30 days."""
FILL_VALUES: dict[str, float] = {
    **{name: 0.0 for name in (*USER_FEATURES, *MERCHANT_FEATURES)},
    "user_seconds_since_last_txn": NO_HISTORY_GAP_S,
}
"""What a missing feature means to the model: no history. Training frames and online lookups use the
same values, so a user unseen online looks exactly like a first transaction looked in training."""

USER_TABLE = "user_activity.parquet"
MERCHANT_TABLE = "merchant_risk.parquet"
MANIFEST = "manifest.json"

Transactions: TypeAlias = pd.DataFrame | Path | str
"""A transactions frame, or a Parquet file, or a folder of Parquet files."""

_W = "PARTITION BY {key} ORDER BY event_timestamp RANGE BETWEEN {start} AND CURRENT ROW EXCLUDE GROUP"
_USER_SQL = f"""
WITH rows AS (
    SELECT user_id, event_timestamp, round(amount * 100)::HUGEINT AS cents FROM txn
    UNION ALL
    SELECT DISTINCT user_id, event_timestamp + INTERVAL 1 MICROSECOND, NULL::HUGEINT FROM txn
    UNION ALL
    SELECT DISTINCT user_id, $as_of::TIMESTAMPTZ, NULL::HUGEINT FROM txn
),
windowed AS (
    SELECT
        user_id,
        event_timestamp,
        count(cents) OVER d1 AS n1,
        sum(cents) OVER d1 AS s1,
        count(cents) OVER d7 AS n7,
        sum(cents) OVER d7 AS s7,
        sum(cents * cents) OVER d7 AS q7,
        max(event_timestamp) FILTER (WHERE cents IS NOT NULL) OVER ever AS last_txn
    FROM rows
    WINDOW
        d1 AS ({_W.format(key="user_id", start="INTERVAL 1 DAY PRECEDING")}),
        d7 AS ({_W.format(key="user_id", start="INTERVAL 7 DAY PRECEDING")}),
        ever AS ({_W.format(key="user_id", start="UNBOUNDED PRECEDING")})
)
SELECT DISTINCT ON (user_id, event_timestamp)
    user_id,
    event_timestamp,
    n1 AS user_txn_count_1d,
    n7 AS user_txn_count_7d,
    CASE WHEN n1 > 0 THEN s1::DOUBLE / (n1 * 100.0) END AS user_amount_mean_1d,
    CASE WHEN n7 > 0 THEN s7::DOUBLE / (n7 * 100.0) END AS user_amount_mean_7d,
    CASE WHEN n7 > 1 THEN sqrt((n7 * q7 - s7 * s7)::DOUBLE / (n7 * (n7 - 1))) / 100.0 END AS user_amount_std_7d,
    (epoch_us(event_timestamp) - epoch_us(last_txn)) / 1e6 AS user_seconds_since_last_txn
FROM windowed
ORDER BY event_timestamp, user_id
"""
_MERCHANT_SQL = f"""
WITH snapshots AS (
    SELECT DISTINCT merchant_id, date_trunc('day', event_timestamp) AS event_timestamp FROM txn
    UNION
    SELECT DISTINCT merchant_id, $as_of::TIMESTAMPTZ FROM txn
),
rows AS (
    SELECT merchant_id, event_timestamp, is_fraud, false AS snapshot FROM txn
    UNION ALL
    SELECT merchant_id, event_timestamp, NULL::DOUBLE, true FROM snapshots
),
windowed AS (
    SELECT
        merchant_id,
        event_timestamp,
        snapshot,
        count(is_fraud) OVER d7 AS merchant_txn_count_7d,
        avg(is_fraud) OVER d30 AS merchant_fraud_rate_30d
    FROM rows
    WINDOW
        d7 AS ({_W.format(key="merchant_id", start="INTERVAL 7 DAY PRECEDING")}),
        d30 AS ({_W.format(key="merchant_id", start="INTERVAL 30 DAY PRECEDING")})
)
SELECT merchant_id, event_timestamp, merchant_txn_count_7d, merchant_fraud_rate_30d
FROM windowed
WHERE snapshot
ORDER BY event_timestamp, merchant_id
"""


@dataclass(frozen=True)
class FeatureTables:
    """Where the feature Parquet files were written and what they cover (also saved as manifest.json)."""

    user_path: Path
    merchant_path: Path
    user_rows: int
    merchant_rows: int
    transactions: int
    first_event: datetime
    last_event: datetime
    as_of: datetime
    source: str

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps({k: str(v) if not isinstance(v, int) else v for k, v in data.items()}, indent=2)


def feature_data_dir(settings: Settings) -> Path:
    """The folder of the Parquet files the Feast FileSources read."""
    return settings.feast_dir / "data"


def _connect(transactions: Transactions) -> tuple[duckdb.DuckDBPyConnection, str]:
    """A DuckDB connection (UTC) with the transactions as the view ``txn``, and a label for the source."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if isinstance(transactions, pd.DataFrame):
        con.register("src", transactions)
        label = f"DataFrame[{len(transactions)} rows]"
    else:
        path = Path(transactions)
        if path.is_dir():
            pattern = str(path / "**" / "*.parquet")
        elif path.is_file():
            pattern = str(path)
        else:
            raise NotFound(f"transactions not found at {path}: pass a Parquet file or folder, or a DataFrame")
        try:
            con.execute(f"CREATE VIEW src AS SELECT * FROM read_parquet({_quote(pattern)}, union_by_name=true)")
        except duckdb.Error as exc:
            raise InvalidInput(f"cannot read transactions from {path} as Parquet: {exc}") from exc
        label = str(path)
    columns = {row[0] for row in con.execute("DESCRIBE src").fetchall()}
    missing = [c for c in TRANSACTION_COLUMNS if c not in columns]
    if missing:
        raise InvalidInput(f"transactions from {label} lack columns {missing}; "
                           f"expected at least {list(TRANSACTION_COLUMNS)}")
    try:  # timestamps are floored to microseconds (DuckDB's own cast would round nanoseconds)
        con.execute("""
            CREATE TEMP TABLE txn AS SELECT
                user_id::BIGINT AS user_id,
                merchant_id::BIGINT AS merchant_id,
                amount::DOUBLE AS amount,
                is_fraud::DOUBLE AS is_fraud,
                make_timestamp(epoch_ns(event_timestamp) // 1000)::TIMESTAMPTZ AS event_timestamp
            FROM src
        """)
    except duckdb.Error as exc:
        raise InvalidInput(f"transactions from {label} have the wrong types (ids must be integers, amount "
                           f"and is_fraud numbers, event_timestamp a timestamp): {exc}") from exc
    nulls = con.execute("""SELECT count(*) FROM txn WHERE user_id IS NULL OR merchant_id IS NULL
                           OR amount IS NULL OR is_fraud IS NULL OR event_timestamp IS NULL""").fetchone()
    if nulls and nulls[0]:
        raise InvalidInput(f"{nulls[0]} transactions from {label} have a null user_id, merchant_id, amount, "
                           "is_fraud or event_timestamp; drop or fill them before computing features")
    return con, label


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _time_range(con: duckdb.DuckDBPyConnection) -> tuple[int, datetime, datetime]:
    row = con.execute("SELECT count(*), min(event_timestamp), max(event_timestamp) FROM txn").fetchone()
    if row is None or not row[0]:
        raise InvalidInput("the transactions are empty: there is nothing to compute features from")
    return int(row[0]), _utc(row[1]), _utc(row[2])


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _default_as_of(last_event: datetime, as_of: datetime | None) -> datetime:
    if as_of is None:
        return last_event + timedelta(seconds=1)
    as_of = _utc(as_of)
    if as_of <= last_event:
        raise InvalidInput(f"as_of ({as_of}) must be after the last transaction ({last_event}), or the "
                           "snapshot row would collide with a transaction's own row")
    return as_of


def _query(con: duckdb.DuckDBPyConnection, sql: str, as_of: datetime) -> pd.DataFrame:
    frame = con.execute(sql, {"as_of": as_of}).df()
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame


def compute_user_features(transactions: Transactions, as_of: datetime | None = None) -> pd.DataFrame:
    """User activity at and just after each transaction time, plus one row per user at ``as_of``."""
    con, _ = _connect(transactions)
    _, _, last = _time_range(con)
    return _query(con, _USER_SQL, _default_as_of(last, as_of))


def compute_merchant_features(transactions: Transactions, as_of: datetime | None = None) -> pd.DataFrame:
    """Merchant risk at each midnight (UTC) of a day it trades (plus one row at ``as_of``), as a frame."""
    con, _ = _connect(transactions)
    _, _, last = _time_range(con)
    return _query(con, _MERCHANT_SQL, _default_as_of(last, as_of))


def compute_features(settings: Settings, transactions: Transactions,
                     as_of: datetime | None = None) -> FeatureTables:
    """Compute both feature tables and write them as the Parquet sources of the Feast repository.

    Files are replaced atomically, so a concurrent reader sees either the old or the new table.
    """
    con, label = _connect(transactions)
    count, first, last = _time_range(con)
    snapshot = _default_as_of(last, as_of)
    out = feature_data_dir(settings)
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name, sql in ((USER_TABLE, _USER_SQL), (MERCHANT_TABLE, _MERCHANT_SQL)):
        tmp = out / f".{name}.{uuid.uuid4().hex}.tmp"
        try:
            con.execute(f"COPY ({sql}) TO {_quote(str(tmp))} (FORMAT parquet, COMPRESSION zstd)",
                        {"as_of": snapshot})
            os.replace(tmp, out / name)
        finally:
            tmp.unlink(missing_ok=True)
        written = con.execute(f"SELECT count(*) FROM read_parquet({_quote(str(out / name))})").fetchone()
        rows[name] = int(written[0]) if written else 0
    tables = FeatureTables(
        user_path=out / USER_TABLE, merchant_path=out / MERCHANT_TABLE,
        user_rows=rows[USER_TABLE], merchant_rows=rows[MERCHANT_TABLE], transactions=count,
        first_event=first, last_event=last, as_of=snapshot, source=label,
    )
    (out / MANIFEST).write_text(tables.to_json())
    return tables


def fill_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with missing feature values replaced by :data:`FILL_VALUES` (counts as int64)."""
    values = {name: value for name, value in FILL_VALUES.items() if name in frame.columns}
    counts = {name: "int64" for name in COUNT_FEATURES if name in frame.columns}
    return frame.fillna(values).astype(counts)


def read_manifest(settings: Settings) -> dict[str, object]:
    """What the last :func:`compute_features` wrote (paths, row counts, time range), or NotFound."""
    path = feature_data_dir(settings) / MANIFEST
    if not path.is_file():
        raise NotFound(f"no feature tables under {path.parent}: run "
                       "workbench.features.compute_features(settings, transactions) first")
    data: dict[str, object] = json.loads(path.read_text())
    return data
