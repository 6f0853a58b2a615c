"""The Jobs, Runs and Deployments panels of the Workbench extension in a real JupyterLab and Chromium, against
the session's real Ray head and MLflow server (tests/conftest.py ``services``).

The JupyterLab root holds a workbench.toml pointing at the shared services with an experiment of its own
(``xp-panels-…``). Before the page loads, the test makes two MLflow runs in that experiment and submits two
real Ray jobs carrying the workbench's training metadata: one prints ``xp-hello`` and ends, one sleeps. The
page must show the first job SUCCEEDED with the same log Ray returns, stop the second through Stop and the
confirm dialog (Ray then reports it STOPPED), list the runs with their roc_auc, open a run comparer notebook,
render the deployments Ray Serve reports (no model is deployed here: other suites own deployments), show an
API failure as readable text, and poll only the panel in front, none once the side area is collapsed.
Screenshots and timings go to ``tests/ui/artifacts/``.
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

playwright_api = pytest.importorskip("playwright.sync_api")

REPO = Path(__file__).resolve().parents[2]
LABEXTENSION = REPO / "workbench" / "labextension"
SERVER_CONFIG = REPO / "jupyter-config" / "jupyter_server_config.d" / "workbench.json"
ARTIFACTS = Path(__file__).parent / "artifacts"
JOB_TIMEOUT_MS = 900_000  # submit -> SUCCEEDED is ~20 s on a quiet machine, minutes on a crowded one
TAG = uuid.uuid4().hex[:8]
EXPERIMENT = f"xp-panels-{TAG}"
HELLO_JOB, SLEEP_JOB, PLAIN_JOB = f"xp-hello-{TAG}", f"xp-sleep-{TAG}", f"xp-plain-{TAG}"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500),
              pytest.mark.skipif(_lab.chromium() is None, reason="Debian's chromium is not installed"),
              pytest.mark.skipif(not (LABEXTENSION / "package.json").is_file(),
                                 reason="the labextension is not built: make extension")]


@pytest.fixture(scope="module")
def live(request: pytest.FixtureRequest) -> Settings:
    """The shared test services: used as they are when both answer, else started by the ``services`` fixture.

    (``ServiceManager.up`` takes a service whose recorded process start time is off by more than 1 s for a
    stale one and tries to start it again on its taken port: that happens after the wall clock steps.)
    """
    import os

    from conftest import make_test_settings

    from workbench.services import ServiceManager

    settings = make_test_settings()
    if all(status.healthy for status in ServiceManager(settings).status()):
        os.environ.update(settings.engine_env())
        return settings
    return request.getfixturevalue("services")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def made(live: Settings) -> Iterator[dict[str, Any]]:
    """The experiment's two runs and the two submitted jobs (stopped and deleted afterwards)."""
    from mlflow.tracking import MlflowClient
    from ray.job_submission import JobSubmissionClient

    client = MlflowClient(live.mlflow_uri)
    experiment_id = client.create_experiment(EXPERIMENT)
    runs = {}
    for name, value in (("xp-run-a", 0.8125), ("xp-run-b", 0.5)):
        run = client.create_run(experiment_id, run_name=name)
        client.log_metric(run.info.run_id, "roc_auc", value)
        client.log_metric(run.info.run_id, "loss", 1 - value)
        client.set_terminated(run.info.run_id)
        runs[name] = run.info.run_id
    jobs = JobSubmissionClient(live.ray_address)
    meta = {"workbench": "training", "experiment_id": experiment_id, "trainer": "xp-probe", "kind": "xp-ui"}
    jobs.submit_job(entrypoint="python -c \"print('xp-hello')\"", submission_id=HELLO_JOB,
                    metadata={**meta, "mlflow_run_id": runs["xp-run-a"]})
    jobs.submit_job(entrypoint="python -c \"import time; print('xp-sleeping', flush=True); time.sleep(600)\"",
                    submission_id=SLEEP_JOB, metadata={**meta, "mlflow_run_id": runs["xp-run-b"]})
    jobs.submit_job(entrypoint="python -c \"print('xp-plain')\"", submission_id=PLAIN_JOB)  # not the workbench's
    try:
        yield {"experiment_id": experiment_id, "runs": runs, "jobs": jobs}
    finally:
        for job_id in (SLEEP_JOB, HELLO_JOB, PLAIN_JOB):
            try:
                jobs.stop_job(job_id)
                deadline = time.monotonic() + 60
                while jobs.get_job_status(job_id).value not in ("STOPPED", "SUCCEEDED", "FAILED") \
                        and time.monotonic() < deadline:
                    time.sleep(0.5)
                jobs.delete_job(job_id)
            except Exception as exc:  # leave the test's own verdict standing; say what was left behind
                print(f"cleanup of job {job_id}: {exc}")
        client.delete_experiment(experiment_id)


