"""Monitoring of deployed models: latency and throughput, cost, drift, model quality, alert rules.

Everything here works on the prediction log the serving layer writes (a DataFrame or Parquet files),
on labels that arrive later, and on the Prometheus metrics of Ray Serve and vLLM. Figures live in
:mod:`workbench.monitoring.figures` (Plotly), imported on its own so this package needs no plotting;
the dashboard's figures are in :mod:`workbench.monitoring.dashboard_figures`.

For any deployed model: :func:`drift_for_deployment` (every logged input and the output against that model
version's training frame), :func:`quality_for_deployment` (by task, labels joined by request id) and
:func:`monitoring_report` (all of it, with cost and firing alerts, as a :class:`MonitoringReport`).
"""

from workbench.monitoring.alerts import Alert, AlertRule, collect_metrics, default_alert_rules, evaluate_alerts
from workbench.monitoring.column_drift import ReferenceProfile, column_drift_report
from workbench.monitoring.cost import CostEstimate, TokenCostEstimate, estimate_cost, estimate_token_cost
from workbench.monitoring.deployment import (
    LogWindow,
    ModelReference,
    MonitoringReport,
    drift_for_deployment,
    model_reference,
    monitoring_report,
    quality_for_deployment,
    read_window,
)
from workbench.monitoring.drift import (
    PSI_EPSILON,
    DriftReference,
    DriftReport,
    DriftThresholds,
    FeatureDrift,
    HistogramComparison,
    drift_report,
    histogram_comparison,
)
from workbench.monitoring.llm import (
    LLMMetrics,
    TimedScrape,
    default_llm_alert_rules,
    llm_interval,
    llm_metrics_over_time,
    llm_snapshot,
    llm_token_cost,
    scrape_llm,
    watch_llm,
)
from workbench.monitoring.performance import (
    MetricSample,
    PerformanceSummary,
    histogram_quantile,
    latency_over_time,
    metric_total,
    parse_prometheus,
    performance_summary,
    scrape_metrics,
    subtract_samples,
)
from workbench.monitoring.prediction_log import LOG_COLUMNS, log_row_counts, read_log
from workbench.monitoring.quality import (
    LabelJoin,
    QualityReport,
    classification_metrics,
    join_labels,
    quality_over_time,
    quality_report,
)
from workbench.monitoring.task_quality import TaskQuality, task_quality, task_quality_over_time

__all__ = [
    "LogWindow",
    "ModelReference",
    "MonitoringReport",
    "ReferenceProfile",
    "TaskQuality",
    "column_drift_report",
    "drift_for_deployment",
    "log_row_counts",
    "model_reference",
    "monitoring_report",
    "quality_for_deployment",
    "read_window",
    "task_quality",
    "task_quality_over_time",
    "LLMMetrics",
    "TimedScrape",
    "default_llm_alert_rules",
    "llm_interval",
    "llm_metrics_over_time",
    "llm_snapshot",
    "llm_token_cost",
    "scrape_llm",
    "watch_llm",
    "LOG_COLUMNS",
    "PSI_EPSILON",
    "Alert",
    "AlertRule",
    "CostEstimate",
    "DriftReference",
    "DriftReport",
    "DriftThresholds",
    "FeatureDrift",
    "HistogramComparison",
    "LabelJoin",
    "MetricSample",
    "PerformanceSummary",
    "QualityReport",
    "TokenCostEstimate",
    "classification_metrics",
    "collect_metrics",
    "default_alert_rules",
    "drift_report",
    "estimate_cost",
    "estimate_token_cost",
    "evaluate_alerts",
    "histogram_comparison",
    "histogram_quantile",
    "join_labels",
    "latency_over_time",
    "metric_total",
    "parse_prometheus",
    "performance_summary",
    "quality_over_time",
    "quality_report",
    "read_log",
    "scrape_metrics",
    "subtract_samples",
]
