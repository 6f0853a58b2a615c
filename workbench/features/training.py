"""Point-in-time correct training frames, and saving them under a content hash for the next stage.

A training row is a transaction: its keys and timestamp, what is known when it is scored (amount,
hour, device, country, …), the feature service's features as of that moment (Feast joins the latest
feature row at or before the timestamp, which :mod:`workbench.features.compute` builds only from
earlier transactions) and, last, the label.
"""

from __future__ import annotations

import hashlib
import os
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound, WorkbenchError
from workbench.features.compute import MERCHANT_FEATURES, USER_FEATURES, Transactions, fill_missing, read_manifest
from workbench.features.repo import FEATURE_SERVICE, feature_store, get_feature_service

if TYPE_CHECKING:
    from feast import FeatureStore

ENTITY_KEYS = ("user_id", "merchant_id", "event_timestamp")
_KEY_ROW = "_workbench_key_row"
REQUEST_FEATURES = ("amount", "hour_of_day", "is_night")
"""Numeric columns known when a transaction is scored, taken from the request rather than from Feast."""
MODEL_FEATURES = (*REQUEST_FEATURES, *USER_FEATURES, *MERCHANT_FEATURES)
"""The numeric model inputs of a ``fraud_model_v1`` training frame, in a stable order."""
JOIN_ROWS_PER_CHUNK = 4_000_000
"""Rows of Feast's in-memory merge per call: ~0.6 GB; beyond it the frame is built in several calls."""


def entity_frame(transactions: Transactions, label: str | None = "is_fraud") -> pd.DataFrame:
    """The entity frame for Feast: every column of the transactions plus request-time ``hour_of_day`` and
    ``is_night`` (0-6 h UTC), with a UTC ``event_timestamp``.
    """
    if isinstance(transactions, pd.DataFrame):
        frame = transactions.copy()
    else:
        path = Path(transactions)
        if not path.exists():
            raise NotFound(f"transactions not found at {path}: pass a Parquet file or folder, or a DataFrame")
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:
            raise InvalidInput(f"cannot read transactions from {path} as Parquet: {exc}") from exc
    required = [*ENTITY_KEYS, *([label] if label else [])]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InvalidInput(f"the entity frame lacks columns {missing}; it needs {required}"
                           + (" (pass label=None for scoring without labels)" if label in missing else ""))
    if frame.empty:
        raise InvalidInput("the entity frame is empty: there is nothing to build a training frame for")
    try:
        stamps = pd.to_datetime(frame["event_timestamp"])
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"event_timestamp must hold timestamps: {exc}") from exc
    stamps = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    frame["event_timestamp"] = stamps.astype("datetime64[ns, UTC]").dt.floor("us")  # as compute_features
    for key in ("user_id", "merchant_id"):
        try:
            frame[key] = frame[key].astype("int64")
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{key} must hold integer ids without nulls: {exc}") from exc
    if "hour_of_day" not in frame.columns:
        frame["hour_of_day"] = frame["event_timestamp"].dt.hour.astype("int64")
    if "is_night" not in frame.columns:
        frame["is_night"] = (frame["event_timestamp"].dt.hour < 6).astype("int64")
    return frame.reset_index(drop=True)


def _feast_keys(entities: pd.DataFrame) -> pd.DataFrame:
    """The distinct entity keys to send to Feast, each with a row id, and a timestamp unique per row.

    Feast's file store merges every entity row with every feature row of its entity (so the extra
    columns are left out and joined back afterwards) and, after joining each view, collapses entity
    rows with equal (keys joined so far, timestamp): two transactions of one user in the same second
    at different merchants would lose one row. Adding the row's rank among equal timestamps in
    nanoseconds keeps them apart and changes nothing else, since feature rows sit on whole microseconds.
    """
    keys = entities[list(ENTITY_KEYS)].drop_duplicates(ignore_index=True)
    keys[_KEY_ROW] = range(len(keys))
    rank = keys.groupby("event_timestamp").cumcount()
    if len(rank) and rank.max() >= 1000:
        raise InvalidInput(f"{rank.max() + 1} entity rows share one timestamp; at most 1000 can (Feast's "
                           "point-in-time join would merge them): spread or sample the entity frame")
    keys["event_timestamp"] = keys["event_timestamp"] + pd.to_timedelta(rank.to_numpy(), unit="ns")
    return keys


def _join_cost(store: FeatureStore, service: Any, keys: pd.DataFrame) -> np.ndarray:
    """Per entity row, how many rows Feast's merge makes of it: its entity's feature rows, per view."""
    cost = np.zeros(len(keys), dtype=np.int64)
    con = duckdb.connect()
    for projection in service.feature_view_projections:
        view = store.get_feature_view(projection.name, allow_registry_cache=True)
        path = getattr(view.batch_source, "path", "")
        join_keys = [c.name for c in view.entity_columns]
        if not path or not Path(path).exists() or not set(join_keys) <= set(keys.columns):
            cost += 1
            continue
        cols = ", ".join(f'"{k}"' for k in join_keys)
        counts = con.execute(f"SELECT {cols}, count(*) AS _n FROM read_parquet($p) GROUP BY ALL", {"p": path}).df()
        merged = keys[join_keys].merge(counts, how="left", on=join_keys)["_n"]
        cost += merged.fillna(1).clip(lower=1).astype("int64").to_numpy()
    return cost