@pytest.fixture(scope="module")
def root(live: Settings) -> Iterator[Path]:
    folder = live.state_dir / "xp-panels-ui" / TAG
    state = folder / ".jupyter-state"
    (state / "data" / "labextensions").mkdir(parents=True)
    (state / "data" / "labextensions" / "jupyterlab-workbench").symlink_to(LABEXTENSION, target_is_directory=True)
    (state / "config" / "jupyter_server_config.d").mkdir(parents=True)
    shutil.copy(SERVER_CONFIG, state / "config" / "jupyter_server_config.d" / "workbench.json")
    _lab.write_services_toml(folder, live, EXPERIMENT)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(root: Path, made: dict[str, Any]) -> Iterator[_lab.Lab]:
    server = _lab.start_lab(root)
    try:
        yield server
    finally:
        _lab.stop_lab(server)


def _count(log: list[tuple[float, str]], route: str, since: float) -> int:
    return sum(1 for at, url in log if at >= since and f"/workbench/api/{route}" in url)


def test_jobs_runs_and_deployments_panels(lab: _lab.Lab, root: Path, made: dict[str, Any], live: Settings) -> None:
    from mlflow.tracking import MlflowClient

    from workbench.serving.deployments import DeploymentInfo, list_deployments

    ARTIFACTS.mkdir(exist_ok=True)
    jobs = made["jobs"]
    requests: list[tuple[float, str]] = []
    timings: dict[str, Any] = {}
    with playwright_api.sync_playwright() as p:
        browser = _lab.launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("request", lambda r: requests.append((time.monotonic(), r.url))
                    if "/workbench/api/" in r.url else None)
            started = time.monotonic()
            page.goto(f"{lab.url}/lab?token={lab.token}")
            side_tab = page.locator(".jp-SideBar [data-id='workbench-activity']")
            side_tab.wait_for(timeout=120_000)
            side_tab.click()
            panel = page.locator("#workbench-jobs")
            panel.locator(".jp-WorkbenchJobs-row").first.wait_for(timeout=60_000)
            timings["page_load_to_jobs_listed_s"] = round(time.monotonic() - started, 2)

            # Jobs: the printing job ends SUCCEEDED, its log in the panel is Ray's own
            hello = panel.locator(f".jp-WorkbenchJobs-row[data-job-id='{HELLO_JOB}']")
            hello.locator(".jp-WorkbenchPanel-status:text-is('SUCCEEDED')").wait_for(timeout=JOB_TIMEOUT_MS)
            timings["page_load_to_job_succeeded_s"] = round(time.monotonic() - started, 2)
            assert "xp-ui" in hello.inner_text() and "xp-probe" in hello.inner_text()
            hello.click()
            log = panel.locator(".jp-WorkbenchJobs-log")
            page.wait_for_function("id => (document.querySelector(id) || {}).textContent?.includes('xp-hello')",
                                   arg="#workbench-jobs .jp-WorkbenchJobs-log", timeout=60_000)
            ray_log = jobs.get_job_logs(HELLO_JOB)
            assert "xp-hello" in ray_log
            assert log.inner_text().strip() == ray_log.strip()
            detail = panel.locator(".jp-WorkbenchJobs-detail")
            assert made["runs"]["xp-run-a"] in detail.inner_text()
            assert detail.locator("button:has-text('Stop')").count() == 0  # nothing to stop once it has ended
            # anyone else's Ray job is listed too, as a plain "ray job" without a run
            plain = panel.locator(f".jp-WorkbenchJobs-row[data-job-id='{PLAIN_JOB}']")
            plain.locator(".jp-WorkbenchPanel-status:text-is('SUCCEEDED')").wait_for(timeout=JOB_TIMEOUT_MS)
            assert "ray job" in plain.inner_text()
            page.screenshot(path=str(ARTIFACTS / "extension_panels_jobs.png"))

            # Stop: the sleeping job, through the confirm dialog; Ray then reports it STOPPED
            sleeper = panel.locator(f".jp-WorkbenchJobs-row[data-job-id='{SLEEP_JOB}']")
            sleeper.locator(".jp-WorkbenchPanel-status:text-is('RUNNING')").wait_for(timeout=JOB_TIMEOUT_MS)
            sleeper.click()
            page.wait_for_function("id => (document.querySelector(id) || {}).textContent?.includes('xp-sleeping')",
                                   arg="#workbench-jobs .jp-WorkbenchJobs-log", timeout=120_000)
            detail.locator("button:has-text('Stop')").click()
            dialog = page.locator(".jp-Dialog")
            dialog.wait_for(timeout=10_000)
            assert SLEEP_JOB in dialog.inner_text()
            dialog.locator("button:has-text('Cancel')").click()
            dialog.wait_for(state="detached", timeout=10_000)
            assert jobs.get_job_status(SLEEP_JOB).value == "RUNNING"  # cancel stops nothing
            detail.locator("button:has-text('Stop')").click()
            dialog.locator("button:has-text('Stop job')").click()
            sleeper.locator(".jp-WorkbenchPanel-status:text-is('STOPPED')").wait_for(timeout=120_000)
            assert jobs.get_job_status(SLEEP_JOB).value == "STOPPED"
            page.screenshot(path=str(ARTIFACTS / "extension_panels_job_stopped.png"))

            # only the panel in front polls: the jobs tab asks every 2.5 s (twice or more in 8 s), none behind Runs
            window_ms = 8000
            since = time.monotonic()
            page.wait_for_timeout(window_ms)
            shown_jobs = _count(requests, "jobs", since)
            page.click(".jp-WorkbenchActivity .lm-TabBar-tab:has-text('Runs')")
            runs_panel = page.locator("#workbench-runs")
            runs_panel.locator(f".jp-WorkbenchRuns-row[data-run-id='{made['runs']['xp-run-a']}']").wait_for(
                timeout=60_000)
            page.wait_for_timeout(1000)  # a jobs request already in flight when the tab changed
            since = time.monotonic()
            page.wait_for_timeout(window_ms)
            hidden_jobs = _count(requests, "jobs", since)
            timings.update(jobs_polls_shown=shown_jobs, jobs_polls_behind_runs_tab=hidden_jobs)
            assert shown_jobs >= 2 and hidden_jobs == 0, timings

            # Runs: the experiment's runs, as MLflow lists them, with their roc_auc (the comparer's metric)
            assert EXPERIMENT in runs_panel.locator(".jp-WorkbenchPanel-head").inner_text()
            expected = {r.info.run_id: r.data.metrics["roc_auc"]
                        for r in MlflowClient(live.mlflow_uri).search_runs([made["experiment_id"]])}
            rows = runs_panel.locator(".jp-WorkbenchRuns-row[data-run-id]")
            shown = {rows.nth(i).get_attribute("data-run-id"): rows.nth(i).locator(".jp-WorkbenchRuns-metric")
                     .inner_text() for i in range(rows.count())}
            # four significant digits, as JavaScript's toPrecision(4) writes them (0.5 -> 0.5000)
            assert shown == {run_id: f"{value:#.4g}" for run_id, value in expected.items()}
            assert shown[made["runs"]["xp-run-a"]] == "0.8125"
            assert runs_panel.locator(".jp-WorkbenchRuns-header .jp-WorkbenchRuns-metric").inner_text() == "roc_auc"
            row_a = runs_panel.locator(f".jp-WorkbenchRuns-row[data-run-id='{made['runs']['xp-run-a']}']")
            assert "xp-run-a" in row_a.inner_text() and "FINISHED" in row_a.inner_text()
            page.screenshot(path=str(ARTIFACTS / "extension_panels_runs.png"))

            # Compare runs: a new notebook holding RunComparer of this experiment, opened in a tab
            runs_panel.locator("button:has-text('Compare runs')").click()
            page.wait_for_selector(".lm-TabBar-tab:has-text('run_comparer.ipynb')", timeout=60_000)
            notebook = json.loads((root / "run_comparer.ipynb").read_text())
            code = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
            assert code == [f'from workbench.widgets.run_comparer import RunComparer\n\nRunComparer("{EXPERIMENT}")']
            # the notebook works as written: its cell draws the comparer with this experiment's runs
            clicked = time.monotonic()
            page.wait_for_selector(".jp-StatusBar-Widget:has-text('| Idle')", timeout=180_000)
            page.click(".jp-Notebook .jp-CodeCell .cm-content")
            page.keyboard.press("Shift+Enter")
            page.wait_for_function("() => { const w = document.querySelector('.jp-Notebook .wb-runs');"
                                   " return !!w && w.textContent.includes('xp-run-a')"
                                   " && w.textContent.includes('xp-run-b'); }", timeout=300_000)
            timings["compare_click_to_comparer_drawn_s"] = round(time.monotonic() - clicked, 2)
            page.screenshot(path=str(ARTIFACTS / "extension_panels_comparer.png"))
            runs_panel.locator("button:has-text('Compare runs')").click()  # never overwrites: a second name
            page.wait_for_selector(".lm-TabBar-tab:has-text('run_comparer-1.ipynb')", timeout=60_000)
            assert (root / "run_comparer-1.ipynb").is_file()
            assert json.loads((root / "run_comparer.ipynb").read_text())["cells"][1]["source"] == notebook["cells"][1][
                "source"]

            # Deployments: what Ray Serve reports (others may deploy meanwhile: compare with before and after)
            before = {d.name: d for d in list_deployments(live)}
            page.click(".jp-WorkbenchActivity .lm-TabBar-tab:has-text('Deployments')")
            deployments = page.locator("#workbench-deployments")
            deployments.locator(".jp-WorkbenchDeployment, .jp-WorkbenchPanel-empty").first.wait_for(timeout=60_000)
            cards = deployments.locator(".jp-WorkbenchDeployment")
            names = {cards.nth(i).get_attribute("data-deployment") for i in range(cards.count())}
            after = {d.name: d for d in list_deployments(live)}
            assert names <= set(before) | set(after) and set(before) & set(after) <= names, (names, before, after)
            if not names:
                assert "No deployments" in deployments.inner_text()
            for name in names & set(before) & set(after):
                card = deployments.locator(f".jp-WorkbenchDeployment[data-deployment='{name}']")
                assert after[name].url in card.locator(".jp-WorkbenchDeployment-url").inner_text()
            timings["deployments_shown"] = sorted(n for n in names if n)
            page.screenshot(path=str(ARTIFACTS / "extension_panels_deployments.png"))

            # how cards read, whatever Serve has now: an answer made by the server's own DeploymentInfo.to_dict
            # (routed to this page only; nothing is deployed on the shared head)
            answer = {"deployments": [DeploymentInfo(
                name="xp-fraud", status="RUNNING", url=f"{live.serve_url}/xp-fraud", model_uri="models:/xp/3",
                model_version="3", history=[{"model_version": "2"}], replicas={"RUNNING": 2},
                route_prefix="/xp-fraud").to_dict(), DeploymentInfo(
                name="xp-next", status="DEPLOYING", url=f"{live.serve_url}/xp-next", model_uri="models:/xp/4",
                model_version="4", history=[], replicas={"STARTING": 1, "RUNNING": 1}, route_prefix="/xp-next",
                message="Deploying new version").to_dict()]}
            page.route("**/workbench/api/deployments*", lambda route: route.fulfill(
                status=200, content_type="application/json", body=json.dumps(answer)))
            fraud = deployments.locator(".jp-WorkbenchDeployment[data-deployment='xp-fraud']")
            fraud.wait_for(timeout=30_000)
            assert fraud.locator(".jp-WorkbenchDeployment-health").inner_text() == "healthy"
            assert "version 3 (before: 2)" in fraud.inner_text() and "replicas: 2 RUNNING" in fraud.inner_text()
            href = fraud.locator("a.jp-WorkbenchDeployment-url").get_attribute("href")
            assert href == f"{live.serve_url}/xp-fraud"
            nxt = deployments.locator(".jp-WorkbenchDeployment[data-deployment='xp-next']")
            assert nxt.locator(".jp-WorkbenchDeployment-health").inner_text() == "deploying"
            assert "replicas: 1 RUNNING, 1 STARTING" in nxt.inner_text() and "Deploying new version" in nxt.inner_text()
            page.screenshot(path=str(ARTIFACTS / "extension_panels_deployment_cards.png"))
            page.unroute("**/workbench/api/deployments*")

            # an API failure reads as the server's message, and goes away with the next good answer
            message = "Ray at http://127.0.0.1:9 is not answering (ConnectionError): run `workbench up`"
            page.route("**/workbench/api/deployments*", lambda route: route.fulfill(
                status=503, content_type="application/json",
                body=json.dumps({"error": message, "kind": "ServiceUnavailable"})))
            error = deployments.locator(".jp-WorkbenchPanel-error")
            page.wait_for_function("t => document.querySelector('#workbench-deployments .jp-WorkbenchPanel-error')"
                                   ".textContent.includes(t)", arg=message, timeout=30_000)
            assert error.inner_text() == f"Could not list the deployments: {message} (HTTP 503)"
            page.screenshot(path=str(ARTIFACTS / "extension_panels_error.png"))
            page.unroute("**/workbench/api/deployments*")
            page.wait_for_function("() => document.querySelector('#workbench-deployments .jp-WorkbenchPanel-error')"
                                   ".textContent === ''", timeout=30_000)

            # a collapsed side area polls nothing
            side_tab.click()
            page.wait_for_selector("#workbench-activity", state="hidden", timeout=10_000)
            page.wait_for_timeout(1000)
            since = time.monotonic()
            page.wait_for_timeout(window_ms)
            collapsed = sum(_count(requests, route, since) for route in ("jobs", "runs", "deployments"))
            timings["polls_while_collapsed"] = collapsed
            assert collapsed == 0, timings
        finally:
            browser.close()
    (ARTIFACTS / "extension_panels_timings.json").write_text(json.dumps(timings, indent=2))
    print(f"\nextension panels timings: {timings}")
