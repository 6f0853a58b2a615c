"""Feature values on a tiny hand-made frame, checked against values worked out by hand.

The frame (all UTC, 2024-01):
    a  user 1  merchant 10  01 00:00  amount  10  fraud 0
    b  user 1  merchant 10  01 00:00  amount  20  fraud 1   (same instant as a)
    c  user 2  merchant 10  01 06:00  amount   5  fraud 0
    d  user 1  merchant 11  01 12:00  amount  40  fraud 0
    e  user 1  merchant 10  02 00:00  amount  80  fraud 1   (exactly one day after a and b)
    f  user 1  merchant 10  09 00:00  amount 100  fraud 0   (exactly seven days after e)
The snapshot time (as_of) is one second after f.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound
from workbench.features import compute
from workbench.features.compute import (
    FILL_VALUES,
    compute_features,
    compute_merchant_features,
    compute_user_features,
    fill_missing,
    read_manifest,
)

NAN = float("nan")
DAY = pd.Timedelta(days=1)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture()
def txns() -> pd.DataFrame:
    return pd.DataFrame({
        "transaction_id": ["a", "b", "c", "d", "e", "f"],
        "user_id": [1, 1, 2, 1, 1, 1],
        "merchant_id": [10, 10, 10, 11, 10, 10],
        "category": "grocery",
        "amount": [10.0, 20.0, 5.0, 40.0, 80.0, 100.0],
        "event_timestamp": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:00", "2024-01-01 06:00",
                                           "2024-01-01 12:00", "2024-01-02 00:00", "2024-01-09 00:00"],
                                          utc=True),
        "device": "web",
        "country": "US",
        "is_fraud": [0, 1, 0, 0, 1, 0],
    })


def row(frame: pd.DataFrame, key: str, entity: int, when: str) -> pd.Series:
    hits = frame[(frame[key] == entity) & (frame["event_timestamp"] == ts(when))]
    assert len(hits) == 1, f"expected one row for {key}={entity} at {when}, got {len(hits)}"
    return hits.iloc[0]


def check(actual: pd.Series, expected: dict[str, float]) -> None:
    for name, value in expected.items():
        got = float(actual[name])
        if math.isnan(value):
            assert math.isnan(got), f"{name}: expected NaN, got {got}"
        else:
            assert got == pytest.approx(value, rel=1e-12), f"{name}: expected {value}, got {got}"


def test_user_features_match_hand_computed_values(txns: pd.DataFrame) -> None:
    users = compute_user_features(txns)
    # two rows per (user, instant), at it and 1 µs after (a and b share theirs); one as_of row per user
    assert len(users) == 2 * 5 + 2
    assert users["event_timestamp"].is_monotonic_increasing
    first = {"user_txn_count_1d": 0, "user_txn_count_7d": 0, "user_amount_mean_1d": NAN,
             "user_amount_mean_7d": NAN, "user_amount_std_7d": NAN, "user_seconds_since_last_txn": NAN}
    check(row(users, "user_id", 1, "2024-01-01 00:00"), first)  # a and b do not see each other
    check(row(users, "user_id", 2, "2024-01-01 06:00"), first)  # user 2 does not see user 1
    check(row(users, "user_id", 1, "2024-01-01 12:00"), {
        "user_txn_count_1d": 2, "user_txn_count_7d": 2, "user_amount_mean_1d": 15.0,
        "user_amount_mean_7d": 15.0, "user_amount_std_7d": float(np.std([10, 20], ddof=1)),
        "user_seconds_since_last_txn": 12 * 3600.0})
    # e: the window [t - 1 day, t) includes a and b, which lie exactly one day earlier
    check(row(users, "user_id", 1, "2024-01-02 00:00"), {
        "user_txn_count_1d": 3, "user_txn_count_7d": 3, "user_amount_mean_1d": 70 / 3,
        "user_amount_mean_7d": 70 / 3, "user_amount_std_7d": float(np.std([10, 20, 40], ddof=1)),
        "user_seconds_since_last_txn": 12 * 3600.0})
    # f: nothing in the last day; in the last 7 days only e (exactly 7 days earlier); not f itself
    check(row(users, "user_id", 1, "2024-01-09 00:00"), {
        "user_txn_count_1d": 0, "user_txn_count_7d": 1, "user_amount_mean_1d": NAN,
        "user_amount_mean_7d": 80.0, "user_amount_std_7d": NAN, "user_seconds_since_last_txn": 7 * 86400.0})
    # the row 1 µs after a and b holds both of them
    check(row(users, "user_id", 1, "2024-01-01 00:00:00.000001"), {
        "user_txn_count_1d": 2, "user_amount_mean_1d": 15.0, "user_seconds_since_last_txn": 1e-6})


def test_snapshot_rows_include_the_latest_transactions(txns: pd.DataFrame) -> None:
    users = compute_user_features(txns)
    merchants = compute_merchant_features(txns)
    as_of = "2024-01-09 00:00:01"
    check(row(users, "user_id", 1, as_of), {
        "user_txn_count_1d": 1, "user_txn_count_7d": 1, "user_amount_mean_1d": 100.0,
        "user_amount_mean_7d": 100.0, "user_seconds_since_last_txn": 1.0})
    check(row(users, "user_id", 2, as_of), {
        "user_txn_count_1d": 0, "user_txn_count_7d": 0,
        "user_seconds_since_last_txn": (ts(as_of) - ts("2024-01-01 06:00")).total_seconds()})
    check(row(merchants, "merchant_id", 10, as_of), {"merchant_txn_count_7d": 1, "merchant_fraud_rate_30d": 2 / 5})
    check(row(merchants, "merchant_id", 11, as_of), {"merchant_txn_count_7d": 0, "merchant_fraud_rate_30d": 0.0})


def test_merchant_features_are_daily_snapshots_of_earlier_days(txns: pd.DataFrame) -> None:
    merchants = compute_merchant_features(txns)
    # merchant 10 trades on 01, 02, 09; merchant 11 on 01; plus one as_of row each
    assert len(merchants) == 4 + 2
    check(row(merchants, "merchant_id", 10, "2024-01-01"), {"merchant_txn_count_7d": 0,
                                                           "merchant_fraud_rate_30d": NAN})
    # midnight of the 2nd: a, b, c count; e (at that very midnight) does not
    check(row(merchants, "merchant_id", 10, "2024-01-02"), {"merchant_txn_count_7d": 3,
                                                           "merchant_fraud_rate_30d": 1 / 3})
    # midnight of the 9th: 7 days back reaches e exactly; 30 days hold a, b, c, e; f is excluded
    check(row(merchants, "merchant_id", 10, "2024-01-09"), {"merchant_txn_count_7d": 1,
                                                           "merchant_fraud_rate_30d": 2 / 4})
    check(row(merchants, "merchant_id", 11, "2024-01-01"), {"merchant_txn_count_7d": 0,
                                                           "merchant_fraud_rate_30d": NAN})


def test_a_label_never_feeds_its_own_row_or_earlier_rows(txns: pd.DataFrame) -> None:
    before = compute_merchant_features(txns)
    flipped = txns.assign(is_fraud=np.where(txns["transaction_id"] == "e", 0, txns["is_fraud"]))
    after = compute_merchant_features(flipped)
    e_time = ts("2024-01-02 00:00")
    unchanged = before["event_timestamp"] <= e_time
    pd.testing.assert_frame_equal(before[unchanged], after[unchanged])
    later = after[(after["merchant_id"] == 10) & (after["event_timestamp"] == ts("2024-01-09"))].iloc[0]
    assert later["merchant_fraud_rate_30d"] == pytest.approx(1 / 4)  # later rows do see e's label


def test_a_later_amount_never_changes_earlier_user_rows(txns: pd.DataFrame) -> None:
    before = compute_user_features(txns)
    after = compute_user_features(txns.assign(amount=np.where(txns["transaction_id"] == "d", 4000.0, txns["amount"])))
    unchanged = before["event_timestamp"] <= ts("2024-01-01 12:00")
    pd.testing.assert_frame_equal(before[unchanged], after[unchanged])
    assert not before[~unchanged].equals(after[~unchanged])


def brute_force_user(txns: pd.DataFrame, user: int, at: pd.Timestamp) -> dict[str, float]:
    earlier = txns[(txns["user_id"] == user) & (txns["event_timestamp"] < at)]
    d1 = earlier[earlier["event_timestamp"] >= at - DAY]["amount"]
    d7 = earlier[earlier["event_timestamp"] >= at - 7 * DAY]["amount"]
    return {"user_txn_count_1d": len(d1), "user_txn_count_7d": len(d7),
            "user_amount_mean_1d": d1.mean() if len(d1) else NAN,
            "user_amount_mean_7d": d7.mean() if len(d7) else NAN,
            "user_amount_std_7d": d7.std(ddof=1) if len(d7) > 1 else NAN,
            "user_seconds_since_last_txn":
                (at - earlier["event_timestamp"].max()).total_seconds() if len(earlier) else NAN}


def assert_matches_brute_force(txns: pd.DataFrame, users: pd.DataFrame) -> None:
    for _, got in users.iterrows():
        check(got, brute_force_user(txns, int(got["user_id"]), got["event_timestamp"]))


def random_txns(n: int = 400, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, 20 * 86400, n))
    seconds[10:20] = seconds[10]  # some exact ties
    return pd.DataFrame({
        "transaction_id": np.arange(n), "user_id": rng.integers(0, 12, n), "merchant_id": rng.integers(0, 5, n),
        "amount": rng.gamma(2.0, 30.0, n).round(2),
        "event_timestamp": pd.Timestamp("2024-03-01", tz="UTC") + pd.to_timedelta(np.sort(seconds), unit="s"),
        "is_fraud": (rng.random(n) < 0.2).astype(int)})


def test_user_features_equal_brute_force_on_random_data() -> None:
    txns = random_txns()
    assert_matches_brute_force(txns, compute_user_features(txns))


def test_brute_force_check_catches_a_window_that_includes_the_current_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: with the current row (and its peers) left in the window, it does."""
    txns = random_txns()
    monkeypatch.setattr(compute, "_USER_SQL", compute._USER_SQL.replace("EXCLUDE GROUP", "EXCLUDE NO OTHERS"))
    with pytest.raises(AssertionError):
        assert_matches_brute_force(txns, compute_user_features(txns))


