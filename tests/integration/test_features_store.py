"""The feature stage end to end with Feast in-process: apply, materialize, point-in-time frames, online.

The leak test recomputes every feature of every training row by brute force from the transactions
strictly earlier than the row (merchant features: earlier than the row's UTC midnight) and demands
equality; a twin test feeds it features that peek one hour ahead and checks that it notices.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.config import Settings
from workbench.data.generator import generate_transactions, write_transactions
from workbench.errors import InvalidInput, NotFound
from workbench.features import (
    FILL_VALUES,
    MERCHANT_FEATURES,
    USER_FEATURES,
    apply_repo,
    compute_features,
    materialize,
    online_features,
    repo_info,
    save_training_frame,
    training_frame,
)
from workbench.features import compute as compute_module

pytestmark = pytest.mark.integration

DAY_NS = 86_400 * 10**9
NAN = float("nan")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, pd.DataFrame, Path]]:
    """A repository applied and materialized over 3,000 generated transactions."""
    root = tmp_path_factory.mktemp("features")
    settings = Settings(project_dir=root)
    txns = generate_transactions(3000, seed=7)
    path = write_transactions(txns, root / "transactions.parquet")
    compute_features(settings, path)
    apply_repo(settings)
    materialize(settings)
    yield settings, txns, path


def brute_force(txns: pd.DataFrame, frame: pd.DataFrame, daily_merchants: bool = True) -> pd.DataFrame:
    """Every feature of every row of ``frame``, from the transactions strictly before it, slowly.

    Merchant features count from the row's UTC midnight (the training rows) or, with
    ``daily_merchants=False``, from the row's own time (the snapshot the online store holds).
    """
    t_all = txns["event_timestamp"].astype("int64").to_numpy()  # ns since epoch
    out = {name: np.full(len(frame), NAN) for name in (*USER_FEATURES, *MERCHANT_FEATURES)}
    at = frame["event_timestamp"].astype("int64").to_numpy()
    by_user = {u: np.flatnonzero(txns["user_id"].to_numpy() == u) for u in frame["user_id"].unique()}
    by_merchant = {m: np.flatnonzero(txns["merchant_id"].to_numpy() == m) for m in frame["merchant_id"].unique()}
    amount, fraud = txns["amount"].to_numpy(), txns["is_fraud"].to_numpy().astype(float)
    for i, (user, merchant, t) in enumerate(zip(frame["user_id"], frame["merchant_id"], at, strict=True)):
        mine = by_user[user]
        earlier = mine[t_all[mine] < t]
        d1 = amount[earlier[t_all[earlier] >= t - DAY_NS]]
        d7 = amount[earlier[t_all[earlier] >= t - 7 * DAY_NS]]
        out["user_txn_count_1d"][i] = len(d1)
        out["user_txn_count_7d"][i] = len(d7)
        out["user_amount_mean_1d"][i] = d1.mean() if len(d1) else NAN
        out["user_amount_mean_7d"][i] = d7.mean() if len(d7) else NAN
        out["user_amount_std_7d"][i] = d7.std(ddof=1) if len(d7) > 1 else NAN
        out["user_seconds_since_last_txn"][i] = (t - t_all[earlier].max()) / 1e9 if len(earlier) else NAN
        midnight = t - t % DAY_NS if daily_merchants else t
        theirs = by_merchant[merchant]
        before = theirs[t_all[theirs] < midnight]
        out["merchant_txn_count_7d"][i] = int((t_all[before] >= midnight - 7 * DAY_NS).sum())
        month = fraud[before[t_all[before] >= midnight - 30 * DAY_NS]]
        out["merchant_fraud_rate_30d"][i] = month.mean() if len(month) else NAN
    return pd.DataFrame(out)


def assert_no_leak(txns: pd.DataFrame, frame: pd.DataFrame) -> None:
    expected = brute_force(txns, frame)
    for name in (*USER_FEATURES, *MERCHANT_FEATURES):
        np.testing.assert_allclose(frame[name].to_numpy(dtype=float), expected[name].to_numpy(),
                                   rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=name)


def test_apply_twice_is_harmless_and_registers_the_service(store: tuple[Settings, pd.DataFrame, Path]) -> None:
    settings, _, _ = store
    info = apply_repo(settings)
    assert info.entities == ("merchant", "user")
    assert info.feature_views == {"user_activity": USER_FEATURES, "merchant_risk": MERCHANT_FEATURES}
    assert info.feature_services["fraud_model_v1"] == (
        *(f"user_activity:{n}" for n in USER_FEATURES), *(f"merchant_risk:{n}" for n in MERCHANT_FEATURES))
    assert repo_info(settings).feature_views == info.feature_views
    assert (settings.feast_dir / "feature_store.yaml").is_file() and (settings.feast_dir / "online.db").is_file()


def test_training_frame_uses_only_earlier_transactions(store: tuple[Settings, pd.DataFrame, Path]) -> None:
    settings, txns, path = store
    frame = training_frame(settings, path, fill=False)
    assert len(frame) == len(txns)
    assert list(frame.columns[-1:]) == ["is_fraud"]
    # rows still belong to their transaction: label and request-time columns travel with the id
    original = txns.set_index("transaction_id")
    aligned = original.loc[frame["transaction_id"]]
    np.testing.assert_array_equal(frame["is_fraud"].to_numpy(), aligned["is_fraud"].to_numpy())
    np.testing.assert_array_equal(frame["amount"].to_numpy(), aligned["amount"].to_numpy())
    np.testing.assert_array_equal(frame["user_id"].to_numpy(), aligned["user_id"].to_numpy())
    assert frame["user_txn_count_7d"].max() > 0 and frame["merchant_fraud_rate_30d"].notna().any()
    assert_no_leak(txns, frame)


def test_leak_check_notices_features_that_peek_ahead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     store: tuple[Settings, pd.DataFrame, Path]) -> None:
    _, txns, path = store
    future = "AND INTERVAL 1 HOUR FOLLOWING EXCLUDE GROUP"
    monkeypatch.setattr(compute_module, "_USER_SQL",
                        compute_module._USER_SQL.replace("AND CURRENT ROW EXCLUDE GROUP", future))
    settings = Settings(project_dir=tmp_path)
    apply_repo(settings, transactions=path)
    frame = training_frame(settings, path, fill=False)
    with pytest.raises(AssertionError):
        assert_no_leak(txns, frame)


def test_point_in_time_join_and_online_lookup_on_a_hand_made_case(tmp_path: Path) -> None:
    """User 1 pays 10 at 00:00 and 30 at 12:00: a row at 12:00 sees only the first payment, a row
    after 12:00 sees both; windows do not slide between rows (the 2-day-later row still counts 2)."""
    settings = Settings(project_dir=tmp_path)
    t0 = pd.Timestamp("2024-05-01 00:00", tz="UTC")
    txns = pd.DataFrame({"transaction_id": [1, 2, 3], "user_id": [1, 1, 2], "merchant_id": [7, 7, 8],
                         "amount": [10.0, 30.0, 5.0], "is_fraud": [1, 0, 0],
                         "event_timestamp": [t0, t0 + pd.Timedelta(hours=12), t0 + pd.Timedelta(hours=1)]})
    apply_repo(settings, transactions=txns)
    with pytest.raises(NotFound, match="materialize"):
        online_features(settings, [1], [7])
    when = [t0 + pd.Timedelta(x) for x in ("6h", "11h59min59s", "12h", "12h", "12h0min2s", "2d")]
    entities = pd.DataFrame({"user_id": [1, 1, 1, 1, 1, 1], "merchant_id": [7, 7, 7, 8, 7, 7],
                             "event_timestamp": when})
    frame = training_frame(settings, entities, label=None, fill=False)
    assert len(frame) == 6  # two rows of user 1 at 12:00 (merchants 7 and 8) both survive
    assert frame["user_txn_count_1d"].tolist() == [1, 1, 1, 1, 2, 2]
    np.testing.assert_allclose(frame["user_amount_mean_1d"], [10, 10, 10, 10, 20, 20])
    # merchant 7's day-1 snapshot predates both payments; day 2 (as_of row) sees them and the fraud
    assert frame["merchant_txn_count_7d"].tolist() == [0, 0, 0, 0, 2, 2]
    np.testing.assert_allclose(frame["merchant_fraud_rate_30d"], [NAN, NAN, NAN, NAN, 0.5, 0.5], equal_nan=True)
    materialize(settings)
    online = online_features(settings, [1, 2, 99], [7, 8, 7], fill=False)
    assert online["user_txn_count_1d"].tolist()[:2] == [2, 1]
    assert online["user_amount_mean_1d"].tolist()[:2] == [20.0, 5.0]
    assert online["user_seconds_since_last_txn"].tolist()[:2] == [1.0, 11 * 3600 + 1.0]
    assert online["merchant_fraud_rate_30d"].tolist() == [0.5, 0.0, 0.5]
    assert online.iloc[2][list(USER_FEATURES)].isna().all()  # user 99 is unknown


def test_online_lookup_returns_the_latest_values(store: tuple[Settings, pd.DataFrame, Path]) -> None:
    settings, txns, _ = store
    users = txns["user_id"].drop_duplicates().to_numpy()[:5]
    merchants = txns["merchant_id"].drop_duplicates().to_numpy()[:5]
    as_of = txns["event_timestamp"].max() + pd.Timedelta(seconds=1)
    online = online_features(settings, list(users) + [10**9], list(merchants) + [10**9], fill=False)
    assert online["user_id"].tolist() == [*users.tolist(), 10**9]
    latest = pd.DataFrame({"user_id": users, "merchant_id": merchants, "event_timestamp": as_of})
    expected = brute_force(txns, latest, daily_merchants=False)
    for name in (*USER_FEATURES, *MERCHANT_FEATURES):
        np.testing.assert_allclose(online[name].to_numpy()[:5], expected[name].to_numpy(), rtol=1e-9,
                                   equal_nan=True, err_msg=name)
    assert online.iloc[5][[*USER_FEATURES, *MERCHANT_FEATURES]].isna().all()
    filled = online_features(settings, [10**9], [10**9])
    assert filled.iloc[0][list(FILL_VALUES)].to_dict() == FILL_VALUES
    started = time.perf_counter()
    for user, merchant in zip(users, merchants, strict=True):
        online_features(settings, [user], [merchant])
    assert (time.perf_counter() - started) / len(users) < 0.5  # generous: ~15 ms here


def test_bad_lookups_and_unknown_services_are_clear_errors(store: tuple[Settings, pd.DataFrame, Path]) -> None:
    settings, txns, path = store
    with pytest.raises(InvalidInput, match="empty"):
        online_features(settings, [], [])
    with pytest.raises(InvalidInput, match="one to one"):
        online_features(settings, [1, 2], [3])
    with pytest.raises(InvalidInput, match="integer ids"):
        online_features(settings, ["a"], [3])
    with pytest.raises(NotFound, match=r"'fraud_model_v9'.*fraud_model_v1"):
        training_frame(settings, path, feature_service="fraud_model_v9")
    with pytest.raises(NotFound, match="fraud_model_v9"):
        online_features(settings, [1], [2], feature_service="fraud_model_v9")
    with pytest.raises(NotFound, match="apply_repo"):
        materialize(Settings(project_dir=settings.project_dir / "elsewhere"))
    changed = settings.replace(feast_online_store="redis", feast_online_store_connection="localhost:6379")
    with pytest.raises(InvalidInput, match="apply_repo"):
        online_features(changed, [1], [2])


def test_filled_frame_saves_under_its_content_hash(store: tuple[Settings, pd.DataFrame, Path]) -> None:
    settings, txns, path = store
    frame = training_frame(settings, txns.iloc[:500])
    assert not frame[[*USER_FEATURES, *MERCHANT_FEATURES]].isna().any().any()
    saved, version = save_training_frame(frame, settings)
    assert saved.parent == settings.feast_dir / "frames" and version in saved.name
    pd.testing.assert_frame_equal(pd.read_parquet(saved), frame)
    again = training_frame(settings, txns.iloc[:500])
    assert save_training_frame(again, settings) == (saved, version)  # same inputs, same frame, same hash
