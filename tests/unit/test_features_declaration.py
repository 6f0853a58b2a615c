"""Feature declarations without Feast: validation, serialization, the DuckDB tables and the on-demand
transformation against a brute-force pandas computation, and the ``features=None`` frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from workbench.config import Settings
from workbench.data.generator import generate_transactions
from workbench.data.task import Task
from workbench.errors import InvalidInput
from workbench.features import (
    Aggregate,
    ColumnsView,
    Entity,
    FeatureDeclaration,
    Relative,
    RequestTime,
    SecondsSinceLast,
    WindowedView,
    dataset_frame,
    fraud_features,
)
from workbench.features.declaration import default_resolution_s, parse_duration
from workbench.features.project import _aggregate_plans, _on_demand_plan, project_yaml
from workbench.features.tables import FEATURE_TIMESTAMP, connect, histories, history_sql
from workbench.features.transform import REQUEST_TIME, evaluate

US = 1_000_000
USER = Entity("user", ("user_id",))


def declaration(**changes: object) -> FeatureDeclaration:
    base: dict[str, object] = dict(
        name="ft_unit", timestamp="event_timestamp", entities=(USER,),
        views=(WindowedView("user_activity", "user", (Aggregate("count", "1h"),
                                                      Aggregate("mean", "1d", column="amount"))),),
        request_columns=("amount",))
    base.update(changes)
    return FeatureDeclaration(**base)  # type: ignore[arg-type]


# validation -----------------------------------------------------------------------------------
def test_unknown_aggregate_names_the_choices() -> None:
    with pytest.raises(InvalidInput, match=r"unknown aggregate 'median'.*'count', 'sum', 'mean', 'std', 'min', 'max'"):
        Aggregate("median", "7d", column="amount")


def test_window_over_a_dataset_without_timestamp_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"windowed view 'user_activity' aggregates over \['1d', '1h'\].*no "
                                           r"timestamp"):
        declaration(timestamp=None)
    with pytest.raises(InvalidInput, match=r"SecondsSinceLast\('user'\) needs the dataset's timestamp"):
        declaration(timestamp=None, views=(), on_demand=(SecondsSinceLast("user"),))


def test_duplicate_feature_name_names_both_producers() -> None:
    views = (WindowedView("a", "user", (Aggregate("count", "1h", name="n"),)),
             WindowedView("b", "user", (Aggregate("count", "1d", name="n"),)))
    with pytest.raises(InvalidInput, match=r"duplicate feature name 'n': view 'a' and view 'b'"):
        declaration(views=views)
    with pytest.raises(InvalidInput, match=r"duplicate feature name 'amount'"):
        declaration(views=(ColumnsView("profile", "user", ("amount",)),))


def test_entity_key_absent_from_the_dataset_names_the_key_and_columns() -> None:
    decl = declaration(entities=(Entity("user", ("customer_id",)),))
    with pytest.raises(InvalidInput, match=r"entity 'user': key column 'customer_id' is not in the dataset; its "
                                           r"columns are \['user_id', 'amount', 'event_timestamp'\]"):
        decl.check({"user_id": "BIGINT", "amount": "DOUBLE", "event_timestamp": "TIMESTAMP WITH TIME ZONE"})


@pytest.mark.parametrize("columns, message", [
    ({"user_id": "DOUBLE", "amount": "DOUBLE", "event_timestamp": "TIMESTAMP"}, "keys must be integers or strings"),
    ({"user_id": "BIGINT", "amount": "VARCHAR", "event_timestamp": "TIMESTAMP"}, "aggregates need numbers"),
    ({"user_id": "BIGINT", "amount": "DOUBLE", "event_timestamp": "VARCHAR"}, "not timestamps"),
    ({"user_id": "BIGINT", "amount": "DOUBLE"}, "timestamp column 'event_timestamp' is not in the dataset"),
])
def test_dataset_checks_name_the_column(columns: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        declaration().check(columns)


@pytest.mark.parametrize("make, message", [
    (lambda: Aggregate("mean", "7d"), "needs column="),
    (lambda: Aggregate("count", "7 days"), "must be a duration"),
    (lambda: Aggregate("count", "1d", resolution="7h"), "must divide window"),
    (lambda: declaration(name="data"), "feature project name"),
    (lambda: declaration(name="Fraud-1"), "feature project name"),
    (lambda: declaration(views=(WindowedView("v", "merchant", (Aggregate("count", "1d"),)),)),
     "entity 'merchant', which is not declared"),
    (lambda: declaration(on_demand=(Relative("r", "amount", "nope"),)), "refers to 'nope'"),
    (lambda: declaration(timestamp=None, views=(), on_demand=(RequestTime("h"),)), "needs the dataset's timestamp"),
    (lambda: declaration(views=(ColumnsView("v", "user", ("event_timestamp",)),), request_columns=()),
     "reserved"),
])
def test_bad_declarations_are_invalid_input(make: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        make()  # type: ignore[operator]


def test_durations_and_default_resolutions() -> None:
    assert parse_duration("10m", "w") == 600 and parse_duration("2w", "w") == 14 * 86_400
    assert {w: default_resolution_s(parse_duration(w, "w")) for w in ("10m", "1h", "1d", "7d", "30d")} == {
        "10m": 10, "1h": 60, "1d": 3_600, "7d": 21_600, "30d": 86_400}


def test_fraud_declaration_round_trips_and_declares_the_generator_signals() -> None:
    decl = fraud_features()
    again = FeatureDeclaration.from_dict(yaml.safe_load(yaml.safe_dump(decl.to_dict())))
    assert again == decl
    names = decl.feature_names()
    for signal in ("user_txn_count_10m", "user_merchant_txn_count", "user_country_share", "hour_of_day",
                   "merchant_fraud_rate_30d", "user_seconds_since_last_txn", "amount_vs_user_mean_7d"):
        assert signal in names
    assert decl.entity_keys() == ["user_id", "merchant_id", "country"]
    assert decl.model_inputs()[:2] == ["amount", "is_night"]
    assert decl.request_fields() == ["amount"]


def test_each_project_has_its_own_registry_and_online_store(tmp_path: Path) -> None:
    settings = Settings(project_dir=tmp_path)
    a, b = yaml.safe_load(project_yaml(settings, "ft_a")), yaml.safe_load(project_yaml(settings, "ft_b"))
    assert (a["project"], b["project"]) == ("ft_a", "ft_b")
    assert a["registry"]["path"] == str(settings.feast_dir / "ft_a" / "registry.db")
    assert a["online_store"] == {"type": "sqlite", "path": str(settings.feast_dir / "ft_a" / "online.db")}
    assert b["online_store"]["path"] != a["online_store"]["path"]


# tables + transform against pandas ------------------------------------------------------------
def brute(txns: pd.DataFrame, t_us: np.ndarray, users: np.ndarray, step_s: int, window_s: int) -> pd.DataFrame:
    """Per (user, t): count/sum/mean/std/min/max of amounts with floor(t, step) - window <= ts < t."""
    ts = txns["event_timestamp"].astype("int64").to_numpy() // 1000
    out = []
    for user, t in zip(users, t_us, strict=True):
        lower = (t // (step_s * US)) * step_s * US - window_s * US
        amounts = txns["amount"].to_numpy()[(txns["user_id"].to_numpy() == user) & (ts < t) & (ts >= lower)]
        out.append({"count": len(amounts), "sum": amounts.sum(), "mean": amounts.mean() if len(amounts) else 0.0,
                    "std": amounts.std(ddof=1) if len(amounts) > 1 else 0.0,
                    "min": amounts.min() if len(amounts) else 0.0, "max": amounts.max() if len(amounts) else 0.0})
    return pd.DataFrame(out)


def test_history_tables_and_transform_equal_pandas_windows() -> None:
    txns = generate_transactions(250, seed=5, n_users=6, n_merchants=4, days=3)
    aggs = tuple(Aggregate(f, "1d", column="amount", resolution="2h")
                 for f in ("count", "sum", "mean", "std", "min", "max"))
    decl = declaration(views=(WindowedView("user_activity", "user", (*aggs, Aggregate("count", "ever"))),),
                       on_demand=(SecondsSinceLast("user"), RequestTime("hour")))
    con, types, _ = connect(txns, "event_timestamp")
    decl.check(types)
    found = histories(decl)
    state = con.execute(history_sql(found["user"])).df()
    state["_fu"] = (state[FEATURE_TIMESTAMP] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, "us")
    # requests at every transaction time, and at times between and after them (windows must age)
    ts = txns["event_timestamp"].astype("int64").to_numpy() // 1000
    extra = ts[::7] + 5_400 * US
    requests = pd.DataFrame({"user_id": np.concatenate([txns["user_id"].to_numpy(), txns["user_id"].to_numpy()[::7]]),
                             REQUEST_TIME: np.concatenate([ts, extra])})
    requests = requests.sort_values(REQUEST_TIME, kind="stable").reset_index(drop=True)
    joined = pd.merge_asof(requests, state.sort_values("_fu"), left_on=REQUEST_TIME, right_on="_fu", by="user_id",
                           allow_exact_matches=True)
    joined = joined.rename(columns={c: f"user_history__{c}" for c in state.columns if c not in ("user_id",)})
    plans = _aggregate_plans(decl, found)
    got = evaluate([plans[a.feature_name("user")] for a in decl.views[0].aggregates], joined)  # type: ignore[union-attr]
    want = brute(txns, requests[REQUEST_TIME].to_numpy(), requests["user_id"].to_numpy(), 7_200, 86_400)
    for function in ("count", "sum", "mean", "std", "min", "max"):
        np.testing.assert_allclose(got[f"user_amount_{function}_1d"].to_numpy(), want[function].to_numpy(),
                                   rtol=1e-9, atol=1e-9, err_msg=function)
    earlier = [int(((txns["user_id"].to_numpy() == u) & (ts < t)).sum()) for u, t in
               zip(requests["user_id"], requests[REQUEST_TIME], strict=True)]
    assert got["user_rows_count_ever"].tolist() == earlier
    on_demand, _ = _on_demand_plan(decl, found, plans)
    extra_features = evaluate(on_demand, joined)
    last = [ts[(txns["user_id"].to_numpy() == u) & (ts < t)].max(initial=-1) for u, t in
            zip(requests["user_id"], requests[REQUEST_TIME], strict=True)]
    since = [(t - lt) / 1e6 if lt >= 0 else 30 * 86_400.0 for t, lt in zip(requests[REQUEST_TIME], last, strict=True)]
    np.testing.assert_allclose(extra_features["user_seconds_since_last"].to_numpy(), since)
    hours = pd.to_datetime(requests[REQUEST_TIME], unit="us", utc=True).dt.hour.to_numpy()
    assert extra_features["hour"].tolist() == hours.tolist()


# features=None ----------------------------------------------------------------------------------
def test_dataset_frame_is_the_task_feature_columns_with_time_and_label_last() -> None:
    txns = generate_transactions(50, seed=1)
    task = Task(label="is_fraud", entity_keys=("user_id", "merchant_id"), timestamp="event_timestamp",
                exclude=("transaction_id",))
    frame = dataset_frame(txns, task)
    assert list(frame.columns) == ["category", "amount", "device", "country", "is_night", "event_timestamp",
                                   "is_fraud"]
    assert frame["event_timestamp"].dt.tz is not None and frame["is_fraud"].tolist() == txns["is_fraud"].tolist()
    plain = pd.DataFrame({"a b": [1.0, 2.0], "ç.x": [3, 4], "y": [0, 1]})
    assert list(dataset_frame(plain, Task(label="y")).columns) == ["a b", "ç.x", "y"]
    with pytest.raises(InvalidInput, match="label column 'z' is not in the dataset"):
        dataset_frame(plain, Task(label="z"))
