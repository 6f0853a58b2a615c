"""What serving costs: configured hourly prices times the resources held, divided by measured throughput.

These are estimates, and every result says so: the prices come from ``Settings.prices`` (not a bill),
and the throughput is whatever was measured (a load test, or the log's recent traffic). A replica that
idles costs the same per hour and more per prediction, which is why throughput is an input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workbench.config import Prices
from workbench.errors import InvalidInput
from workbench.monitoring import reprs as _reprs

ESTIMATE_NOTE = "estimate: configured hourly prices x resources held / measured throughput (not a bill)"


def _check(throughput: float, what: str, cpus: float, gpus: float, prices: Prices) -> None:
    if not isinstance(throughput, int | float) or not math.isfinite(throughput) or throughput <= 0:
        raise InvalidInput(f"{what} must be a positive number, got {throughput!r}; measure it first "
                           "(performance_summary(log).throughput_rps or a load test)")
    for name, value in (("cpus", cpus), ("gpus", gpus), ("prices.cpu_hour_usd", prices.cpu_hour_usd),
                        ("prices.gpu_hour_usd", prices.gpu_hour_usd)):
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise InvalidInput(f"{name} must be a number >= 0, got {value!r}")
    if cpus == 0 and gpus == 0:
        raise InvalidInput("a deployment holds at least one CPU or GPU; got cpus=0 and gpus=0")


def _hourly(cpus: float, gpus: float, prices: Prices) -> float:
    return cpus * prices.cpu_hour_usd + gpus * prices.gpu_hour_usd


@dataclass(frozen=True)
class CostEstimate:
    """Estimated cost of serving predictions at a measured throughput (see ``basis``)."""

    throughput_rps: float
    cpus: float
    gpus: float
    cpu_hour_usd: float
    gpu_hour_usd: float
    cost_per_hour_usd: float
    predictions_per_hour: float
    cost_per_1k_usd: float
    basis: str = ESTIMATE_NOTE

    @property
    def label(self) -> str:
        return (f"~${self.cost_per_1k_usd:.4g} per 1,000 predictions (~${self.cost_per_hour_usd:.4g}/h at "
                f"{self.throughput_rps:.4g} req/s; {self.basis})")

    def metrics(self) -> dict[str, float]:
        return {"cost_per_1k_usd": self.cost_per_1k_usd, "cost_per_hour_usd": self.cost_per_hour_usd}

    def _repr_html_(self) -> str:
        return _reprs.card(f"Estimated cost: ~${self.cost_per_1k_usd:.4g} per 1,000 predictions", {
            "cost per hour (USD)": self.cost_per_hour_usd, "throughput (req/s)": self.throughput_rps,
            "predictions per hour": self.predictions_per_hour, "CPUs": self.cpus, "GPUs": self.gpus,
            "CPU hour (USD)": self.cpu_hour_usd, "GPU hour (USD)": self.gpu_hour_usd}, note=self.basis)


@dataclass(frozen=True)
class TokenCostEstimate:
    """Estimated cost of generating output tokens with an LLM at a measured token throughput."""

    output_tokens_per_s: float
    cpus: float
    gpus: float
    cpu_hour_usd: float
    gpu_hour_usd: float
    cost_per_hour_usd: float
    output_tokens_per_hour: float
    cost_per_1m_tokens_usd: float
    basis: str = ESTIMATE_NOTE

    @property
    def label(self) -> str:
        return (f"~${self.cost_per_1m_tokens_usd:.4g} per 1M output tokens (~${self.cost_per_hour_usd:.4g}/h at "
                f"{self.output_tokens_per_s:.4g} tokens/s; {self.basis})")

    def _repr_html_(self) -> str:
        return _reprs.card(f"Estimated cost: ~${self.cost_per_1m_tokens_usd:.4g} per 1M output tokens", {
            "cost per hour (USD)": self.cost_per_hour_usd, "output tokens/s": self.output_tokens_per_s,
            "output tokens per hour": self.output_tokens_per_hour, "CPUs": self.cpus, "GPUs": self.gpus,
            "CPU hour (USD)": self.cpu_hour_usd, "GPU hour (USD)": self.gpu_hour_usd}, note=self.basis)

    def metrics(self) -> dict[str, float]:
        return {"cost_per_1m_tokens_usd": self.cost_per_1m_tokens_usd, "cost_per_hour_usd": self.cost_per_hour_usd}


def estimate_cost(throughput_rps: float, cpus: float, gpus: float = 0, prices: Prices | None = None) -> CostEstimate:
    """Cost per hour and per 1,000 predictions of a deployment holding ``cpus``/``gpus`` (all replicas)."""
    prices = prices or Prices()
    _check(throughput_rps, "throughput_rps", cpus, gpus, prices)
    per_hour = _hourly(cpus, gpus, prices)
    predictions = throughput_rps * 3600.0
    return CostEstimate(throughput_rps=float(throughput_rps), cpus=float(cpus), gpus=float(gpus),
                        cpu_hour_usd=prices.cpu_hour_usd, gpu_hour_usd=prices.gpu_hour_usd,
                        cost_per_hour_usd=per_hour, predictions_per_hour=predictions,
                        cost_per_1k_usd=per_hour / predictions * 1000.0)


def estimate_token_cost(output_tokens_per_s: float, cpus: float, gpus: float = 0,
                        prices: Prices | None = None) -> TokenCostEstimate:
    """Cost per hour and per 1M output tokens of an LLM deployment (vLLM) at a measured generation rate."""
    prices = prices or Prices()
    _check(output_tokens_per_s, "output_tokens_per_s", cpus, gpus, prices)
    per_hour = _hourly(cpus, gpus, prices)
    tokens = output_tokens_per_s * 3600.0
    return TokenCostEstimate(output_tokens_per_s=float(output_tokens_per_s), cpus=float(cpus), gpus=float(gpus),
                             cpu_hour_usd=prices.cpu_hour_usd, gpu_hour_usd=prices.gpu_hour_usd,
                             cost_per_hour_usd=per_hour, output_tokens_per_hour=tokens,
                             cost_per_1m_tokens_usd=per_hour / tokens * 1_000_000.0)
