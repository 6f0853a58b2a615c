"""Shared fixtures: one set of real services (MLflow server, Ray head) for the whole session.

The services run under `.workbench-test/` on ports apart from the demo's, so `make test` does not
disturb a `make demo` stack. Set WORKBENCH_TEST_KEEP_SERVICES=1 to leave them running between runs
(`up` is idempotent, so the next session reuses them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.services import ServiceManager

ROOT = Path(__file__).resolve().parents[1]

# Ports outside Ray's default worker range (10002-19999) and away from the demo's defaults.
# WORKBENCH_TEST_PORT_OFFSET shifts them all, so two checkouts can run their suites on one machine.
_OFFSET = int(os.environ.get("WORKBENCH_TEST_PORT_OFFSET", "0"))
TEST_PORTS = {name: port + _OFFSET for name, port in {
    "mlflow_port": 25000, "ray_port": 26379, "ray_dashboard_port": 28265, "ray_metrics_port": 29090,
    "serve_port": 27000, "haproxy_stats_port": 28404, "haproxy_metrics_port": 29101}.items()}
# A second suite in the same checkout (an offset of its own) gets its own state too: its own MLflow store,
# Ray session and Serve log folders.
TEST_STATE = ROOT / (".workbench-test" + (f"-{_OFFSET}" if _OFFSET else ""))


def make_test_settings(**changes: object) -> Settings:
    base = Settings(project_dir=ROOT, state_dir=TEST_STATE, experiment="workbench-tests", **TEST_PORTS)
    return base.replace(**changes) if changes else base


@pytest.fixture(scope="session")
def services() -> Iterator[Settings]:
    """Real MLflow tracking server and Ray head, started once per test session."""
    settings = make_test_settings()
    manager = ServiceManager(settings)
    manager.up()
    os.environ.update(settings.engine_env())  # drivers in this process talk to our services only
    yield settings
    if os.environ.get("WORKBENCH_TEST_KEEP_SERVICES") != "1":
        manager.down()


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    """Settings whose state lives in a fresh folder; no services."""
    return Settings(project_dir=tmp_path, **TEST_PORTS)


@pytest.fixture(autouse=True, scope="module")
def _mlflow_session_choices_stay_in_their_module() -> Iterator[None]:
    """``mlflow.set_experiment`` in one module's fixture writes ``MLFLOW_EXPERIMENT_ID`` into this process's
    environment, where every later subprocess (``workbench run``, papermill kernels) would inherit it."""
    names = ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME")
    before = {name: os.environ.get(name) for name in names}
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
