"""Alert rules: boundaries, unknown metrics, patterns, and the default set on real reports."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workbench.errors import InvalidInput
from workbench.monitoring import (
    AlertRule,
    collect_metrics,
    default_alert_rules,
    drift_report,
    estimate_cost,
    evaluate_alerts,
)


@pytest.mark.parametrize(("op", "value", "fires"), [
    (">", 100.0, False), (">", 100.001, True),
    (">=", 100.0, True), (">=", 99.999, False),
    ("<", 100.0, False), ("<", 99.999, True),
    ("<=", 100.0, True), ("<=", 100.001, False),
])
def test_rules_at_the_boundary(op: str, value: float, fires: bool) -> None:
    rule = AlertRule("p99", "latency_p99_ms", op, 100.0, "critical")  # type: ignore[arg-type]
    alerts = evaluate_alerts([rule], {"latency_p99_ms": value})
    assert bool(alerts) is fires
    if fires:
        (alert,) = alerts
        assert alert.observed == value and alert.severity == "critical" and alert.metric == "latency_p99_ms"
        assert "latency_p99_ms" in alert.message and "p99" in alert.message


def test_unknown_metric_lists_the_known_ones() -> None:
    rule = AlertRule("auc", "roc_acu", "<", 0.7)
    with pytest.raises(InvalidInput, match=r"roc_acu.*known metrics: \['latency_p99_ms', 'roc_auc'\]"):
        evaluate_alerts([rule], {"roc_auc": 0.6, "latency_p99_ms": 10.0})
    assert evaluate_alerts([rule], {"roc_auc": 0.6}, skip_missing=True) == []


def test_patterns_check_every_matching_metric_and_nan_never_fires() -> None:
    metrics = {"drift.amount.psi": 0.3, "drift.age.psi": 0.05, "drift.score.psi": math.nan}
    alerts = evaluate_alerts([AlertRule("psi", "drift.*.psi", ">", 0.2)], metrics)
    assert [a.metric for a in alerts] == ["drift.amount.psi"]


def test_invalid_rules_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="op must be"):
        AlertRule("x", "m", "=>", 1.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="severity"):
        AlertRule("x", "m", ">", 1.0, "urgent")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="finite"):
        AlertRule("x", "m", ">", float("nan"))


def test_default_rules_on_collected_reports() -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"amount": rng.normal(size=5000), "age": rng.normal(size=5000)})
    current = pd.DataFrame({"amount": rng.normal(1.0, 1, size=5000), "age": rng.normal(size=5000)})
    metrics = collect_metrics(drift_report(reference, current), estimate_cost(0.5, cpus=4, gpus=1),
                              {"latency_p99_ms": 120.0})
    alerts = evaluate_alerts(default_alert_rules(), metrics, skip_missing=True)  # no labels yet: no roc_auc
    fired = {(a.rule, a.metric) for a in alerts}
    assert fired == {("feature_psi_drift", "drift.amount.psi"), ("dataset_drift", "drift.share_drifted"),
                     ("cost_per_1k_high", "cost_per_1k_usd")}
    assert alerts[0].severity == "critical"  # most severe first
    with pytest.raises(InvalidInput, match="roc_auc"):
        evaluate_alerts(default_alert_rules(), metrics)
