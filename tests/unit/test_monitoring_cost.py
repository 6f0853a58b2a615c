"""Cost estimates: the arithmetic, and that they say they are estimates."""

from __future__ import annotations

import pytest

from workbench.config import Prices, Settings
from workbench.errors import InvalidInput
from workbench.monitoring import estimate_cost, estimate_token_cost


def test_cost_per_1k_predictions_on_cpus() -> None:
    estimate = estimate_cost(10.0, cpus=2, gpus=0, prices=Prices(cpu_hour_usd=0.05, gpu_hour_usd=2.5))
    assert estimate.cost_per_hour_usd == pytest.approx(0.10)
    assert estimate.predictions_per_hour == pytest.approx(36_000)
    assert estimate.cost_per_1k_usd == pytest.approx(0.10 / 36)  # $0.10 buys 36,000 predictions
    assert estimate.metrics() == {"cost_per_1k_usd": estimate.cost_per_1k_usd, "cost_per_hour_usd": 0.10}
    assert "estimate" in estimate.basis and "estimate" in estimate.label and "per 1,000" in estimate.label


def test_gpu_cost_uses_the_configured_prices() -> None:
    settings = Settings(prices=Prices(cpu_hour_usd=0.1, gpu_hour_usd=3.0))
    estimate = estimate_cost(50.0, cpus=4, gpus=1, prices=settings.prices)
    assert estimate.cost_per_hour_usd == pytest.approx(3.4)
    assert estimate.cost_per_1k_usd == pytest.approx(3.4 / (50 * 3.6))
    assert (estimate.cpu_hour_usd, estimate.gpu_hour_usd) == (0.1, 3.0)


def test_cost_per_1m_output_tokens() -> None:
    estimate = estimate_token_cost(100.0, cpus=4, gpus=1, prices=Prices(cpu_hour_usd=0.05, gpu_hour_usd=2.5))
    assert estimate.cost_per_hour_usd == pytest.approx(2.7)
    assert estimate.output_tokens_per_hour == pytest.approx(360_000)
    assert estimate.cost_per_1m_tokens_usd == pytest.approx(7.5)
    assert "per 1M output tokens" in estimate.label and "estimate" in estimate.label


@pytest.mark.parametrize(("throughput", "cpus", "gpus", "message"), [
    (0.0, 1, 0, "throughput_rps must be a positive"),
    (float("nan"), 1, 0, "throughput_rps must be a positive"),
    (10.0, -1, 0, "cpus must be"),
    (10.0, 0, 0, "at least one CPU or GPU"),
])
def test_unusable_inputs_are_rejected(throughput: float, cpus: float, gpus: float, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        estimate_cost(throughput, cpus, gpus)
