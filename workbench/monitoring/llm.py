"""Token-level monitoring of a vLLM deployment, from its Prometheus ``/metrics``.

vLLM exports cumulative histograms of the time to first token, the time per output token and the
end-to-end latency, gauges of running and waiting requests and of KV-cache usage, and counters of prompt
and generation tokens. :func:`llm_snapshot` reads one scrape (or the difference of two scrapes, for the
traffic of an interval) into an :class:`LLMMetrics`; :func:`llm_metrics_over_time` turns a series of
timed scrapes into a tidy frame for plots; :func:`llm_token_cost` prices the measured generation rate
with the existing cost estimate, and :func:`default_llm_alert_rules` watches the usual suspects.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import pandas as pd

from workbench.config import Prices
from workbench.errors import NotFound
from workbench.monitoring.alerts import AlertRule
from workbench.monitoring.cost import TokenCostEstimate, estimate_token_cost
from workbench.monitoring.performance import (
    MetricSample,
    histogram_buckets,
    histogram_quantile,
    metric_total,
    scrape_metrics,
    subtract_samples,
)

TTFT = "vllm:time_to_first_token_seconds"
TPOT = "vllm:request_time_per_output_token_seconds"
TPOT_FALLBACK = "vllm:time_per_output_token_seconds"  # the name before vLLM 0.11
E2E = "vllm:e2e_request_latency_seconds"
QUEUE = "vllm:request_queue_time_seconds"
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE = "vllm:kv_cache_usage_perc"
KV_CACHE_FALLBACK = "vllm:gpu_cache_usage_perc"
PROMPT_TOKENS = "vllm:prompt_tokens_total"
GENERATION_TOKENS = "vllm:generation_tokens_total"
REQUESTS = "vllm:request_success_total"


@dataclass(frozen=True)
class LLMMetrics:
    """What one scrape (or one interval between two scrapes) of vLLM's metrics says, in milliseconds."""

    requests: float
    prompt_tokens: float
    generation_tokens: float
    running: float
    waiting: float
    kv_cache_usage: float  # 0..1
    ttft_p50_ms: float
    ttft_p99_ms: float
    tpot_p50_ms: float
    tpot_p99_ms: float
    e2e_p50_ms: float
    e2e_p99_ms: float
    ttft_mean_ms: float
    e2e_mean_ms: float
    interval_s: float | None = None  # set when the metrics are the difference of two timed scrapes

    def _repr_html_(self) -> str:
        from workbench.monitoring import reprs

        return reprs.card(f"LLM serving: {self.requests:,.0f} requests"
                          + (f" over {self.interval_s:.0f} s" if self.interval_s else ""), {
            "output tokens/s": self.output_tokens_per_s, "TTFT p50 / p99 (ms)":
            f"{reprs.fmt(self.ttft_p50_ms)} / {reprs.fmt(self.ttft_p99_ms)}",
            "TPOT p50 / p99 (ms)": f"{reprs.fmt(self.tpot_p50_ms)} / {reprs.fmt(self.tpot_p99_ms)}",
            "end-to-end p50 / p99 (ms)": f"{reprs.fmt(self.e2e_p50_ms)} / {reprs.fmt(self.e2e_p99_ms)}",
            "running / waiting": f"{self.running:g} / {self.waiting:g}", "KV cache usage": self.kv_cache_usage,
            "prompt / generated tokens": f"{self.prompt_tokens:,.0f} / {self.generation_tokens:,.0f}"})

    @property
    def output_tokens_per_s(self) -> float:
        """Generation tokens per second over the interval (NaN without one)."""
        if not self.interval_s or self.interval_s <= 0:
            return math.nan
        return self.generation_tokens / self.interval_s

    def metrics(self) -> dict[str, float]:
        """Flat values for alert rules (``llm.`` prefixed)."""
        out = {f"llm.{k}": float(v) for k, v in asdict(self).items() if v is not None}
        if self.interval_s:
            out["llm.output_tokens_per_s"] = self.output_tokens_per_s
        return out

    def __str__(self) -> str:
        return (f"{self.requests:.0f} requests, {self.prompt_tokens:.0f} prompt / {self.generation_tokens:.0f} "
                f"generated tokens; TTFT p50 {self.ttft_p50_ms:.0f} ms p99 {self.ttft_p99_ms:.0f} ms; time per "
                f"output token p50 {self.tpot_p50_ms:.1f} ms; e2e p50 {self.e2e_p50_ms:.0f} ms p99 "
                f"{self.e2e_p99_ms:.0f} ms; running {self.running:.0f}, waiting {self.waiting:.0f}, KV cache "
                f"{self.kv_cache_usage:.1%}")


