"""Labels joined to the log (unknown ids counted), quality metrics overall and per window."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from workbench.errors import InvalidInput
from workbench.monitoring import join_labels, quality_over_time, quality_report

T0 = pd.Timestamp("2026-03-02 10:00:00", tz="UTC")


def log() -> pd.DataFrame:
    """Eight predictions: four in the first hour, four in the second."""
    return pd.DataFrame({
        "request_id": [f"r{i}" for i in range(8)],
        "timestamp": [T0 + pd.Timedelta(minutes=10 * i) for i in range(4)]
        + [T0 + pd.Timedelta(hours=1, minutes=10 * i) for i in range(4)],
        "deployment": "fraud", "model_version": "1", "latency_ms": 5.0,
        "score": [0.9, 0.8, 0.3, 0.1, 0.7, 0.6, 0.2, 0.4],
    })


def labels() -> pd.DataFrame:
    """Labels for six of the predictions (hour 2 all negative), plus two ids the log does not hold."""
    return pd.DataFrame({"request_id": ["r0", "r1", "r2", "r3", "r4", "r5", "x1", "x2"],
                         "label": [1, 0, 1, 0, 0, 0, 1, 0]})


def test_join_counts_unknown_ids_instead_of_dropping_them_silently() -> None:
    joined = join_labels(log(), labels())
    assert (joined.predictions, joined.labels, joined.matched, joined.unknown_ids) == (8, 8, 6, 2)
    assert joined.unknown_examples == ("x1", "x2")
    assert joined.label_coverage == pytest.approx(6 / 8)
    assert sorted(joined.frame["request_id"]) == ["r0", "r1", "r2", "r3", "r4", "r5"]
    assert "2 label(s) name request ids not in the log" in joined.describe()


def test_overall_quality_matches_sklearn_and_hand_counts() -> None:
    report = quality_report(log(), labels(), threshold=0.5)
    y = np.array([1, 0, 1, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.3, 0.1, 0.7, 0.6])
    assert report.roc_auc == pytest.approx(roc_auc_score(y, s))
    assert report.roc_auc == pytest.approx(5 / 8)  # 5 of the 8 positive-negative pairs ranked right
    assert report.pr_auc == pytest.approx(average_precision_score(y, s))
    # score >= 0.5 flags r0, r1, r4, r5: one true positive of four flagged, one of two positives found
    assert report.precision == pytest.approx(1 / 4) and report.recall == pytest.approx(1 / 2)
    assert (report.n_labelled, report.positives) == (6, 2)
    metrics = report.metrics()
    assert metrics["unknown_label_ids"] == 2.0 and metrics["label_coverage"] == pytest.approx(0.75)


def test_one_class_overall_is_a_clear_error() -> None:
    only_negatives = labels().assign(label=0)
    with pytest.raises(InvalidInput, match="need both classes"):
        quality_report(log(), only_negatives)


def test_over_time_reports_nan_for_a_one_class_window() -> None:
    frame = quality_over_time(log(), labels(), window="1h")
    assert frame["window_start"].tolist() == [T0, T0 + pd.Timedelta(hours=1)]
    assert frame["n_labelled"].tolist() == [4, 2] and frame["positives"].tolist() == [2, 0]
    first, second = frame.iloc[0], frame.iloc[1]
    assert first["roc_auc"] == pytest.approx(roc_auc_score([1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1]))
    assert first["note"] == ""
    assert math.isnan(second["roc_auc"]) and math.isnan(second["pr_auc"])
    assert "both classes" in second["note"]


@pytest.mark.parametrize(("bad", "message"), [
    (pd.DataFrame({"request_id": ["r0", "r0"], "label": [1, 0]}), "repeat request_id"),
    (pd.DataFrame({"request_id": ["r0", "r1"], "label": [1, 2]}), "0 or 1"),
    (pd.DataFrame({"request_id": ["r0"]}), "label"),
])
def test_bad_labels_are_explained(bad: pd.DataFrame, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        join_labels(log(), bad)


def test_parquet_log_and_microsecond_timestamps_give_the_same_windows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    frame = log()
    frame.to_parquet(tmp_path / "log.parquet")
    expected = quality_over_time(frame, labels(), window="1h")
    pd.testing.assert_frame_equal(quality_over_time(tmp_path / "log.parquet", labels(), "1h"), expected,
                                  check_dtype=False)
    as_us = frame.assign(timestamp=frame["timestamp"].dt.as_unit("us"))
    pd.testing.assert_frame_equal(quality_over_time(as_us, labels(), "1h"), expected)
