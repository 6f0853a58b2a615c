"""The job launcher in a real JupyterLab and Chromium, against the session's real Ray head and MLflow.

A notebook shows ``JobLauncher`` with a synthetic frame; the test runs its cell from the keyboard, sees the
cluster's capacity drawn, ticks GPU and sees the refusal explained before any submission, unticks it,
sets the epochs in the form, clicks submit and waits for the job to SUCCEED with its log lines and its
metric curve drawn in the page. The drawn log is checked against Ray's own log of the job, the drawn
curve's points against MLflow's metric history. Screenshots and timings go to ``tests/ui/artifacts/``.
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
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200),
              pytest.mark.skipif(_lab.chromium() is None, reason="Debian's chromium is not installed")]

ARTIFACTS = Path(__file__).parent / "artifacts"
JOB_TIMEOUT_S = 600  # ~20 s on a quiet machine, a few minutes on a crowded one; longer is a job that waits
EPOCHS = 2


@pytest.fixture(scope="module")
def project(services: Settings) -> Iterator[Path]:
    """The notebook's folder and its frame, under the test state (not /tmp, which other sessions prune)."""
    from workbench.training.synthetic import synthetic_training_frame

    root = services.state_dir / "wj-jobs-ui" / uuid.uuid4().hex[:10]
    root.mkdir(parents=True)
    synthetic_training_frame(600, seed=5).to_parquet(root / "frame.parquet")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(project: Path) -> Iterator[_lab.Lab]:
    server = _lab.start_lab(project)
    try:
        yield server
    finally:
        _lab.stop_lab(server)


def notebook_cell(services: Settings, project: Path, experiment: str) -> str:
    ports = {name: getattr(services, name) for name in ("mlflow_port", "ray_port", "ray_dashboard_port",
                                                        "ray_metrics_port", "serve_port")}
    return ("from workbench.config import Settings\n"
            "from workbench.widgets.jobs import JobLauncher\n"
            f"settings = Settings(project_dir={str(services.project_dir)!r}, state_dir={str(services.state_dir)!r}, "
            f"**{ports!r})\n"
            f"JobLauncher({experiment!r}, settings=settings, data={str(project / 'frame.parquet')!r}, "
            "label='is_fraud', epochs=5, cpus_per_worker=0.5, refresh_s=1.0,\n"
            f"            spec_defaults={{'checkpoint_dir': {str(project / 'checkpoints')!r}, 'hidden_sizes': [8]}},\n"
            "            tags={'suite': 'wj-test_jobs_ui'})")


def test_launch_a_job_and_see_it_succeed_with_log_and_curve(lab: _lab.Lab, project: Path, services: Settings) -> None:
    from mlflow.tracking import MlflowClient

    from workbench.training import job_logs

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "jobs_failure.png").unlink(missing_ok=True)
    experiment = f"wj-jobs-ui-{uuid.uuid4().hex[:8]}"
    _lab.write_notebook(project / "jobs.ipynb", [notebook_cell(services, project, experiment)])
    timings: dict[str, Any] = {}
    with playwright_api.sync_playwright() as p:
        browser = _lab.launch_chromium(p)
        page = browser.new_page(viewport={"width": 1600, "height": 1300})
        try:
            page.goto(lab.notebook_url("jobs.ipynb"))
            started = time.perf_counter()
            _lab.run_first_cell(page)
            page.wait_for_selector(".wb-jobs .wb-jobs-capacity-table", timeout=600_000)
            timings["cell_to_widget_s"] = round(time.perf_counter() - started, 2)
            assert "CPUs" in page.inner_text(".wb-jobs-capacity-table")

            # a GPU request on this CPU-only cluster is explained beside the form, before submission
            page.click(".wb-jobs-gpu input[type=checkbox]")
            page.wait_for_selector(".wb-jobs-verdict:has-text('asks 1 GPU, the cluster has 0: untick GPU')")
            page.screenshot(path=str(ARTIFACTS / "jobs_gpu_refused.png"))
            page.click(".wb-jobs-gpu input[type=checkbox]")
            page.wait_for_selector(".wb-jobs-verdict:has-text('can run')")

            page.fill(".wb-jobs-epochs input", str(EPOCHS))
            page.press(".wb-jobs-epochs input", "Tab")
            page.wait_for_function("() => document.querySelector('.wb-jobs-verdict').textContent.includes('can run')")
            clicked = time.perf_counter()
            page.click("button.wb-jobs-submit")
            page.wait_for_selector(".wb-jobs-message:has-text('submitted workbench-train-')", timeout=120_000)
            timings["click_to_submitted_s"] = round(time.perf_counter() - clicked, 2)
            job_id = page.inner_text(".wb-jobs-message").split("submitted ", 1)[1].strip()
            _lab.wait_for_job_in_page(page, services, job_id, ("RUNNING", "SUCCEEDED"), JOB_TIMEOUT_S)
            page.screenshot(path=str(ARTIFACTS / "jobs_running.png"))
            _lab.wait_for_job_in_page(page, services, job_id, ("SUCCEEDED",), JOB_TIMEOUT_S)
            timings["click_to_succeeded_s"] = round(time.perf_counter() - clicked, 2)

            # the log drawn in the page ends with Ray's own last log line
            last_line = job_logs(services, job_id).strip().splitlines()[-1].strip()
            page.wait_for_function("(line) => { const el = document.querySelector('.wb-jobs .wb-jobs-log'); "
                                   "return el && el.textContent.includes(line); }", arg=last_line, timeout=120_000)
            log_lines = page.inner_text(".wb-jobs .wb-jobs-log").strip().splitlines()
            assert len(log_lines) >= 5

            # the curve is drawn (SVG paths of the traces) and holds MLflow's loss history
            run_href = page.get_attribute(".wb-jobs-run-link", "href") or ""
            run_id = run_href.rsplit("/runs/", 1)[1]
            history = sorted((m.step, m.value) for m in MlflowClient(services.mlflow_uri).get_metric_history(
                run_id, "loss"))
            assert len(history) == EPOCHS
            page.wait_for_function(
                "(n) => { const ps = document.querySelectorAll('.wb-jobs .js-plotly-plot .scatterlayer .trace');"
                " return ps.length >= 2 && [...document.querySelectorAll('.wb-jobs .js-plotly-plot .scatterlayer "
                ".trace .points path')].length >= n; }", arg=EPOCHS, timeout=120_000)
            drawn = page.evaluate("() => { const gd = document.querySelector('.wb-jobs .js-plotly-plot');"
                                  " const t = gd.data.find(d => d.name === 'loss'); return [t.x, t.y]; }")
            assert [tuple(point) for point in zip(drawn[0], drawn[1], strict=True)] == history
            # the widget's own parts show no error (the log box shows Ray's log, whose transient
            # "Failed to send resource request" tracebacks under load are Ray's, not ours)
            own_text = page.evaluate("() => { const el = document.querySelector('.wb-jobs').cloneNode(true);"
                                     " el.querySelectorAll('.wb-jobs-log-box, .wb-jobs-log').forEach(n => n.remove());"
                                     " return el.textContent; }")
            assert "Traceback" not in own_text and "✗" not in own_text, own_text
            page.screenshot(path=str(ARTIFACTS / "jobs_succeeded.png"), full_page=True)
            timings["log_lines_drawn"] = len(log_lines)
            timings["curve_points_loss"] = len(history)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "jobs_failure.png"), full_page=True)
            raise
        finally:
            (ARTIFACTS / "jobs_timings.json").write_text(json.dumps(timings, indent=1))
            browser.close()
