"""Generic monitoring: drift of numeric and categorical columns, quality per task against sklearn, and a
prediction log read with its unparseable lines counted. Expected values are computed here independently."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as skm

from workbench.errors import InvalidInput
from workbench.monitoring.column_drift import OTHER, ReferenceProfile, column_drift_report
from workbench.monitoring.prediction_log import log_row_counts, read_log
from workbench.monitoring.task_quality import join_task_labels, task_quality, task_quality_over_time
from workbench.serving.prediction_log import PredictionLogWriter, log_record


def _psi(r: np.ndarray, c: np.ndarray) -> float:
    r = np.where(r == 0, 1e-4, r)
    c = np.where(c == 0, 1e-4, c)
    return float(np.sum((c - r) * np.log(c / r)))


def test_categorical_drift_is_psi_over_categories_with_other_and_null_buckets() -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"colour": rng.choice(["red", "green", "blue", "teal"], 4000, p=[.4, .3, .2, .1])})
    cur = pd.DataFrame({"colour": rng.choice(["red", "green", "violet", None], 2000, p=[.2, .3, .3, .2])})
    report = column_drift_report(ref, cur, max_categories=3)
    row = report["colour"]
    assert row.column_type == "categorical" and math.isnan(row.ks_statistic)
    assert row.bin_labels() == ["red", "green", "blue", OTHER, "(null)"]
    # Independently: counts by hand; "teal" (4th most frequent) and the unseen "violet" go to other.
    def fractions(s: pd.Series) -> np.ndarray:
        mapped = s.where(s.isin(["red", "green", "blue"]) | s.isna(), OTHER).fillna("(null)")
        return mapped.value_counts().reindex(row.bin_labels(), fill_value=0).to_numpy() / len(s)
    np.testing.assert_allclose(row.reference_fractions, fractions(ref["colour"]))
    np.testing.assert_allclose(row.current_fractions, fractions(cur["colour"]))
    assert row.psi == pytest.approx(_psi(fractions(ref["colour"]), fractions(cur["colour"])))
    assert row.null_current == pytest.approx(cur["colour"].isna().mean()) and row.status == "drift"
    same = column_drift_report(ref, ref.sample(frac=1.0, random_state=0))["colour"]
    assert same.psi == pytest.approx(0.0, abs=1e-12) and same.status == "ok"


def test_numeric_drift_matches_scipy_and_counts_nulls_in_their_own_bin() -> None:
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"amount": rng.gamma(2.0, 10.0, 5000), "flag": rng.random(5000) > 0.7})
    amount = rng.gamma(2.0, 13.0, 3000)
    amount[:300] = np.nan
    cur = pd.DataFrame({"amount": amount, "flag": rng.random(3000) > 0.4})
    report = column_drift_report(ref, cur)
    row = report["amount"]
    finite = amount[~np.isnan(amount)]
    ks = stats.ks_2samp(ref["amount"], finite)
    assert row.ks_statistic == pytest.approx(ks.statistic) and row.ks_pvalue == pytest.approx(ks.pvalue, rel=1e-6)
    assert row.wasserstein == pytest.approx(stats.wasserstein_distance(ref["amount"], finite))
    edges = np.quantile(ref["amount"], np.arange(1, 10) / 10)
    counts = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=10)
    cur_frac = np.append(counts / len(amount), 300 / len(amount))
    ref_frac = np.append(np.bincount(np.searchsorted(edges, ref["amount"], side="right"), minlength=10) / 5000, 0.0)
    np.testing.assert_allclose(row.current_fractions, cur_frac)
    assert row.has_null_bin and row.bin_labels()[-1] == "(null)"
    assert row.psi == pytest.approx(_psi(ref_frac, cur_frac))
    assert report["flag"].column_type == "categorical" and report["flag"].status == "drift"


def test_psi_over_time_gives_one_value_per_window_and_feature() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(size=3000), "c": rng.choice(list("ab"), 3000)})
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    cur = pd.DataFrame({"x": np.r_[rng.normal(size=500), rng.normal(2, 1, 500)],
                        "c": rng.choice(list("ab"), 1000),
                        "timestamp": [t0 + pd.Timedelta(seconds=i * 7.2) for i in range(1000)]})
    profile = ReferenceProfile.from_frame(ref, ["x", "c"])
    heat = profile.psi_over_time(cur, "1h")
    x = heat[heat["feature"] == "x"].reset_index(drop=True)
    assert list(x["n"]) == [500, 500]
    assert x["psi"][0] < 0.1 < 0.5 < x["psi"][1]
    whole = profile.compare(cur.iloc[500:])
    assert x["psi"][1] == pytest.approx(whole["x"].psi)


def _log(n: int, rng: np.random.Generator, **outputs: object) -> pd.DataFrame:
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(n)],
                         "timestamp": [t0 + pd.Timedelta(minutes=i) for i in range(n)], **outputs})


def test_binary_quality_matches_sklearn_at_the_models_threshold_and_counts_retries_once() -> None:
    rng = np.random.default_rng(4)
    y = rng.random(400) < 0.3
    score = np.clip(y * 0.3 + rng.random(400) * 0.7, 0, 1)
    log = _log(400, rng, score=score)
    log = pd.concat([log, log.iloc[:5]], ignore_index=True)  # retried request ids, logged twice
    labels = pd.DataFrame({"request_id": [f"r{i}" for i in range(400)] + ["r0", "nope"],
                           "label": list(np.where(y, "fraud", "ok")) + ["fraud" if y[0] else "ok", "ok"]})
    q = task_quality(log, labels, "binary", positive="fraud", threshold=0.6)
    assert q.join.duplicate_predictions == 5 and q.join.duplicate_labels == 1 and q.join.unknown_ids == 1
    assert q.n_labelled == 400
    pred = score >= 0.6
    assert q["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score))
    assert q["pr_auc"] == pytest.approx(skm.average_precision_score(y, score))
    assert q["log_loss"] == pytest.approx(skm.log_loss(y, score))
    assert q["brier"] == pytest.approx(skm.brier_score_loss(y, score))
    assert q["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert q["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert "ROC-AUC" in q._repr_html_() and "retried" in q._repr_html_()
    conflicting = pd.concat([labels, pd.DataFrame({"request_id": ["r1"], "label": ["other"]})])
    with pytest.raises(InvalidInput, match="different values"):
        task_quality(log, conflicting, "binary", positive="fraud")


def test_multiclass_quality_matches_sklearn() -> None:
    rng = np.random.default_rng(5)
    classes = ["a", "b", "c"]
    proba = rng.dirichlet([1, 1, 1], 300)
    pred = np.array(classes)[proba.argmax(1)]
    y = np.where(rng.random(300) < 0.6, pred, rng.choice(classes, 300))
    log = _log(300, rng, predicted_label=pred,
               probabilities=[dict(zip(classes, p, strict=True)) for p in proba])
    q = task_quality(log, pd.DataFrame({"request_id": log["request_id"], "label": y}), "multiclass", classes=classes)
    assert q["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert q["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert q["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=classes))


def test_regression_quality_and_over_time_match_sklearn() -> None:
    rng = np.random.default_rng(6)
    truth = rng.normal(10, 3, 240)
    prediction = truth + rng.normal(0, 1, 240)
    log = _log(240, rng, prediction=prediction)
    labels = pd.DataFrame({"request_id": log["request_id"], "label": truth})
    q = task_quality(log, labels, "regression")
    assert q["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(truth, prediction)))
    assert q["mae"] == pytest.approx(skm.mean_absolute_error(truth, prediction))
    assert q["r2"] == pytest.approx(skm.r2_score(truth, prediction))
    over = task_quality_over_time(log, labels, "regression", "1h")
    assert list(over["n_labelled"]) == [60, 60, 60, 60]
    assert over["mae"][2] == pytest.approx(skm.mean_absolute_error(truth[120:180], prediction[120:180]))


def test_log_lines_that_cannot_be_parsed_are_counted_not_dropped_silently(tmp_path: Path) -> None:
    writer = PredictionLogWriter(tmp_path / "dep", "replica")
    records = [log_record(request_id=f"r{i}", timestamp=f"2026-01-01T00:00:{i:02d}+00:00", deployment="dep",
                          model_version="1", latency_ms=1.0 + i, event_timestamp="2026-01-01T00:00:00+00:00",
                          task="regression", outputs={"prediction": float(i)}, inputs={"x": float(i), "c": "k"})
               for i in range(20)]
    writer.append(records)
    writer.close()
    with writer.path.open("a") as handle:  # a line cut short by a killed replica, and garbage
        handle.write(json.dumps(records[0])[:40] + "\n" + "not json at all\n")
    assert log_row_counts(tmp_path / "dep") == (20, 2)
    frame = read_log(tmp_path / "dep")
    assert sorted(frame["request_id"]) == sorted(f"r{i}" for i in range(20))
    joined = join_task_labels(frame, pd.DataFrame({"request_id": ["r3"], "label": [3.0]}), ["prediction"])
    assert joined.matched == 1
