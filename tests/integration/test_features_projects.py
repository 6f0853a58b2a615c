"""Feature projects with the real Feast (Python API): declared features, point in time, no skew.

* windowed aggregates, time since last and precomputed columns of the training frame equal a direct
  pandas computation from the rows strictly before each row;
* the DuckDB training frame equals Feast's ``get_historical_features`` row for row;
* the skew test: at several request times (inside the data, just after it, days later), the online
  lookup equals ``get_historical_features`` for the same entities and times, and windows age;
* two projects side by side: applying and materializing one leaves the other's online values alone;
* the fraud declaration applies and serves.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.config import Settings
from workbench.data.generator import generate_transactions
from workbench.errors import InvalidInput, NotFound
from workbench.features import (
    Aggregate,
    ColumnsView,
    Entity,
    FeatureDeclaration,
    Relative,
    RequestTime,
    SecondsSinceLast,
    WindowedView,
    apply_features,
    feature_frame,
    fraud_features,
    materialize_features,
    online_features,
    project_for_service,
    project_store,
)
from workbench.features.stream import state_keys, stream_batches, write_states_as_of

pytestmark = pytest.mark.integration

US = 1_000_000
H, D = 3_600, 86_400


def declaration(name: str) -> FeatureDeclaration:
    return FeatureDeclaration(
        name=name, timestamp="event_timestamp",
        entities=(Entity("user", ("user_id",)), Entity("user_merchant", ("user_id", "merchant_id"))),
        views=(
            WindowedView("user_activity", "user", (
                Aggregate("count", "1h", name="n_1h"),
                Aggregate("count", "1d", name="n_1d"),
                Aggregate("sum", "1d", column="amount", name="sum_1d"),
                Aggregate("mean", "1d", column="amount", name="mean_1d"),
                Aggregate("std", "1d", column="amount", name="std_1d", fill=-1.0),
                Aggregate("max", "1d", column="amount", name="max_1d"),
                Aggregate("count", "ever", name="n_ever"),
            )),
            WindowedView("pair", "user_merchant", (Aggregate("count", "ever", name="pair_n"),)),
            ColumnsView("profile", "user", ("device",)),
        ),
        on_demand=(SecondsSinceLast("user", name="since_last", fill=-1.0),
                   Relative("amount_vs_mean", value="amount", to="mean_1d", fill=1.0),
                   RequestTime("hour")),
        request_columns=("amount",),
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, pd.DataFrame]]:
    """Project ``ft_a`` applied over 240 generated transactions (12 users, 4 days)."""
    settings = Settings(project_dir=tmp_path_factory.mktemp("ft_projects"))
    txns = generate_transactions(240, seed=3, n_users=12, n_merchants=6, days=4)
    apply_features(settings, declaration("ft_a"), txns)
    yield settings, txns


def _us(values: pd.Series) -> np.ndarray:
    return ((pd.to_datetime(values, utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, "us")).to_numpy()


def expected(txns: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Every feature of ``rows`` (user_id, merchant_id, amount, event_timestamp) from earlier rows, slowly."""
    ts, users = _us(txns["event_timestamp"]), txns["user_id"].to_numpy()
    merchants, amounts, devices = txns["merchant_id"].to_numpy(), txns["amount"].to_numpy(), txns["device"].to_numpy()
    out = []
    for user, merchant, amount, t in zip(rows["user_id"], rows["merchant_id"], rows["amount"],
                                         _us(rows["event_timestamp"]), strict=True):
        before = (users == user) & (ts < t)
        hour = before & (ts >= (t // (60 * US)) * 60 * US - H * US)  # 1h windows step by 1 min
        day = amounts[before & (ts >= (t // (H * US)) * H * US - D * US)]  # 1d windows step by 1 h
        last = np.flatnonzero(before)
        latest = last[np.argmax(ts[last])] if len(last) else None
        mean = day.mean() if len(day) else 0.0
        out.append({
            "n_1h": int(hour.sum()), "n_1d": len(day), "sum_1d": day.sum(), "mean_1d": mean,
            "std_1d": day.std(ddof=1) if len(day) > 1 else -1.0, "max_1d": day.max() if len(day) else 0.0,
            "n_ever": int(before.sum()), "pair_n": int((before & (merchants == merchant)).sum()),
            "device": devices[latest] if latest is not None else None,
            "since_last": (t - ts[latest]) / 1e6 if latest is not None else -1.0,
            "amount_vs_mean": amount / mean if mean else 1.0,
            "hour": pd.Timestamp(t * 1000, tz="UTC").hour,
        })
    return pd.DataFrame(out)


def assert_features_equal(got: pd.DataFrame, want: pd.DataFrame, exact: bool = False) -> None:
    for column in want.columns:
        g, w = got[column].reset_index(drop=True), want[column].reset_index(drop=True)
        if w.dtype == object:
            assert g.where(g.notna(), None).tolist() == w.where(w.notna(), None).tolist(), column
        elif exact:
            np.testing.assert_array_equal(g.to_numpy(dtype=float), w.to_numpy(dtype=float), err_msg=column)
        else:
            np.testing.assert_allclose(g.to_numpy(dtype=float), w.to_numpy(dtype=float), rtol=1e-9, atol=1e-9,
                                       err_msg=column)


def test_training_frame_equals_a_pandas_computation_from_earlier_rows(project: tuple[Settings, pd.DataFrame]) -> None:
    settings, txns = project
    frame = feature_frame(settings, "ft_a", txns, label="is_fraud", keep=("transaction_id",))
    assert len(frame) == len(txns) and frame["transaction_id"].tolist() == txns["transaction_id"].tolist()
    assert list(frame.columns) == ["transaction_id", "user_id", "merchant_id", "event_timestamp", "amount",
                                   *declaration("ft_a").feature_names(), "is_fraud"]
    assert_features_equal(frame, expected(txns, txns))
    assert (frame["n_ever"] == 0).sum() == txns["user_id"].nunique()  # each user's first row saw nothing


def test_duckdb_frame_equals_feast_get_historical_features(project: tuple[Settings, pd.DataFrame]) -> None:
    settings, txns = project
    rows = txns.sample(60, random_state=1)
    ours = feature_frame(settings, "ft_a", rows)
    feast = feature_frame(settings, "ft_a", rows, engine="feast")
    features = declaration("ft_a").feature_names()
    assert_features_equal(ours[features], feast[features], exact=True)


def test_online_equals_historical_at_several_request_times(project: tuple[Settings, pd.DataFrame]) -> None:
    """The skew test: materialized up to t, a request at t gets what get_historical_features gives at t."""
    settings, txns = project
    first, last = txns["event_timestamp"].min(), txns["event_timestamp"].max()
    times = [first + timedelta(days=1, minutes=17, seconds=3), first + timedelta(days=2, hours=13, seconds=1),
             last + timedelta(minutes=20), last + timedelta(hours=30)]
    pairs = txns.drop_duplicates("user_id")[["user_id", "merchant_id"]].sort_values("user_id")
    pairs = pd.concat([pairs, pd.DataFrame({"user_id": [10**6], "merchant_id": [1]})], ignore_index=True)
    requests, online = [], []
    for i, at in enumerate(times):
        materialize_features(settings, "ft_a", end=at.to_pydatetime())
        rows = pairs.assign(amount=np.linspace(5.0, 120.0, len(pairs)) + i, event_timestamp=at)
        online.append(online_features(settings, "ft_a", rows))
        requests.append(rows)
    every = pd.concat(requests, ignore_index=True)
    served = pd.concat(online, ignore_index=True)
    historical = feature_frame(settings, "ft_a", every, engine="feast")  # one get_historical_features call
    features = declaration("ft_a").feature_names()
    assert served["user_id"].tolist() == every["user_id"].tolist()
    assert_features_equal(served[features], historical[features], exact=True)
    assert_features_equal(served, expected(txns, every))
    late = served.iloc[-len(pairs):-1]
    assert (late["n_1h"] == 0).all() and (late["n_1d"] == 0).all() and (late["n_ever"] > 0).all()  # windows aged
    assert (served.iloc[2 * len(pairs):3 * len(pairs) - 1]["since_last"] >= 20 * 60).all()


def test_two_projects_side_by_side(project: tuple[Settings, pd.DataFrame]) -> None:
    settings, txns = project
    materialize_features(settings, "ft_a")
    at = txns["event_timestamp"].max() + timedelta(minutes=5)
    rows = txns.drop_duplicates("user_id")[["user_id", "merchant_id", "amount"]].assign(event_timestamp=at)
    before = online_features(settings, "ft_a", rows)
    other = generate_transactions(240, seed=11, n_users=12, n_merchants=6, days=4)  # same ids, other history
    applied = apply_features(settings, declaration("ft_b"), other)
    materialize_features(settings, "ft_b")
    after = online_features(settings, "ft_a", rows)
    pd.testing.assert_frame_equal(after, before)
    theirs = online_features(settings, "ft_b", rows)
    assert not theirs["n_ever"].equals(before["n_ever"])
    assert_features_equal(theirs, expected(other, rows))
    assert applied.path == settings.feast_dir / "ft_b" and (settings.feast_dir / "ft_a" / "online.db").is_file()
    store_a, store_b = project_store(settings, "ft_a"), project_store(settings, "ft_b")
    assert (store_a.project, store_b.project) == ("ft_a", "ft_b")
    assert {v.name for v in store_a.list_feature_views()} == {"user_history", "user_merchant_history", "profile"}
    assert project_for_service(settings, "ft_b") == "ft_b"
    with pytest.raises(NotFound, match="no feature project 'ft_c'"):
        online_features(settings, "ft_c", rows)
    with pytest.raises(NotFound, match=r"known services: \['ft_a', 'ft_b'\]"):
        project_for_service(settings, "fraud_model_v9")


def test_bad_declaration_against_the_dataset_writes_nothing(project: tuple[Settings, pd.DataFrame]) -> None:
    settings, txns = project
    bad = FeatureDeclaration(name="ft_bad", timestamp="event_timestamp", entities=(Entity("user", ("customer_id",)),),
                             views=(WindowedView("v", "user", (Aggregate("count", "1d"),)),))
    with pytest.raises(InvalidInput, match="key column 'customer_id' is not in the dataset"):
        apply_features(settings, bad, txns)
    assert not (settings.feast_dir / "ft_bad").exists()
    materialize_features(settings, "ft_a")
    now = online_features(settings, "ft_a", [{"user_id": 1, "merchant_id": 2, "amount": 3.0, "timestamp": None},
                                             {"user_id": 1, "merchant_id": 2, "amount": 3.0}])
    assert now["since_last"].iloc[0] > 30 * 86_400 and now["n_1d"].tolist() == [0, 0]  # no time: now, months later
    with pytest.raises(InvalidInput, match="entity rows lack \\['merchant_id'\\]"):
        online_features(settings, "ft_a", [{"user_id": 1, "amount": 3.0}])


def test_fraud_declaration_applies_and_serves(tmp_path: Path) -> None:
    settings = Settings(project_dir=tmp_path)
    txns = generate_transactions(300, seed=4, n_users=15, n_merchants=8, days=3)
    project = apply_features(settings, fraud_features(name="ft_fraud"), txns)
    frame = feature_frame(settings, "ft_fraud", txns, label="is_fraud")
    assert list(frame.columns[-len(project.features) - 1:-1]) == list(project.features)
    pair_before = txns.groupby(["user_id", "merchant_id"]).cumcount()  # no two rows of a pair share a second here
    assert not txns.duplicated(["user_id", "merchant_id", "event_timestamp"]).any()
    assert frame["user_merchant_txn_count"].tolist() == pair_before.tolist()
    ts = _us(txns["event_timestamp"])
    burst = [int(((txns["user_id"].to_numpy() == u) & (ts < t) & (ts >= (t // (10 * US)) * 10 * US - 600 * US)).sum())
             for u, t in zip(txns["user_id"], ts, strict=True)]
    assert frame["user_txn_count_10m"].tolist() == burst
    assert frame["hour_of_day"].tolist() == txns["event_timestamp"].dt.hour.tolist()
    materialize_features(settings, "ft_fraud")
    request = txns.tail(4)[["user_id", "merchant_id", "country", "amount", "is_night"]].assign(
        event_timestamp=txns["event_timestamp"].max() + timedelta(minutes=3))
    served = online_features(settings, "ft_fraud", request)
    assert_features_equal(served[list(project.features)],
                          feature_frame(settings, "ft_fraud", request)[list(project.features)], exact=True)


def test_columns_of_a_dataset_without_timestamp(project: tuple[Settings, pd.DataFrame]) -> None:
    """A static table per entity (no clock): the entity's one row, the same offline and online."""
    settings, _ = project
    profiles = pd.DataFrame({"customer": ["a", "b", "c"], "plan": ["free", "pro", "pro"], "tenure": [3, 14, 1],
                             "score": [0.5, 0.25, 0.125]})
    decl = FeatureDeclaration(name="ft_static", entities=(Entity("customer", ("customer",)),),
                              views=(ColumnsView("profile", "customer", ("plan", "tenure", "score")),))
    apply_features(settings, decl, profiles)
    rows = pd.DataFrame({"customer": ["c", "a", "zz"]})
    frame = feature_frame(settings, "ft_static", rows)
    assert frame["plan"].tolist() == ["pro", "free", None] and frame["tenure"].tolist()[:2] == [1, 3]
    materialize_features(settings, "ft_static")
    served = online_features(settings, "ft_static", rows)
    assert_features_equal(served[["plan", "tenure", "score"]], frame[["plan", "tenure", "score"]], exact=True)
    twice = pd.concat([profiles, profiles.assign(plan="changed")], ignore_index=True)
    with pytest.raises(InvalidInput, match="several rows with different values"):
        apply_features(settings, decl, twice)


def test_replayed_rows_streamed_in_time_order_get_their_training_features(
        project: tuple[Settings, pd.DataFrame]) -> None:
    """Recorded rows replayed as a stream: with each batch's states written as of its rows' times, the online
    lookup of every row equals a pandas computation from the rows before it, although the store was first
    materialized to the end of the data (the future), as 02 leaves it."""
    settings, txns = project
    materialize_features(settings, "ft_a")
    replay = txns.sample(90, random_state=5)[["transaction_id", "user_id", "merchant_id", "amount", "event_timestamp"]]
    keys = state_keys(settings, "ft_a")
    assert sorted(keys) == [("user_id",), ("user_id",), ("user_id", "merchant_id")]  # history, profile, pair
    batches = list(stream_batches(replay, keys, "event_timestamp", max_rows=8))
    ordered = pd.concat(batches)
    assert ordered["transaction_id"].tolist() == replay.sort_values("event_timestamp")["transaction_id"].tolist()
    assert all(len(b) <= 8 and not b["user_id"].duplicated().any() for b in batches)
    served = []
    for batch in batches:
        wrote = write_states_as_of(settings, "ft_a", batch)
        assert wrote.rows == {"user_history": len(batch), "user_merchant_history": len(batch), "profile": len(batch)}
        served.append(online_features(settings, "ft_a", batch))
    online = pd.concat(served, ignore_index=True)
    assert_features_equal(online, expected(txns, ordered))
    stale = online_features(settings, "ft_a", ordered.iloc[:8]) if len(batches) > 1 else None
    assert stale is not None and not stale["n_ever"].equals(online["n_ever"].iloc[:8])  # later states meanwhile
    materialize_features(settings, "ft_a")  # the other tests expect the store at the end of the data


def test_streamed_states_refuse_a_repeated_entity_and_rows_without_time(project: tuple[Settings, pd.DataFrame]) -> None:
    settings, txns = project
    one_user = txns[txns["user_id"] == txns["user_id"].iloc[0]].head(2)
    with pytest.raises(InvalidInput, match="appears 2 times: write one state per entity"):
        write_states_as_of(settings, "ft_a", one_user)
    with pytest.raises(InvalidInput, match="the rows need their event time"):
        write_states_as_of(settings, "ft_a", one_user.drop(columns=["event_timestamp"]).head(1))
    with pytest.raises(InvalidInput, match="max_rows must be at least 1"):
        list(stream_batches(one_user, [("user_id",)], "event_timestamp", max_rows=0))
