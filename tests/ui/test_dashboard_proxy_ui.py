"""The monitoring dashboard in a JupyterLab tab: ``workbench dashboard`` behind jupyter-server-proxy.

A real JupyterLab with the extension and jupyter-server-proxy; the Panel app is started by the proxy on
the first request. Checked: without Jupyter's token the proxy refuses; with it the app answers under
``/workbench-dashboard/`` and its own port listens on loopback only; in Chromium the Deployments panel's
"Monitoring dashboard" button opens a main-area tab whose page renders (Bokeh's websocket goes through the
proxy, or nothing would draw), and ``?deployment=<name>`` opens that deployment.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
import ui_lab as _lab

from workbench.services.processes import is_loopback, listening_addresses

playwright_api = pytest.importorskip("playwright.sync_api")

REPO = Path(__file__).resolve().parents[2]
LABEXTENSION = REPO / "workbench" / "labextension"
SERVER_CONFIG = REPO / "jupyter-config" / "jupyter_server_config.d" / "workbench.json"
ARTIFACTS = Path(__file__).parent / "artifacts"
TAG = uuid.uuid4().hex[:8]
DEPLOYMENT = f"xp-dash-{TAG}"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900),
              pytest.mark.skipif(_lab.chromium() is None, reason="Debian's chromium is not installed"),
              pytest.mark.skipif(not (LABEXTENSION / "package.json").is_file(),
                                 reason="the labextension is not built: make extension")]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_lab.Lab]:
    folder = tmp_path_factory.mktemp("dash-proxy")
    state = folder / ".jupyter-state"
    (state / "data" / "labextensions").mkdir(parents=True)
    (state / "data" / "labextensions" / "jupyterlab-workbench").symlink_to(LABEXTENSION, target_is_directory=True)
    (state / "config" / "jupyter_server_config.d").mkdir(parents=True)
    shutil.copy(SERVER_CONFIG, state / "config" / "jupyter_server_config.d" / "workbench.json")
    # nothing answers on these ports: the dashboard must still draw, and say what it cannot reach
    (folder / "workbench.toml").write_text("mlflow_port = 1\nray_dashboard_port = 1\nserve_port = 1\n")
    server = _lab.start_lab(folder)
    try:
        yield server
    finally:
        _lab.stop_lab(server)
        shutil.rmtree(folder, ignore_errors=True)


def _dashboard_processes(lab: _lab.Lab) -> list[psutil.Process]:
    try:
        family = psutil.Process(lab.process.pid).children(recursive=True)
    except psutil.Error:
        return []
    return [p for p in family if "workbench.dashboard_app" in " ".join(p.cmdline())]


def test_the_proxy_needs_jupyters_token_and_the_app_listens_on_loopback(lab: _lab.Lab) -> None:
    refused = requests.get(f"{lab.url}/workbench-dashboard/", allow_redirects=False, timeout=60)
    assert refused.status_code in (302, 403), refused.status_code
    assert "bokeh" not in refused.text.lower()
    assert not _dashboard_processes(lab), "an unauthenticated request started the app"
    started = time.monotonic()
    page = requests.get(f"{lab.url}/workbench-dashboard/", params={"deployment": DEPLOYMENT},
                        headers={"Authorization": f"token {lab.token}"}, timeout=300)
    assert page.status_code == 200, page.text[-2000:]
    assert "<title>Workbench monitoring</title>" in page.text
    assert "/workbench-dashboard/static/" in page.text or "Bokeh" in page.text  # the app's page, under the prefix
    apps = _dashboard_processes(lab)
    assert len(apps) == 1, [p.cmdline() for p in apps]
    bound = listening_addresses(apps[0])
    assert bound and all(is_loopback(address) for address, _ in bound), bound
    print(f"dashboard app started and answered through the proxy in {time.monotonic() - started:.1f} s")


def test_the_deployments_panel_opens_the_dashboard_in_a_tab(lab: _lab.Lab) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as playwright:
        browser = _lab.launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{lab.url}/lab?token={lab.token}", wait_until="domcontentloaded")
            page.locator(".jp-SideBar [data-id='workbench-activity']").click(timeout=120_000)
            page.click(".jp-WorkbenchActivity .lm-TabBar-tab:has-text('Deployments')")
            page.locator("#workbench-deployments button:has-text('Monitoring dashboard')").click(timeout=60_000)
            tab = page.locator(".lm-TabBar-tab:has-text('Monitoring')")
            tab.wait_for(timeout=30_000)
            frame = page.frame_locator(".jp-WorkbenchDashboard iframe")
            # drawn by Bokeh from the document it pulls over the websocket (through the proxy)
            frame.locator("text=Workbench monitoring").first.wait_for(timeout=300_000)
            frame.locator("text=Refresh").first.wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "dashboard_proxy_tab.png"))
            # one deployment, as the panel's per-deployment button opens it
            direct = browser.new_page(viewport={"width": 1200, "height": 800})
            direct.goto(f"{lab.url}/workbench-dashboard/?deployment={DEPLOYMENT}&token={lab.token}",
                        wait_until="domcontentloaded")
            direct.locator(f"select option:text-is('{DEPLOYMENT}')").first.wait_for(state="attached",
                                                                                   timeout=120_000)
            assert direct.locator("select").first.input_value() == DEPLOYMENT
        finally:
            browser.close()
