"""Drift statistics against scipy, PSI by hand, and the report's decisions on known distributions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from workbench.errors import InvalidInput
from workbench.monitoring import DriftReference, DriftThresholds, drift_report, histogram_comparison
from workbench.monitoring.drift import (
    PSI_EPSILON,
    bin_fractions,
    compare_column,
    ks_and_wasserstein,
    psi_from_fractions,
    quantile_edges,
    uniform_edges,
)

N = 20_000


def _compare(a: np.ndarray, b: np.ndarray, **kwargs: object):  # type: ignore[no-untyped-def]
    return compare_column(np.sort(a), np.sort(b), "x", **kwargs)  # type: ignore[arg-type]


def test_same_distribution_is_below_every_threshold() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=N), rng.normal(size=N)
    row = _compare(a, b)
    t = DriftThresholds()
    assert row.psi < t.psi_warn and row.js_distance < t.js_distance
    assert row.ks_statistic < t.ks_statistic and row.ks_pvalue > t.ks_pvalue
    assert row.wasserstein_norm < t.wasserstein_norm
    assert row.status == "ok" and not row.drifted and row.reasons == ()


def test_mean_shift_is_flagged_by_every_statistic() -> None:
    rng = np.random.default_rng(1)
    row = _compare(rng.normal(size=N), rng.normal(0.5, 1, size=N))
    assert row.drifted
    assert row.psi > 0.2 and row.ks_statistic > 0.1 and row.ks_pvalue < 0.01
    assert row.js_distance > 0.1 and row.wasserstein_norm == pytest.approx(0.5, abs=0.05)
    assert len(row.reasons) == 4


def test_scale_change_is_flagged() -> None:
    rng = np.random.default_rng(2)
    row = _compare(rng.normal(size=N), rng.normal(0, 1.5, size=N))
    assert row.drifted and row.ks_statistic < 0.1  # KS barely sees a scale change; the others do
    assert row.psi > DriftThresholds().psi_warn and row.js_distance > 0.1
    # W1(N(0,1), N(0,1.5)) = 0.5 * E|Z| = 0.5 * sqrt(2/pi)
    assert row.wasserstein == pytest.approx(0.5 * math.sqrt(2 / math.pi), rel=0.05)


@pytest.mark.parametrize(("n1", "n2", "kind"), [
    (N, N, "normal"), (15_000, 11_000, "normal"),  # asymptotic p-value
    (3_000, 2_000, "normal"), (500, 800, "normal"),  # exact p-value
    (30_000, 25_000, "ties"), (4_000, 6_000, "ties"),
])
def test_ks_and_wasserstein_equal_scipy(n1: int, n2: int, kind: str) -> None:
    rng = np.random.default_rng(n1 + n2)
    if kind == "ties":
        a, b = rng.integers(0, 8, n1).astype(float), rng.integers(1, 9, n2).astype(float)
    else:
        a, b = rng.normal(size=n1), rng.normal(0.05, 1.1, size=n2)
    statistic, pvalue, wasserstein = ks_and_wasserstein(np.sort(a), np.sort(b))
    expected = stats.ks_2samp(a, b)
    assert abs(statistic - expected.statistic) < 1e-9
    assert abs(pvalue - expected.pvalue) < 1e-9
    assert abs(wasserstein - stats.wasserstein_distance(a, b)) < 1e-9


def test_large_sample_pvalue_in_smirnov_range_equals_scipy() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=60_000), rng.normal(0.02, 1, size=60_000)
    _, pvalue, _ = ks_and_wasserstein(np.sort(a), np.sort(b))
    expected = stats.ks_2samp(a, b).pvalue
    assert 1e-12 < expected < 0.05  # the range where scipy uses its Smirnov formula
    assert abs(pvalue - expected) < 1e-9


def test_js_distance_equals_scipy_on_the_same_histograms() -> None:
    rng = np.random.default_rng(3)
    row = _compare(rng.normal(size=N), rng.normal(0.3, 1, size=N))
    expected = jensenshannon(row.reference_fractions, row.current_fractions, base=2)
    assert abs(row.js_distance - expected) < 1e-12


def test_psi_by_hand_on_a_tiny_example() -> None:
    reference = np.arange(1.0, 11.0)  # median 5.5 -> two bins of 5 values each
    current = np.array([1.0, 2.0, 3.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0])  # 3 below, 7 above
    row = compare_column(reference, current, bins=2)
    assert row.bin_edges == (5.5,)
    assert row.reference_fractions == (0.5, 0.5) and row.current_fractions == (0.3, 0.7)
    by_hand = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.7 - 0.5) * math.log(0.7 / 0.5)
    assert row.psi == pytest.approx(by_hand, abs=1e-15)
    assert row.psi == pytest.approx(0.16946, abs=1e-5)


def test_psi_uses_the_documented_epsilon_for_empty_bins() -> None:
    assert PSI_EPSILON == 1e-4
    by_hand = (PSI_EPSILON - 0.5) * math.log(PSI_EPSILON / 0.5) + (1.0 - 0.5) * math.log(1.0 / 0.5)
    assert psi_from_fractions([0.5, 0.5], [0.0, 1.0]) == pytest.approx(by_hand, abs=1e-15)
    assert math.isfinite(psi_from_fractions([0.5, 0.5], [0.0, 1.0]))


def test_quantile_bins_put_edge_values_in_the_upper_bin() -> None:
    values = np.sort(np.array([0.0, 1.0, 1.0, 2.0, 3.0]))
    assert bin_fractions(values, np.array([1.0, 2.0])).tolist() == [0.2, 0.4, 0.4]
    rng = np.random.default_rng(4)
    x = np.sort(rng.normal(size=1001))
    assert np.allclose(quantile_edges(x, 10), np.quantile(x, np.arange(1, 10) / 10), atol=1e-12)


def test_uniform_bins_count_like_numpy_histogram() -> None:
    rng = np.random.default_rng(6)
    a, b = np.sort(rng.normal(size=5000)), np.sort(rng.normal(1, 2, size=3000))
    inner = uniform_edges(a, b, 22)
    edges = np.histogram_bin_edges(np.concatenate([a, b]), bins=22)
    assert np.array_equal(bin_fractions(b, inner), np.histogram(b, edges)[0] / b.size)
    assert np.array_equal(bin_fractions(a, inner), np.histogram(a, edges)[0] / a.size)


def _frames(shift: float = 0.5) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(7)
    n = 10_000
    reference = pd.DataFrame({"amount": rng.lognormal(3, 0.5, n), "age": rng.normal(40, 10, n),
                              "score": rng.beta(2, 8, n)})
    current = pd.DataFrame({
        "request_id": [f"r{i}" for i in range(n)],
        "timestamp": pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
        "deployment": "fraud", "model_version": "3", "latency_ms": rng.gamma(2, 5, n),
        "amount": rng.lognormal(3 + shift, 0.5, n), "age": rng.normal(40, 10, n), "score": rng.beta(2, 8, n)})
    return reference, current


def test_report_on_a_prediction_log_flags_the_shifted_feature_only() -> None:
    reference, current = _frames()
    report = drift_report(reference, current)
    frame = report.to_frame()
    assert frame["feature"].tolist() == ["amount", "age", "score"]  # log columns are not features
    assert frame["kind"].tolist() == ["feature", "feature", "score"]
    assert report.drifted_features == ["amount"]
    assert report["amount"].drifted and not report["age"].drifted and not report["score"].drifted
    assert report.share_drifted == 0.5 and report.dataset_drifted
    assert {"psi", "ks_pvalue", "js_distance", "wasserstein_norm", "drifted", "reasons"} <= set(frame.columns)
    metrics = report.metrics()
    assert metrics["drift.amount.psi"] == report["amount"].psi and metrics["drift.share_drifted"] == 0.5
    assert abs(report["age"].ks_pvalue - stats.ks_2samp(reference["age"], current["age"]).pvalue) < 1e-9


def test_prepared_reference_and_parquet_give_the_same_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    reference, current = _frames()
    direct = drift_report(reference, current).to_frame()
    prepared = DriftReference.from_frame(reference)
    pd.testing.assert_frame_equal(drift_report(prepared, current).to_frame(), direct)
    (tmp_path / "log").mkdir()
    current.to_parquet(tmp_path / "log" / "part-0.parquet")
    reference.to_parquet(tmp_path / "reference.parquet")
    pd.testing.assert_frame_equal(drift_report(tmp_path / "reference.parquet", tmp_path / "log").to_frame(), direct)


def test_thresholds_change_the_decision() -> None:
    reference, current = _frames(shift=0.02)
    assert not drift_report(reference, current, ["amount"])["amount"].drifted
    strict = DriftThresholds(wasserstein_norm=0.01, js_distance=0.01)
    assert drift_report(reference, current, ["amount"], strict)["amount"].drifted


def test_missing_values_are_dropped_and_counted() -> None:
    reference, current = _frames()
    current.loc[:99, "age"] = np.nan
    assert drift_report(reference, current, ["age"])["age"].n_current == len(current) - 100


@pytest.mark.parametrize(("change", "message"), [
    (lambda r, c: (r, c.drop(columns=["age"])), "lacks column"),
    (lambda r, c: (r, c.assign(age=np.nan)), "no values"),
    (lambda r, c: (r, c.assign(age=np.inf)), "infinite"),
])
def test_unusable_inputs_say_what_to_fix(change, message: str) -> None:  # type: ignore[no-untyped-def]
    reference, current = change(*_frames())
    with pytest.raises(InvalidInput, match=message):
        drift_report(reference, current, ["age"])


def test_invalid_thresholds_and_bins_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="psi_warn"):
        DriftThresholds(psi_warn=0.3, psi_drift=0.2)
    with pytest.raises(InvalidInput, match="bins"):
        drift_report(*_frames(), bins=1)


def test_histogram_comparison_uses_shared_bins() -> None:
    reference, current = _frames()
    hist = histogram_comparison(reference, current, "amount", bins=30)
    assert len(hist.edges) == 31 and len(hist.reference_fractions) == 30
    assert sum(hist.reference_fractions) == pytest.approx(1.0) and sum(hist.current_fractions) == pytest.approx(1.0)
    assert hist.edges[0] == min(reference["amount"].min(), current["amount"].min())


def test_a_rare_flag_becoming_common_is_caught_by_psi() -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"is_night": (rng.random(20_000) < 0.05).astype(int)})
    same = pd.DataFrame({"is_night": (rng.random(5_000) < 0.05).astype(int)})
    shifted = pd.DataFrame({"is_night": np.ones(5_000, dtype=int)})
    assert drift_report(reference, same, ["is_night"])["is_night"].psi < 0.01
    report = drift_report(reference, shifted, ["is_night"])
    assert report["is_night"].psi > 1.0 and report["is_night"].drifted
    assert len(report["is_night"].bin_edges) == 1 and report["is_night"].bin_edges[0] == 0.5
