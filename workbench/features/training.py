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
from pathlib import Path

import pandas as pd

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound, WorkbenchError
from workbench.features.compute import Transactions
from workbench.features.repo import FEATURE_SERVICE, feature_store, get_feature_service

ENTITY_KEYS = ("user_id", "merchant_id", "event_timestamp")


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
    stamps = pd.to_datetime(frame["event_timestamp"])
    frame["event_timestamp"] = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
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


def training_frame(settings: Settings, entity_df_or_dataset: Transactions,
                   feature_service: str = FEATURE_SERVICE, label: str | None = "is_fraud") -> pd.DataFrame:
    """Join the feature service's features, as of each row's ``event_timestamp``, onto the transactions.

    ``entity_df_or_dataset`` is a transactions Parquet file/folder or a frame with at least ``user_id``,
    ``merchant_id``, ``event_timestamp`` (and ``label`` unless it is None). Rows come back sorted by time
    (then ``transaction_id`` when present), one per input row; features with no history are NaN.
    """
    store = feature_store(settings)
    service = get_feature_service(store, feature_service)
    features = [f.name for p in service.feature_view_projections for f in p.features]
    entities = entity_frame(entity_df_or_dataset, label)
    clash = sorted(set(features) & set(entities.columns))
    if clash:
        raise InvalidInput(f"the entity frame already has feature columns {clash}: drop them first")
    try:
        joined = store.get_historical_features(entity_df=entities, features=service).to_df()
    except Exception as exc:
        raise WorkbenchError(f"Feast could not build the training frame from {feature_service!r}: {exc}") from exc
    if len(joined) != len(entities):
        raise WorkbenchError(f"Feast returned {len(joined)} rows for {len(entities)} entity rows; "
                             "check the entity frame for duplicate rows")
    order = ["event_timestamp", *(["transaction_id"] if "transaction_id" in joined.columns else [])]
    joined = joined.sort_values(order, kind="stable").reset_index(drop=True)
    joined["event_timestamp"] = pd.to_datetime(joined["event_timestamp"], utc=True)
    front = [c for c in entities.columns if c != label]
    columns = [*front, *features, *([label] if label else [])]
    return joined[columns]


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
