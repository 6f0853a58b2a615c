"""Figures carry the expected traces and values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("plotly")

from workbench.monitoring import (  # noqa: E402
    drift_report,
    estimate_cost,
    estimate_token_cost,
    figures,
    latency_over_time,
    quality_over_time,
)

T0 = pd.Timestamp("2026-03-02 10:00:00", tz="UTC")


def _log() -> pd.DataFrame:
    n = 600
    return pd.DataFrame({
        "request_id": [f"r{i}" for i in range(n)],
        "timestamp": [T0 + pd.Timedelta(seconds=i) for i in range(n)],
        "deployment": "fraud", "model_version": "1",
        "latency_ms": np.arange(n) % 100 + 1.0, "score": (np.arange(n) % 10) / 10, "amount": np.arange(n) * 1.0,
    })


def test_latency_and_throughput_figures() -> None:
    over_time = latency_over_time(_log(), "1min")
    fig = figures.latency_figure(over_time)
    assert [t.name for t in fig.data] == ["p50", "p90", "p99"]
    assert list(fig.data[2].y) == pytest.approx(over_time["latency_p99_ms"].tolist())
    fig = figures.throughput_figure(over_time)
    assert len(fig.data) == 1 and list(fig.data[0].y) == pytest.approx([1.0] * 10)


def test_drift_figure_has_psi_bars_and_threshold_lines() -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(size=3000)})
    current = pd.DataFrame({"a": rng.normal(1, 1, size=3000), "b": rng.normal(size=3000)})
    report = drift_report(reference, current)
    fig = figures.drift_psi_figure(report)
    assert list(fig.data[0].x) == ["a", "b"]
    assert list(fig.data[0].y) == pytest.approx([report["a"].psi, report["b"].psi])
    assert sorted(shape.y0 for shape in fig.layout.shapes) == [0.1, 0.2]
    fig = figures.feature_histogram_figure(reference, current, "a", bins=20)
    assert [t.name for t in fig.data] == ["reference", "current"]
    assert sum(fig.data[0].y) == pytest.approx(1.0) and len(fig.data[1].y) == 20


def test_quality_and_cost_figures() -> None:
    log = _log()
    labels = pd.DataFrame({"request_id": log["request_id"], "label": (np.arange(600) % 10 >= 7).astype(int)})
    fig = figures.quality_figure(quality_over_time(log, labels, "5min"))
    assert [t.name for t in fig.data] == ["ROC-AUC", "PR-AUC", "precision", "recall"]
    assert list(fig.data[0].y) == pytest.approx([1.0, 1.0])  # the score ranks the labels perfectly
    estimates = {"1 CPU": estimate_cost(10, cpus=1), "1 GPU": estimate_cost(100, cpus=1, gpus=1)}
    fig = figures.cost_figure(estimates)
    assert list(fig.data[0].x) == ["1 CPU", "1 GPU"]
    assert list(fig.data[0].y) == pytest.approx([e.cost_per_1k_usd for e in estimates.values()])
    assert "estimate" in fig.layout.title.text.lower()
    tokens = figures.cost_figure({"vLLM": estimate_token_cost(200, cpus=4, gpus=1)})
    assert "1M output tokens" in tokens.layout.title.text