def _labels(model_name: str | None) -> dict[str, str] | None:
    return {"model_name": model_name} if model_name else None


def _quantile_ms(samples: Sequence[MetricSample], q: float, metric: str, labels: Mapping[str, str] | None) -> float:
    try:
        return histogram_quantile(samples, q, metric, labels) * 1000.0
    except NotFound:
        return math.nan


def _mean_ms(samples: Sequence[MetricSample], metric: str, labels: Mapping[str, str] | None) -> float:
    try:
        total = metric_total(samples, metric + "_sum", labels)
        count = metric_total(samples, metric + "_count", labels)
    except NotFound:
        return math.nan
    return total / count * 1000.0 if count else math.nan


def _first_present(samples: Sequence[MetricSample], *names: str) -> str:
    present = {s.name.removesuffix("_bucket") for s in samples}
    for name in names:
        if name in present:
            return name
    return names[0]


def _gauge(samples: Sequence[MetricSample], labels: Mapping[str, str] | None, *names: str) -> float:
    for name in names:
        try:
            return metric_total(samples, name, labels)
        except NotFound:
            continue
    return math.nan


def llm_snapshot(samples: Sequence[MetricSample], *, model_name: str | None = None,
                 interval_s: float | None = None) -> LLMMetrics:
    """Read vLLM's metrics out of parsed samples (one scrape, or ``subtract_samples(later, earlier)``).

    NotFound when the samples are not vLLM's (no ``vllm:`` metric at all).
    """
    if not any(s.name.startswith("vllm:") for s in samples):
        raise NotFound("these metrics hold no vllm: series; is the URL a vLLM server's /metrics?")
    labels = _labels(model_name)
    if labels and not any(s.labels.get("model_name") == model_name for s in samples if s.name.startswith("vllm:")):
        served = sorted({s.labels.get("model_name", "") for s in samples if s.name.startswith("vllm:")} - {""})
        raise NotFound(f"vLLM's metrics have no series for model {model_name!r}; it serves {served}")
    tpot = _first_present(samples, TPOT, TPOT_FALLBACK)
    try:
        requests_done = histogram_buckets(samples, E2E, labels)[-1][1]
    except NotFound:
        requests_done = _gauge(samples, labels, REQUESTS)
    return LLMMetrics(
        requests=float(requests_done),
        prompt_tokens=_gauge(samples, labels, PROMPT_TOKENS),
        generation_tokens=_gauge(samples, labels, GENERATION_TOKENS),
        running=_gauge(samples, labels, RUNNING),
        waiting=_gauge(samples, labels, WAITING),
        kv_cache_usage=_gauge(samples, labels, KV_CACHE, KV_CACHE_FALLBACK),
        ttft_p50_ms=_quantile_ms(samples, 0.5, TTFT, labels),
        ttft_p99_ms=_quantile_ms(samples, 0.99, TTFT, labels),
        tpot_p50_ms=_quantile_ms(samples, 0.5, tpot, labels),
        tpot_p99_ms=_quantile_ms(samples, 0.99, tpot, labels),
        e2e_p50_ms=_quantile_ms(samples, 0.5, E2E, labels),
        e2e_p99_ms=_quantile_ms(samples, 0.99, E2E, labels),
        ttft_mean_ms=_mean_ms(samples, TTFT, labels),
        e2e_mean_ms=_mean_ms(samples, E2E, labels),
        interval_s=interval_s,
    )


@dataclass(frozen=True)
class TimedScrape:
    """One scrape of a /metrics endpoint and when it was taken (``time.time()``)."""

    at: float
    samples: list[MetricSample]


