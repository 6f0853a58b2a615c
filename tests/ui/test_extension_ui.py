"""The Workbench JupyterLab extension in a real JupyterLab and Chromium.

JupyterLab gets the prebuilt labextension (``workbench/labextension``, from ``jlpm build:prod`` in
extensions/jupyterlab-workbench) through a ``labextensions`` folder in its own data dir, and the server
extension through a ``jupyter_server_config.d`` file in its own config dir, so nothing is installed into
the venv or the user's Jupyter. The page must show the sidebar with the six stages (the data stage with the
version recorded before the start), create a new lifecycle project from the sidebar, and poll only while
the sidebar is visible. Screenshots and the time to a populated sidebar go to ``tests/ui/artifacts/``.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ui_lab as _lab

from workbench.config import Settings
from workbench.lineage import record_stage
from workbench.pipeline import NOTEBOOKS

playwright_api = pytest.importorskip("playwright.sync_api")

REPO = Path(__file__).resolve().parents[2]
LABEXTENSION = REPO / "workbench" / "labextension"
SERVER_CONFIG = REPO / "jupyter-config" / "jupyter_server_config.d" / "workbench.json"
ARTIFACTS = Path(__file__).parent / "artifacts"
STAGE_TITLES = ["1. Data", "2. Features", "3. Training", "4. Registry", "5. Deployment", "6. Monitoring"]

pytestmark = [pytest.mark.timeout(900),
              pytest.mark.skipif(_lab.chromium() is None, reason="Debian's chromium is not installed"),
              pytest.mark.skipif(not (LABEXTENSION / "package.json").is_file(),
                                 reason="the labextension is not built: cd extensions/jupyterlab-workbench && "
                                        "jlpm install && jlpm build:prod")]


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    folder = REPO / ".workbench-test" / "jx-extension-ui" / uuid.uuid4().hex[:10]
    state = folder / ".jupyter-state"
    (state / "data" / "labextensions").mkdir(parents=True)
    (state / "data" / "labextensions" / "jupyterlab-workbench").symlink_to(LABEXTENSION, target_is_directory=True)
    (state / "config" / "jupyter_server_config.d").mkdir(parents=True)
    shutil.copy(SERVER_CONFIG, state / "config" / "jupyter_server_config.d" / "workbench.json")
    # unused ports: the services show as down and nothing reaches the shared test services
    (folder / "workbench.toml").write_text("mlflow_port = 1\nray_dashboard_port = 2\nrequest_timeout_s = 1.0\n")
    record_stage(Settings(project_dir=folder), "data", {"dataset_name": "jx-ui", "dataset_version": "sha256:jx42"})
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(root: Path) -> Iterator[_lab.Lab]:
    server = _lab.start_lab(root)
    try:
        yield server
    finally:
        _lab.stop_lab(server)


def test_sidebar_shows_the_six_stages_and_makes_a_project(lab: _lab.Lab, root: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    stage_requests: list[float] = []
    timings: dict[str, Any] = {}
    with playwright_api.sync_playwright() as p:
        browser = _lab.launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("request", lambda r: stage_requests.append(time.monotonic())
                    if "/workbench/api/stages" in r.url else None)
            started = time.monotonic()
            page.goto(f"{lab.url}/lab?token={lab.token}")
            tab = page.locator(".jp-SideBar [data-id='workbench-sidebar']")
            tab.wait_for(timeout=120_000)
            tab.click()
            page.wait_for_selector(".jp-WorkbenchStage >> nth=5", timeout=60_000)
            timings["page_load_to_sidebar_populated_s"] = round(time.monotonic() - started, 2)
            titles = page.locator(".jp-WorkbenchStage-title").all_inner_texts()
            assert titles == STAGE_TITLES
            data = page.locator(".jp-WorkbenchStage[data-stage='data']")
            assert data.locator(".jp-WorkbenchStage-status").inner_text() == "done"
            assert "sha256:jx42" in data.inner_text()
            statuses = page.locator(".jp-WorkbenchStage-status").all_inner_texts()
            assert statuses[1:] == ["never run"] * 5
            assert page.locator(".jp-WorkbenchStage button:has-text('Run stage')").count() == 6
            assert page.locator(".jp-WorkbenchStage button:has-text('Open template')").count() == 6
            page.wait_for_selector(".jp-WorkbenchService[data-service='mlflow']", timeout=30_000)
            assert "mlflow down" in page.locator(".jp-WorkbenchService[data-service='mlflow']").inner_text()
            page.screenshot(path=str(ARTIFACTS / "extension_sidebar.png"))

            # polling: requests keep coming while the sidebar is shown, none once it is hidden
            window_s = 11.0
            before = len(stage_requests)
            # the poll period is 5 s: a shown sidebar asks at least twice in 11 s (the page's clock, so Playwright
            # keeps delivering request events meanwhile; time.sleep would hold them back)
            page.wait_for_timeout(window_s * 1000)
            shown_polls = len(stage_requests) - before
            tab.click()  # collapse the left area
            page.wait_for_selector("#workbench-sidebar", state="hidden", timeout=10_000)
            page.wait_for_timeout(1000)  # a request already in flight when the tab closed
            before = len(stage_requests)
            page.wait_for_timeout(window_s * 1000)
            hidden_polls = len(stage_requests) - before
            timings.update(shown_polls=shown_polls, hidden_polls=hidden_polls)
            assert shown_polls >= 2 and hidden_polls == 0, timings
            tab.click()

            # New lifecycle project from the sidebar's button
            page.click(".jp-WorkbenchSidebar-header button:has-text('New lifecycle project')")
            dialog_input = page.locator(".jp-Dialog input")
            dialog_input.wait_for(timeout=10_000)
            dialog_input.fill("jx-life")
            page.click(".jp-Dialog .jp-mod-accept")
            page.wait_for_selector(".jp-WorkbenchSidebar-project:has-text('jx-life')", timeout=30_000)
            page.wait_for_selector(".lm-TabBar-tab:has-text('01_data.ipynb')", timeout=60_000)
            # JupyterLab keeps its own checkpoints of the opened notebook beside it (.ipynb_checkpoints)
            notebooks = sorted(p.name for p in (root / "jx-life" / "notebooks").iterdir() if not p.name.startswith("."))
            assert notebooks == sorted(NOTEBOOKS.values())
            assert (root / "jx-life" / "workbench.toml").read_text() == (root / "workbench.toml").read_text()
            page.screenshot(path=str(ARTIFACTS / "extension_new_project.png"))
        finally:
            browser.close()
    (ARTIFACTS / "extension_ui_timings.json").write_text(json.dumps(timings, indent=2))
    print(f"\nextension UI timings: {timings}")
