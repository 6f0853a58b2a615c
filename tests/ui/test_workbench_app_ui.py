"""``Workbench()`` in a real JupyterLab and Chromium, against the session's real MLflow server and Ray head.

A notebook shows the tabbed app; the test runs its cell from the keyboard and opens every tab as a user
would, by clicking its title, and sees each stage's widget drawn (the data browser's picker, the job
launcher's form with the cluster's capacity, the run comparer's table of the experiment the test filled,
the deployer's form, the Panel monitoring dashboard) and no tab saying it could not open. Screenshots go to
``tests/ui/artifacts/``.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import ui_lab as _lab

from workbench.config import Settings

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800),
              pytest.mark.skipif(_lab.chromium() is None, reason="Debian's chromium is not installed")]

ARTIFACTS = Path(__file__).parent / "artifacts"
#: tab title -> a selector that only the opened widget draws
DRAWN = {"Jobs": ".wb-jobs", "Runs": ".wb-runs", "Deploy": ".wb-deploy", "Monitor": ".wb-dashboard"}


@pytest.fixture(scope="module")
def project(services: Settings) -> Iterator[Path]:
    root = services.state_dir / "wa-app-ui" / uuid.uuid4().hex[:10]
    root.mkdir(parents=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(project: Path) -> Iterator[_lab.Lab]:
    server = _lab.start_lab(project)
    try:
        yield server
    finally:
        _lab.stop_lab(server)


def test_every_tab_of_the_app_opens_its_widget(lab: _lab.Lab, project: Path, services: Settings) -> None:
    from mlflow.tracking import MlflowClient

    experiment = f"wa-app-ui-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(services.mlflow_uri)
    exp_id = client.create_experiment(experiment)
    run_names = [f"wa-run-{i}" for i in range(3)]
    for i, name in enumerate(run_names):
        run = client.create_run(exp_id, run_name=name)
        client.log_param(run.info.run_id, "lr", str(0.1 / (i + 1)))
        client.log_metric(run.info.run_id, "roc_auc", 0.7 + i / 10)
        client.set_terminated(run.info.run_id)
    ports = {name: getattr(services, name) for name in ("mlflow_port", "ray_port", "ray_dashboard_port",
                                                        "ray_metrics_port", "serve_port")}
    cell = ("from workbench.config import Settings\n"
            "from workbench import widgets\n"
            f"settings = Settings(project_dir={str(project)!r}, state_dir={str(project / 'state')!r}, "
            f"experiment={experiment!r}, **{ports!r})\n"
            f"widgets.Workbench(settings, options={{'Runs': {{'experiment': {experiment!r}}}}})")
    _lab.write_notebook(project / "app.ipynb", [cell])
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = _lab.launch_chromium(p)
        page = browser.new_page(viewport={"width": 1600, "height": 1300})
        try:
            page.goto(lab.notebook_url("app.ipynb"))
            _lab.run_first_cell(page)
            tabs = ".jp-OutputArea .lm-TabBar-tab"
            page.wait_for_selector(tabs, timeout=600_000)
            titles = [t.strip() for t in page.locator(f"{tabs} .lm-TabBar-tabLabel").all_inner_texts()]
            assert {"Data", "Jobs", "Runs", "Deploy", "Monitor"} <= set(titles), titles
            for title in titles:
                started = time.perf_counter()
                page.click(f"{tabs}:has-text('{title}')")
                if title in DRAWN:
                    page.wait_for_selector(f".jp-OutputArea {DRAWN[title]}", state="visible", timeout=600_000)
                page.screenshot(path=str(ARTIFACTS / f"app_{title.lower()}.png"))
                print(f"{title}: drawn in {time.perf_counter() - started:.1f} s")
            page.click(f"{tabs}:has-text('Runs')")
            for name in run_names:  # the comparer shows the experiment's runs
                page.wait_for_selector(f".wb-runs :text('{name}')", timeout=120_000)
            assert "could not open" not in page.inner_text(".jp-OutputArea")
            assert "Traceback" not in page.inner_text(".jp-OutputArea")
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "app_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