def scrape_llm(url: str, timeout_s: float = 5.0) -> TimedScrape:
    """One timed scrape of a vLLM ``/metrics`` URL (``LLMDeployment.metrics_url``)."""
    return TimedScrape(time.time(), scrape_metrics(url, timeout_s))


def llm_interval(later: TimedScrape, earlier: TimedScrape, *, model_name: str | None = None) -> LLMMetrics:
    """The traffic between two scrapes: counts and latency percentiles of that interval only, with the
    gauges (running, waiting, KV cache) as of the later scrape."""
    delta = subtract_samples(later.samples, earlier.samples)
    gauges = {RUNNING, WAITING, KV_CACHE, KV_CACHE_FALLBACK}
    merged = [s for s in delta if s.name not in gauges] + [s for s in later.samples if s.name in gauges]
    return llm_snapshot(merged, model_name=model_name, interval_s=max(later.at - earlier.at, 1e-9))


def llm_metrics_over_time(scrapes: Sequence[TimedScrape], *, model_name: str | None = None) -> pd.DataFrame:
    """One row per interval between consecutive scrapes: ``time``, the LLMMetrics fields and tokens/s."""
    rows = []
    ordered = sorted(scrapes, key=lambda s: s.at)
    for earlier, later in zip(ordered, ordered[1:], strict=False):
        m = llm_interval(later, earlier, model_name=model_name)
        rows.append({"time": pd.Timestamp(later.at, unit="s", tz="UTC"), **asdict(m),
                     "output_tokens_per_s": m.output_tokens_per_s})
    columns = ["time", *LLMMetrics.__dataclass_fields__, "output_tokens_per_s"]
    return pd.DataFrame(rows, columns=columns)


def watch_llm(url: str, *, every_s: float, until: Callable[[], bool], timeout_s: float = 600.0,
              max_scrapes: int = 10_000) -> list[TimedScrape]:
    """Scrape ``url`` every ``every_s`` seconds until ``until()`` is true (then once more) or the time is up."""
    scrapes = [scrape_llm(url)]
    deadline = time.monotonic() + timeout_s
    while not until() and time.monotonic() < deadline and len(scrapes) < max_scrapes:
        time.sleep(every_s)
        scrapes.append(scrape_llm(url))
    scrapes.append(scrape_llm(url))
    return scrapes


def llm_token_cost(metrics: LLMMetrics | float, *, cpus: float, gpus: float = 0,
                   prices: Prices | None = None) -> TokenCostEstimate:
    """Estimated cost per 1M output tokens at the measured generation rate (tokens/s or an interval)."""
    rate = metrics.output_tokens_per_s if isinstance(metrics, LLMMetrics) else float(metrics)
    return estimate_token_cost(rate, cpus=cpus, gpus=gpus, prices=prices)


def default_llm_alert_rules(*, ttft_p99_ms: float = 5000.0, tpot_p99_ms: float = 500.0, e2e_p99_ms: float = 30000.0,
                            max_waiting: float = 4, max_kv_cache_usage: float = 0.9,
                            max_cost_per_1m_tokens_usd: float = 10.0) -> list[AlertRule]:
    """A starting rule set for an LLM deployment (evaluate with ``evaluate_alerts`` on ``metrics()``)."""
    return [
        AlertRule("llm_ttft_p99_high", "llm.ttft_p99_ms", ">", ttft_p99_ms, "warning"),
        AlertRule("llm_tpot_p99_high", "llm.tpot_p99_ms", ">", tpot_p99_ms, "warning"),
        AlertRule("llm_e2e_p99_high", "llm.e2e_p99_ms", ">", e2e_p99_ms, "warning"),
        AlertRule("llm_queue_building", "llm.waiting", ">", max_waiting, "warning"),
        AlertRule("llm_kv_cache_full", "llm.kv_cache_usage", ">", max_kv_cache_usage, "critical"),
        AlertRule("llm_cost_per_1m_tokens_high", "cost_per_1m_tokens_usd", ">", max_cost_per_1m_tokens_usd,
                  "warning"),
    ]