def _chunks(cost: np.ndarray, rows_per_chunk: int) -> list[np.ndarray]:
    """Consecutive row positions, greedily split so each chunk's merge stays under ``rows_per_chunk``
    (a single row costlier than that gets a chunk of its own)."""
    if rows_per_chunk < 1:
        raise InvalidInput(f"rows_per_chunk must be >= 1, got {rows_per_chunk}")
    starts, total = [0], 0
    for i, c in enumerate(cost.tolist()):
        if total and total + c > rows_per_chunk:
            starts.append(i)
            total = 0
        total += c
    return [c for c in np.split(np.arange(len(cost)), starts[1:]) if len(c)]


def training_frame(settings: Settings, entity_df_or_dataset: Transactions,
                   feature_service: str = FEATURE_SERVICE, label: str | None = "is_fraud",
                   fill: bool = True, rows_per_chunk: int = JOIN_ROWS_PER_CHUNK) -> pd.DataFrame:
    """Join the feature service's features, as of each row's ``event_timestamp``, onto the transactions.

    ``entity_df_or_dataset`` is a transactions Parquet file/folder or a frame with at least ``user_id``,
    ``merchant_id``, ``event_timestamp`` (and ``label`` unless it is None). Rows come back sorted by time
    (then ``transaction_id`` when present), one per input row. Features with no history (a first
    transaction) are NaN; ``fill`` (the default) replaces them with ``FILL_VALUES``, as
    :func:`online_features` does, since the training stage takes no missing values.

    Feast's file offline store joins each entity row with all feature rows of its user (and merchant),
    in memory; the entity rows are sent in chunks whose join stays under ``rows_per_chunk`` rows
    (about 150 bytes each), so a large frame takes longer instead of exhausting memory.
    """
    store = feature_store(settings)
    service = get_feature_service(store, feature_service)
    read_manifest(settings)  # NotFound, saying what to run, when the feature tables were never computed
    features = [f.name for p in service.feature_view_projections for f in p.features]
    entities = entity_frame(entity_df_or_dataset, label)
    clash = sorted(set(features) & set(entities.columns))
    if clash:
        raise InvalidInput(f"the entity frame already has feature columns {clash}: drop them first")
    keys = _feast_keys(entities)
    chunks = _chunks(_join_cost(store, service, keys), rows_per_chunk)
    parts = []
    for chunk in tqdm(chunks, desc="training frame", unit="chunk", disable=len(chunks) < 2):
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Discarding nonzero nanoseconds")
                parts.append(store.get_historical_features(entity_df=keys.iloc[chunk], features=service).to_df())
        except Exception as exc:
            raise WorkbenchError(f"Feast could not build the training frame from {feature_service!r}: "
                                 f"{exc}") from exc
    joined = pd.concat(parts, ignore_index=True)
    if len(joined) != len(keys) or set(joined[_KEY_ROW]) != set(keys[_KEY_ROW]):
        raise WorkbenchError(f"Feast returned {len(joined)} rows for {len(keys)} distinct entity keys")
    keys["event_timestamp"] = keys["event_timestamp"].dt.floor("us")  # undo the tie-break
    rows = entities.merge(keys, on=list(ENTITY_KEYS), how="left", validate="many_to_one")
    rows = rows.merge(joined[[_KEY_ROW, *features]], on=_KEY_ROW, how="left", validate="many_to_one")
    order = ["event_timestamp", *(["transaction_id"] if "transaction_id" in rows.columns else [])]
    rows = rows.sort_values(order, kind="stable").reset_index(drop=True)
    front = [c for c in entities.columns if c != label]
    columns = [*front, *features, *([label] if label else [])]
    return fill_missing(rows[columns]) if fill else rows[columns]


def frame_version(frame: pd.DataFrame) -> str:
    """A content hash of a frame (column names, dtypes and values; not the index), 16 hex digits."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(f"{c}:{t}" for c, t in frame.dtypes.astype(str).items()).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def save_training_frame(frame: pd.DataFrame, settings: Settings) -> tuple[Path, str]:
    """Write the frame to ``<feast_dir>/frames/frame-<hash>.parquet`` and return (path, hash).

    The name is the content hash, so the same frame saved twice is one file and the next stage can
    check it received exactly what was built.
    """
    if frame.empty:
        raise InvalidInput("the training frame is empty: nothing to save")
    version = frame_version(frame)
    folder = settings.feast_dir / "frames"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"frame-{version}.parquet"
    if not path.is_file():
        tmp = folder / f".frame-{version}.{uuid.uuid4().hex}.tmp"
        try:
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path, version
