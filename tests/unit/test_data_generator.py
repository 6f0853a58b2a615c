"""The transaction generator: deterministic, well-formed, and with a fraud label that follows its signals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from workbench.data.generator import CATEGORIES, COUNTRIES, DEVICES, generate_transactions, write_transactions
from workbench.errors import InvalidInput

COLUMNS = ["transaction_id", "user_id", "merchant_id", "category", "amount", "event_timestamp", "device",
           "country", "is_night", "is_fraud"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_transactions(60_000, seed=11)


def test_same_seed_same_frame_other_seed_other_frame() -> None:
    a = generate_transactions(3_000, seed=5)
    b = generate_transactions(3_000, seed=5)
    c = generate_transactions(3_000, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert not a["amount"].equals(c["amount"])
    assert not a["user_id"].equals(c["user_id"])


def test_columns_types_and_ranges(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 60_000
    assert frame["transaction_id"].is_unique
    assert frame["user_id"].dtype == np.int64 and frame["merchant_id"].dtype == np.int64
    assert str(frame["event_timestamp"].dt.tz) == "UTC"
    assert frame["event_timestamp"].is_monotonic_increasing
    start = pd.Timestamp("2026-01-01", tz="UTC")
    assert frame["event_timestamp"].min() >= start
    assert frame["event_timestamp"].max() < start + pd.Timedelta(days=30)
    assert (frame["amount"] > 0).all()
    assert set(frame["category"]) <= set(CATEGORIES) and frame["category"].nunique() == 10
    assert set(frame["device"]) == set(DEVICES)
    assert set(frame["country"]) <= set(COUNTRIES)
    assert set(frame["is_fraud"].unique()) == {0, 1}
    hours = frame["event_timestamp"].dt.hour
    assert (frame["is_night"] == (hours < 6)).all()


def test_sizes_and_start_are_honoured() -> None:
    df = generate_transactions(2_000, seed=1, n_users=7, n_merchants=3, start="2025-06-01", days=2)
    assert df["user_id"].nunique() <= 7 and df["user_id"].max() < 7
    assert df["merchant_id"].max() < 3
    assert df["event_timestamp"].min() >= pd.Timestamp("2025-06-01", tz="UTC")
    assert df["event_timestamp"].max() < pd.Timestamp("2025-06-03", tz="UTC")
    assert generate_transactions(0).shape == (0, 10)


@pytest.mark.parametrize("kwargs", [{"n_rows": -1}, {"n_rows": 10, "days": 0}, {"n_rows": 10, "n_users": 0},
                                    {"n_rows": 10, "start": "not a date"}])
def test_bad_arguments_are_rejected(kwargs: dict) -> None:
    with pytest.raises(InvalidInput):
        generate_transactions(**kwargs)


def test_fraud_rate_is_realistic(frame: pd.DataFrame) -> None:
    assert 0.01 <= frame["is_fraud"].mean() <= 0.05


@pytest.fixture(scope="module")
def signals(frame: pd.DataFrame) -> pd.DataFrame:
    """Features a data scientist would build from the raw columns (no access to hidden parameters)."""
    df = frame
    d = df.sort_values(["user_id", "event_timestamp"], kind="stable").copy()
    d["log_ratio"] = np.log(d["amount"] / d.groupby("user_id")["amount"].transform("median"))
    gap = d.groupby("user_id")["event_timestamp"].diff().dt.total_seconds()
    d["burst"] = (gap < 600).astype(float)
    d["new_merchant"] = (~d.duplicated(["user_id", "merchant_id"])).astype(float)
    home = d.groupby("user_id")["country"].agg(lambda s: s.value_counts().index[0])
    d["foreign"] = (d["country"].to_numpy() != home.reindex(d["user_id"]).to_numpy()).astype(float)
    d["night"] = d["is_night"].astype(float)
    return d


def test_fraud_follows_each_signal(signals: pd.DataFrame) -> None:
    d = signals
    rate = d["is_fraud"].mean()
    assert d.loc[d["night"] == 1, "is_fraud"].mean() > 1.5 * d.loc[d["night"] == 0, "is_fraud"].mean()
    assert d.loc[d["log_ratio"] > 1.0, "is_fraud"].mean() > 2 * rate
    assert d.loc[d["burst"] == 1, "is_fraud"].mean() > 1.5 * d.loc[d["burst"] == 0, "is_fraud"].mean()
    assert d.loc[d["foreign"] == 1, "is_fraud"].mean() > 2 * d.loc[d["foreign"] == 0, "is_fraud"].mean()
    assert d.loc[d["new_merchant"] == 1, "is_fraud"].mean() > d.loc[d["new_merchant"] == 0, "is_fraud"].mean()


def test_a_model_on_those_signals_beats_random_clearly(signals: pd.DataFrame) -> None:
    d = signals.sort_values("event_timestamp", kind="stable")
    x = d[["log_ratio", "burst", "new_merchant", "foreign", "night"]].to_numpy()
    y = d["is_fraud"].to_numpy()
    half = len(d) // 2  # train on the first half in time, score the second
    model = LogisticRegression(max_iter=500).fit(x[:half], y[:half])
    auc = roc_auc_score(y[half:], model.predict_proba(x[half:])[:, 1])
    assert auc > 0.7


def test_write_one_file_and_parts(tmp_path: Path) -> None:
    df = generate_transactions(2_500, seed=2)
    single = write_transactions(df, tmp_path / "tx.parquet")
    back = pd.read_parquet(single)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert str(back["event_timestamp"].dt.tz) == "UTC"

    folder = write_transactions(df, tmp_path / "parts", rows_per_file=1_000)
    parts = sorted(p.name for p in folder.iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    again = pd.concat([pd.read_parquet(folder / p) for p in parts], ignore_index=True)
    pd.testing.assert_frame_equal(again, df, check_dtype=False)


def test_write_refuses_to_clobber_unless_asked(tmp_path: Path) -> None:
    df = generate_transactions(100, seed=2)
    write_transactions(df, tmp_path / "parts", rows_per_file=40)
    with pytest.raises(InvalidInput, match="not empty"):
        write_transactions(df, tmp_path / "parts")
    write_transactions(df.iloc[:10], tmp_path / "parts", overwrite=True)
    assert [p.name for p in (tmp_path / "parts").iterdir()] == ["part-00000.parquet"]
    with pytest.raises(InvalidInput):
        write_transactions(df, tmp_path / "x", rows_per_file=0)