def test_compute_features_writes_parquet_and_manifest(tmp_path: Path, txns: pd.DataFrame) -> None:
    settings = Settings(project_dir=tmp_path)
    source = tmp_path / "txns"
    source.mkdir()
    txns.iloc[:3].to_parquet(source / "part-0.parquet")
    txns.iloc[3:].to_parquet(source / "part-1.parquet")
    tables = compute_features(settings, source)  # a folder of parts
    assert tables.user_path == settings.feast_dir / "data" / "user_activity.parquet"
    assert (tables.transactions, tables.user_rows, tables.merchant_rows) == (6, 12, 6)
    assert tables.as_of == ts("2024-01-09 00:00:01").to_pydatetime()
    written = pd.read_parquet(tables.user_path)
    pd.testing.assert_frame_equal(written, compute_user_features(txns), check_dtype=False)
    assert str(written["event_timestamp"].dt.tz) == "UTC"
    manifest = read_manifest(settings)
    assert manifest["transactions"] == 6 and manifest["source"] == str(source)
    assert not list((settings.feast_dir / "data").glob("*.tmp"))


def test_amount_sums_are_exact_so_every_run_gives_the_same_bits() -> None:
    """0.1 + 0.2 + 0.3 in floating point is 0.6000000000000001 and depends on the order of addition
    (DuckDB's threads choose it); in whole cents it is exactly 60, so the mean is exactly 0.2."""
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    txns = pd.DataFrame({"user_id": 1, "merchant_id": 1, "is_fraud": 0, "amount": [0.1, 0.2, 0.3, 1.0],
                         "event_timestamp": [t0 + pd.Timedelta(minutes=m) for m in range(4)]})
    last = row(compute_user_features(txns), "user_id", 1, "2024-01-01 00:03")
    assert last["user_amount_mean_1d"] == 0.2 and last["user_amount_mean_7d"] == 0.2
    assert last["user_amount_std_7d"] == pytest.approx(0.1, rel=1e-15)


