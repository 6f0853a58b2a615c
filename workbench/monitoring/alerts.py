"""Alert rules: a named comparison of one metric with a threshold, evaluated on current values.

Metrics are a flat ``{name: value}`` dict, gathered from the reports' ``metrics()`` (latency, drift,
quality, cost) with :func:`collect_metrics`. A rule's metric may use ``*`` to cover several names
(``drift.*.psi`` checks every feature's PSI). A rule naming a metric that is not there is an error, not
silence: a typo in a rule must not look like "all fine".
"""

from __future__ import annotations

import fnmatch
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from workbench.errors import InvalidInput
from workbench.monitoring import reprs as _reprs

Op = Literal[">", "<", ">=", "<="]
Severity = Literal["info", "warning", "critical"]
_OPS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, "<": operator.lt, ">=": operator.ge,
                                                   "<=": operator.le}
_SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class AlertRule:
    """Fire when ``metric op threshold`` holds (NaN never fires: no data is not a breach)."""

    name: str
    metric: str
    op: Op
    threshold: float
    severity: Severity = "warning"

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise InvalidInput(f"rule {self.name!r}: op must be one of {list(_OPS)}, got {self.op!r}")
        if self.severity not in _SEVERITIES:
            raise InvalidInput(f"rule {self.name!r}: severity must be one of {list(_SEVERITIES)}, "
                               f"got {self.severity!r}")
        if not isinstance(self.threshold, int | float) or not math.isfinite(self.threshold):
            raise InvalidInput(f"rule {self.name!r}: threshold must be a finite number, got {self.threshold!r}")

    def fires(self, value: float) -> bool:
        return not math.isnan(value) and _OPS[self.op](value, self.threshold)


@dataclass(frozen=True)
class Alert:
    """A rule that fired, with the value it saw."""

    rule: str
    metric: str
    observed: float
    op: Op
    threshold: float
    severity: Severity
    message: str

    def _repr_html_(self) -> str:
        return _reprs.card(f"Alert {self.rule} ({self.severity})", {
            "metric": self.metric, "observed": self.observed, "rule": f"{self.op} {self.threshold:g}"},
            note=self.message, status=self.severity)


def collect_metrics(*sources: Mapping[str, float] | object) -> dict[str, float]:
    """Merge metric dicts, or reports with a ``metrics()`` method, into one flat dict."""
    out: dict[str, float] = {}
    for source in sources:
        values = source if isinstance(source, Mapping) else getattr(source, "metrics", None)
        if callable(values):
            values = values()
        if not isinstance(values, Mapping):
            raise InvalidInput(f"cannot take metrics from {type(source).__name__}: pass a dict or a report "
                               "with a metrics() method")
        out.update({str(k): float(v) for k, v in values.items()})
    return out


def evaluate_alerts(rules: Iterable[AlertRule], metrics: Mapping[str, float], *,
                    skip_missing: bool = False) -> list[Alert]:
    """The alerts that fire, most severe first.

    A rule whose metric (or pattern) matches nothing raises InvalidInput listing the known names, unless
    ``skip_missing`` (for rule sets covering metrics not measured yet, e.g. quality before labels).
    """
    fired: list[Alert] = []
    for rule in rules:
        names = ([n for n in metrics if fnmatch.fnmatchcase(n, rule.metric)] if "*" in rule.metric
                 else [rule.metric] if rule.metric in metrics else [])
        if not names:
            if skip_missing:
                continue
            raise InvalidInput(f"rule {rule.name!r} watches unknown metric {rule.metric!r}; known metrics: "
                               f"{sorted(metrics)}")
        for name in sorted(names):
            value = float(metrics[name])
            if rule.fires(value):
                fired.append(Alert(rule=rule.name, metric=name, observed=value, op=rule.op,
                                   threshold=float(rule.threshold), severity=rule.severity,
                                   message=f"[{rule.severity}] {rule.name}: {name} = {value:.4g} "
                                           f"({rule.op} {rule.threshold:g})"))
    return sorted(fired, key=lambda a: -_SEVERITIES.index(a.severity))


def default_alert_rules(latency_p99_ms: float = 500.0, min_roc_auc: float = 0.7,
                        max_cost_per_1k_usd: float = 0.10) -> list[AlertRule]:
    """A starting rule set: slow tail latency, drifted features or scores, weak quality, expensive serving.

    Drift levels follow :class:`~workbench.monitoring.drift.DriftThresholds` defaults (PSI above 0.2 on
    any feature or the score; half the features drifted). Evaluate with ``skip_missing=True`` when not every kind of
    metric is measured yet.
    """
    return [
        AlertRule("latency_p99_high", "latency_p99_ms", ">", latency_p99_ms, "warning"),
        AlertRule("feature_psi_drift", "drift.*.psi", ">", 0.2, "warning"),
        AlertRule("dataset_drift", "drift.share_drifted", ">=", 0.5, "critical"),
        AlertRule("roc_auc_low", "roc_auc", "<", min_roc_auc, "critical"),
        AlertRule("cost_per_1k_high", "cost_per_1k_usd", ">", max_cost_per_1k_usd, "warning"),
    ]
