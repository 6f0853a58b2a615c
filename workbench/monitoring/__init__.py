"""Monitoring of deployed models: latency and throughput, cost, drift, model quality, alert rules.

Everything here works on the prediction log the serving layer writes (a DataFrame or Parquet files),
on labels that arrive later, and on the Prometheus metrics of Ray Serve and vLLM. Figures live in
:mod:`workbench.monitoring.figures` (Plotly), imported on its own so this package needs no plotting.
"""

from workbench.monitoring.alerts import Alert, AlertRule, collect_metrics, default_alert_rules, evaluate_alerts
from workbench.monitoring.cost import CostEstimate, TokenCostEstimate, estimate_cost, estimate_token_cost
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
from workbench.monitoring.prediction_log import LOG_COLUMNS, read_log
from workbench.monitoring.quality import (
    LabelJoin,
    QualityReport,
    classification_metrics,
    join_labels,
    quality_over_time,
    quality_report,
)

__all__ = [
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