def test_nanoseconds_are_floored_like_microsecond_data(txns: pd.DataFrame) -> None:
    shifted = txns.assign(event_timestamp=txns["event_timestamp"] + pd.Timedelta(nanoseconds=999))
    pd.testing.assert_frame_equal(compute_user_features(shifted), compute_user_features(txns))


def test_explicit_as_of_and_its_check(txns: pd.DataFrame) -> None:
    users = compute_user_features(txns, as_of=ts("2024-01-10 00:00").to_pydatetime())
    check(row(users, "user_id", 1, "2024-01-10 00:00"),
          {"user_txn_count_1d": 1, "user_seconds_since_last_txn": 86400.0})
    with pytest.raises(InvalidInput, match="after the last transaction"):
        compute_user_features(txns, as_of=ts("2024-01-09 00:00").to_pydatetime())


def test_bad_input_gives_actionable_errors(tmp_path: Path, txns: pd.DataFrame) -> None:
    with pytest.raises(InvalidInput, match=r"lack columns \['is_fraud'\]"):
        compute_user_features(txns.drop(columns="is_fraud"))
    with pytest.raises(InvalidInput, match="empty"):
        compute_user_features(txns.iloc[:0])
    with pytest.raises(InvalidInput, match="null"):
        compute_user_features(txns.assign(amount=[1.0, None, 3.0, 4.0, 5.0, 6.0]))
    with pytest.raises(NotFound, match="not found"):
        compute_user_features(tmp_path / "missing.parquet")
    with pytest.raises(NotFound, match="compute_features"):
        read_manifest(Settings(project_dir=tmp_path))


def test_fill_missing_uses_no_history_values(txns: pd.DataFrame) -> None:
    users = compute_user_features(txns)
    filled = fill_missing(users)
    assert not filled.isna().any().any()
    first = row(filled, "user_id", 2, "2024-01-01 06:00")
    assert first["user_seconds_since_last_txn"] == FILL_VALUES["user_seconds_since_last_txn"] == 30 * 86400
    assert first["user_amount_mean_7d"] == 0.0 and filled["user_txn_count_1d"].dtype == "int64"
    assert users["user_amount_mean_7d"].isna().any()  # the input is left alone
