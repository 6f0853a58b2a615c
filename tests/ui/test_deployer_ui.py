"""The deployer in a real JupyterLab and Chromium, against the session's real Ray head and MLflow server.

A small binary pyfunc model is registered (``champion``); a notebook shows ``Deployer(...)`` with it picked.
The test runs the cell from the keyboard, sees the cluster's capacity and the check drawn, clicks deploy,
sees the progress line and then the deployment healthy in the table serving v1, types a request into the
form built from the model's signature, clicks send and sees the answer, whose score equals what
``mlflow.pyfunc`` predicts for the same row here; then rolls to v2 and back, and deletes it through the
confirm step. Screenshots and timings go to ``tests/ui/artifacts/``;
the deployment (a ``dpw-`` name of its own) is deleted at the end.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ui_lab as _lab

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from monitoring_fixtures import register_binary_model  # noqa: E402

from workbench.config import Settings  # noqa: E402

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400),
              pytest.mark.skipif(_lab.chromium() is None, reason="Debian's chromium is not installed")]

ARTIFACTS = Path(__file__).parent / "artifacts"
DEPLOY_TIMEOUT_MS = 1_200_000  # ~20 s on a quiet machine, many minutes on a crowded one
WIDGET_ERROR = "span.wb-deploy-error.wb-deploy-message"


def wait_unless_error(page: Any, selector: str, timeout: int = DEPLOY_TIMEOUT_MS) -> None:
    """Wait for ``selector``; fail at once, quoting it, when the widget shows an error message instead."""
    page.wait_for_selector(f"{selector}, {WIDGET_ERROR}", timeout=timeout)
    error = page.query_selector(WIDGET_ERROR)
    if error is not None and page.query_selector(selector) is None:
        raise AssertionError(f"the deployer shows an error instead of {selector!r}: {error.inner_text()}")


@pytest.fixture(scope="module")
def project(services: Settings) -> Iterator[Path]:
    root = services.state_dir / "dpw-deployer-ui" / uuid.uuid4().hex[:10]
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


@pytest.fixture()
def deployment(services: Settings) -> Iterator[str]:
    from workbench.serving import delete_deployment, list_deployments

    name = f"dpw-ui-{uuid.uuid4().hex[:6]}"
    yield name
    if name in {d.name for d in list_deployments(services)}:  # only our own
        delete_deployment(services, name)


def notebook_cell(services: Settings, model: str, deployment: str) -> str:
    ports = {name: getattr(services, name) for name in ("mlflow_port", "ray_port", "ray_dashboard_port",
                                                        "ray_metrics_port", "serve_port")}
    return ("from workbench.config import Settings\n"
            "from workbench.widgets.deployer import Deployer\n"
            f"settings = Settings(project_dir={str(services.project_dir)!r}, state_dir={str(services.state_dir)!r}, "
            f"**{ports!r})\n"
            f"Deployer(settings=settings, model={model!r}, version='champion', name={deployment!r}, num_cpus=0.25,\n"
            "         refresh_s=2.0, timeout_s=1200)")


def test_deploy_see_healthy_and_try_a_request(lab: _lab.Lab, project: Path, services: Settings,
                                              deployment: str) -> None:
    import mlflow
    import pandas as pd

    from workbench.registry import CHALLENGER, CHAMPION, set_alias
    from workbench.serving import get_deployment, list_deployments

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "deployer_failure.png").unlink(missing_ok=True)
    model_name = f"dpw-ui-binary-{uuid.uuid4().hex[:6]}"
    logged = register_binary_model(services, project / "model", model_name, "dpw-deployer-ui")
    second = register_binary_model(services, project / "model-2", model_name, "dpw-deployer-ui")
    set_alias(services, model_name, CHAMPION, logged.version)
    set_alias(services, model_name, CHALLENGER, second.version)
    _lab.write_notebook(project / "deployer.ipynb", [notebook_cell(services, model_name, deployment)])
    timings: dict[str, Any] = {}
    with playwright_api.sync_playwright() as p:
        browser = _lab.launch_chromium(p)
        page = browser.new_page(viewport={"width": 1600, "height": 1300})
        try:
            page.goto(lab.notebook_url("deployer.ipynb"))
            started = time.perf_counter()
            _lab.run_first_cell(page)
            page.wait_for_selector(".wb-deploy .wb-deploy-capacity-table", timeout=600_000)
            timings["cell_to_widget_s"] = round(time.perf_counter() - started, 2)
            assert "CPUs" in page.inner_text(".wb-deploy-capacity-table")
            page.wait_for_selector(f".wb-deploy-verdict:has-text('can deploy models:/{model_name}@champion')",
                                   timeout=120_000)
            page.screenshot(path=str(ARTIFACTS / "deployer_form.png"))

            clicked = time.perf_counter()
            page.click("button.wb-deploy-deploy")
            page.wait_for_selector(f".wb-deploy-progress:has-text('deploying {deployment}')", timeout=60_000)
            healthy = (f".wb-deploy-table tr[data-deployment='{deployment}'] "
                       ".wb-health[data-health='healthy']")
            page.wait_for_selector(healthy, timeout=DEPLOY_TIMEOUT_MS)
            timings["click_to_healthy_s"] = round(time.perf_counter() - clicked, 2)
            version_cell = f".wb-deploy-table tr[data-deployment='{deployment}'] .wb-deploy-version"
            assert page.get_attribute(version_cell, "data-version") == logged.version
            assert get_deployment(services, deployment).applied_version == logged.version
            page.wait_for_selector(".wb-deploy-message:has-text('deployed')", timeout=120_000)

            # the form built from the signature appears for the healthy deployment
            page.wait_for_selector(".wb-deploy-field-amount input", timeout=120_000)
            page.fill(".wb-deploy-field-amount input", "31.5")
            page.press(".wb-deploy-field-amount input", "Tab")
            page.fill(".wb-deploy-field-colour input", "red")
            page.press(".wb-deploy-field-colour input", "Tab")
            sent = time.perf_counter()
            page.click("button.wb-deploy-send")
            page.wait_for_selector(".wb-deploy-answer-ok", timeout=120_000)
            timings["send_to_answer_s"] = round(time.perf_counter() - sent, 2)
            answer = page.inner_text(".wb-deploy-answer-ok")
            cells = [line.split("\t") for line in answer.strip().splitlines()]
            values = {c[0].strip(): c[1].strip() for c in cells if len(c) == 2}
            mlflow.set_tracking_uri(services.mlflow_uri)
            expected = float(mlflow.pyfunc.load_model(logged.uri).predict(
                pd.DataFrame({"amount": [31.5], "colour": ["red"]}))[0])
            assert float(values["score"]) == pytest.approx(expected, rel=1e-9), answer
            assert values["label"] == str(int(expected >= 0.6))
            assert "Traceback" not in page.inner_text(".wb-deploy")
            page.screenshot(path=str(ARTIFACTS / "deployer_answer.png"), full_page=True)

            # roll to the challenger (v2), then back; each seen in the table and in Serve's account
            page.select_option(".wb-deploy-roll-version select", label=f"v{second.version} (challenger)")
            rolled = time.perf_counter()
            page.click("button.wb-deploy-roll")
            wait_unless_error(page, f".wb-deploy-table tr[data-deployment='{deployment}']"
                                    f":has(.wb-deploy-version[data-version='{second.version}'])"
                                    ":has(.wb-health[data-health='healthy'])")
            timings["click_to_rolled_s"] = round(time.perf_counter() - rolled, 2)
            assert get_deployment(services, deployment).applied_version == second.version
            # "done in" is drawn once the widget has redrawn after the roll: a click from then on is taken
            wait_unless_error(page, ".wb-deploy-progress:has-text('done in')")
            assert f"rolled {deployment}: serving v{second.version}" in page.inner_text(".wb-deploy-message")
            page.click("button.wb-deploy-rollback")
            wait_unless_error(page, f"{version_cell}[data-version='{logged.version}']")
            wait_unless_error(page, ".wb-deploy-message:has-text('rolled back')")
            assert get_deployment(services, deployment).applied_version == logged.version

            # delete asks first, then removes it
            page.click("button.wb-deploy-delete")
            page.wait_for_selector(f".wb-deploy-confirm-text:has-text('delete {deployment}?')", timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "deployer_confirm_delete.png"))
            assert deployment in {d.name for d in list_deployments(services)}
            page.click("button.wb-deploy-confirm")
            wait_unless_error(page, f".wb-deploy-message:has-text('deleted {deployment}')", timeout=300_000)
            assert page.query_selector(f".wb-deploy-table tr[data-deployment='{deployment}']") is None
            assert deployment not in {d.name for d in list_deployments(services)}
            assert "Traceback" not in page.inner_text(".wb-deploy")
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "deployer_failure.png"), full_page=True)
            raise
        finally:
            (ARTIFACTS / "deployer_timings.json").write_text(json.dumps(timings, indent=1))
            browser.close()
