"""``workbench dashboard`` serves the monitoring dashboard, and Chromium draws its charts with no network.

The dashboard runs as its own process (``python -m workbench.dashboard_app``, what ``workbench dashboard``
runs) over a prediction log written by the real PredictionLogWriter for a model registered on the test
MLflow server. The page must draw its Plotly charts (their SVG), list the drifted features the domain
computes, load nothing from outside 127.0.0.1, and refresh live when new predictions are logged.
A screenshot goes to ``tests/ui/artifacts/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests
import ui_lab as _lab

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from monitoring_fixtures import register_binary_model, write_log  # noqa: E402

from workbench.config import Settings  # noqa: E402
from workbench.monitoring.deployment import drift_for_deployment  # noqa: E402

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(_lab.chromium() is None, reason="Debian's chromium is not installed")]
ARTIFACTS = Path(__file__).parent / "artifacts"
START = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)


@pytest.fixture(scope="module")
def served(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings, object]]:
    folder = tmp_path_factory.mktemp("mo-ui")
    settings = services.replace(state_dir=folder / "state")
    model = register_binary_model(settings, folder / "model", f"mo-ui-{uuid.uuid4().hex[:6]}", "mo-monitoring")
    write_log(settings, "mo-ui", model, n=600, start=START)
    port = _lab.free_port()
    ports = ("mlflow_port", "ray_metrics_port", "serve_port", "ray_dashboard_port", "ray_port")
    env = {**os.environ, "WORKBENCH_STATE_DIR": str(settings.state_dir),
           **{f"WORKBENCH_{name.upper()}": str(getattr(settings, name)) for name in ports}}
    proc = subprocess.Popen([sys.executable, "-m", "workbench.dashboard_app", "--port", str(port), "--deployment",
                             "mo-ui", "--model-uri", model.uri, "--period", "2", "--address", "127.0.0.1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=60).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.5)
    else:
        proc.kill()
        raise AssertionError(f"the dashboard did not answer: {proc.stdout.read().decode() if proc.stdout else ''}")
    try:
        yield url, settings, model
    finally:
        proc.terminate()
        proc.wait(20)


def test_dashboard_serves_and_draws_its_charts_offline(served: tuple) -> None:
    url, settings, model = served
    expected = drift_for_deployment(settings, "mo-ui", model_uri=model.uri)
    outside: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = _lab.launch_chromium(p)
        page = browser.new_page(viewport={"width": 1500, "height": 1400})
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "ws://127.0.0.1",
                                                                                     "data:", "blob:")) else None)
        page.goto(url, timeout=150_000)
        # Panel draws into shadow roots: Playwright's CSS locators pierce them, document.querySelector does not.
        # The charts start empty and are filled by the first refresh, after the page loaded: wait for the
        # drawn data itself (the heat map's image, the drill-down's bars, the WebGL canvas of the series).
        page.locator(".js-plotly-plot .hm image").first.wait_for(timeout=150_000)
        page.locator(".js-plotly-plot .barlayer .point path").first.wait_for(timeout=60_000)
        plots = page.locator(".js-plotly-plot").count()
        bars = page.locator(".js-plotly-plot .barlayer .point path").count()
        gl = page.locator(".js-plotly-plot canvas.gl-canvas-context").count()
        assert plots >= 5 and gl >= 2  # latency and throughput are WebGL (Scattergl)
        worst = max(expected.features, key=lambda r: r.psi)  # the drill-down opens on the most drifted column
        assert bars == 2 * len(worst.bin_labels())  # reference and current bars, one per bin
        titles = page.locator(".js-plotly-plot .gtitle").all_text_contents()
        assert any(t.startswith(f"{worst.feature}: reference vs current") for t in titles), titles
        summary = page.locator(".wb-dash-summary .workbench-card").inner_text()
        assert "Deployment mo-ui" in summary and model.uri in summary and "600" in summary
        alerts = page.locator(".wb-dash-alerts .workbench-card").inner_text()
        assert "feature_psi_drift" in alerts  # the drifted colour column fires the PSI rule
        write_log(settings, "mo-ui", model, n=100, shift_after=50, start=START + pd.Timedelta(minutes=61), seed=9)
        deadline = time.monotonic() + 60
        card = page.locator(".wb-dash-summary .workbench-card")
        while "700" not in card.inner_text() and time.monotonic() < deadline:
            page.wait_for_timeout(500)  # the page's own periodic refresh (every 2 s) must pick the rows up
        assert "700" in page.locator(".wb-dash-summary .workbench-card").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        browser.close()
    assert "colour" in expected.drifted_features
    assert not outside, f"the page loaded resources from outside: {outside[:5]}"
