"""Executed notebooks are reports: short HTML reprs of results, offline figures in nbconvert's HTML export."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from workbench.monitoring import (
    AlertRule,
    drift_report,
    estimate_cost,
    estimate_token_cost,
    evaluate_alerts,
    figures,
    performance_summary,
    quality_report,
)
from workbench.registry import Comparison, LineageCard, ModelVersionInfo, RankedRun, RegistrationResult
from workbench.registry.reproduce import ReproduceResult

T0 = pd.Timestamp("2026-03-02 10:00:00", tz="UTC")
MAX_CARD = 6_000  # characters: a card, not a dump


def _log(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(n)],
                         "timestamp": [T0 + pd.Timedelta(seconds=i) for i in range(n)],
                         "deployment": "d", "model_version": "1", "latency_ms": np.arange(n) % 50 + 1.0,
                         "score": rng.uniform(size=n), "amount": rng.normal(size=n)})


def _short(html: str, *expected: str) -> None:
    assert html.lstrip().startswith("<div") and len(html) < MAX_CARD, len(html)
    for text in expected:
        assert text in html, (text, html)
    assert "DataFrame" not in html and "request_id" not in html  # no frame dumped inside


def test_monitoring_results_have_short_cards_with_their_key_figures() -> None:
    log = _log()
    perf = performance_summary(log)
    _short(perf._repr_html_(), "400 requests", "latency p99 (ms)", f"{perf.latency_p99_ms:.4g}")
    labels = pd.DataFrame({"request_id": log["request_id"], "label": (log["score"] > 0.5).astype(int)})
    labels.loc[:50, "label"] = 1 - labels.loc[:50, "label"]
    quality = quality_report(log, labels)
    _short(quality._repr_html_(), "ROC-AUC", f"{quality.roc_auc:.4g}", "400 labelled")
    assert len(repr(quality)) < 300 and "request_id" not in repr(quality)
    reference = pd.DataFrame({"a": np.random.default_rng(0).normal(size=2000),
                              "b": np.random.default_rng(1).normal(size=2000)})
    current = pd.DataFrame({"a": np.random.default_rng(2).normal(2, 1, size=2000),
                            "b": np.random.default_rng(3).normal(size=2000)})
    drift = drift_report(reference, current)
    html = drift._repr_html_()
    _short(html, "1 of 2 features drifted", f"{drift['a'].psi:.4g}")
    assert html.index(">a<") < html.index(">b<")  # worst first
    cost = estimate_cost(100.0, cpus=2)
    _short(cost._repr_html_(), f"{cost.cost_per_1k_usd:.4g} per 1,000 predictions")
    _short(estimate_token_cost(50.0, cpus=4)._repr_html_(), "per 1M output tokens")
    alerts = evaluate_alerts([AlertRule("slow", "latency_p99_ms", ">", 10.0, "critical")], perf.metrics())
    _short(alerts[0]._repr_html_(), "Alert slow (critical)", "&gt; 10")


def test_registry_results_have_short_cards() -> None:
    version = ModelVersionInfo("m", "3", ("champion",), "a" * 32, "models:/m-x", "m-" + "b" * 32, "READY",
                               datetime(2026, 3, 1, tzinfo=UTC))
    _short(version._repr_html_(), "m version 3", "champion", "models:/m/3")
    best = RankedRun("a" * 32, "best", "1", "roc_auc", 0.91234, "models:/m-x")
    runner = RankedRun("c" * 32, "second", "1", "roc_auc", 0.8, "models:/m-y")
    comparison = Comparison("recorded roc_auc", "max", best.run_id, 0.91234, "2", "d" * 32, 0.85)
    _short(comparison._repr_html_(), "not worse than the champion", "0.9123", "0.85")
    result = RegistrationResult("m", version, best, version, runner, None, comparison, False, True)
    _short(result._repr_html_(), "version 3 is champion", "challenger", "0.9123")
    card = LineageCard({"model": {"name": "m", "version": "3", "aliases": ["champion"]},
                        "run": {"run_id": "a" * 32, "run_name": "best", "experiment": "e",
                                "metrics": {"roc_auc": 0.91234}},
                        "training_stage": None, "code": {"git_commit": "abc123"},
                        "feature_service": {"value": "fs"}, "dataset_version": {"value": "ds-1"}},
                       gaps=("training notebook: none",))
    _short(card._repr_html_(), "Lineage card: m version 3", "abc123", "ds-1", "training notebook: none")
    comparison_frame = pd.DataFrame({"metric": ["roc_auc"], "original": [0.9], "reproduced": [0.9], "diff": [0.0]})
    reproduced = ReproduceResult("models:/m/3", "a" * 32, "e" * 32, "job-1", "SUCCEEDED", "ds-1", "fs",
                                 comparison_frame)
    _short(reproduced._repr_html_(), "matches", "roc_auc")
    assert "DataFrame" not in repr(reproduced) and len(repr(reproduced)) < 400


def test_report_figure_carries_plotlyjs_once_and_the_plotly_mimetype() -> None:
    figures.reset_plotlyjs()
    fig = figures.throughput_figure(pd.DataFrame({"window_start": [T0], "throughput_rps": [3.0]}))
    first = fig._repr_mimebundle_()
    second = fig._repr_mimebundle_()
    y = first[figures.PLOTLY_MIMETYPE]["data"][0]["y"]  # plotly.js typed-array form {dtype, bdata}
    assert np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]).tolist() == [3.0]
    assert "window.Plotly" in first["text/html"] and len(first["text/html"]) > 1_000_000
    assert len(second["text/html"]) < 20_000 and "Plotly.newPlot" in second["text/html"]
    assert not re.search(r"<script[^>]+src=", first["text/html"])


def test_nbconvert_html_export_embeds_plotlyjs_and_draws_the_figure(tmp_path: Path) -> None:
    """Execute a small notebook in a real kernel, export it to HTML: plotly.js inline once, each figure's div."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import pandas as pd\nfrom workbench.monitoring import figures\n"
                                  "frame = pd.DataFrame({'window_start': pd.date_range('2026-01-01', periods=3, "
                                  "freq='min', tz='UTC'), 'throughput_rps': [1.0, 2.0, 3.0]})\n"
                                  "figures.throughput_figure(frame)"),
        nbformat.v4.new_code_cell("import plotly.graph_objects as go\nfigures.use_offline_renderer()\n"
                                  "go.Figure(go.Scatter(x=[1, 2], y=[5, 6], name='own figure'))"),
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells for o in cell.outputs]
    assert all(o.get("output_type") != "error" for o in outputs), outputs
    html, _ = HTMLExporter().from_notebook_node(nb)
    (tmp_path / "report.html").write_text(html)
    marker = "plotly.js v"
    assert html.count(marker) == 1  # the bundle, once, though two figures show
    divs = re.findall(r'<div [^>]*id="(wb-fig-[0-9a-f]+)"', html)
    assert len(divs) == 2
    for div in divs:
        assert f'getElementById("{div}")' in html
    assert "own figure" in html and "Throughput" in html
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', html)
    assert not [s for s in scripts if "plot" in s.lower()], scripts  # only nbconvert's own template scripts
    body = html[html.index("<body"):]
    cells = body[body.index('class="jp-Cell'):]
    assert not re.findall(r'<script[^>]+src="https?://', cells)  # no output loads anything from the network
