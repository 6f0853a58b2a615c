"""Shared fixtures: one set of real services (MLflow server, Ray head) for the whole session.

The services run under `.workbench-test/` on ports apart from the demo's, so `make test` does not
disturb a `make demo` stack. Set WORKBENCH_TEST_KEEP_SERVICES=1 to leave them running between runs
(`up` is idempotent, so the next session reuses them).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.services import ServiceManager

ROOT = Path(__file__).resolve().parents[1]

# Ports outside Ray's default worker range (10002-19999) and away from the demo's defaults.
# WORKBENCH_TEST_PORT_OFFSET shifts them all, so two checkouts can run their suites on one machine. Each
# pytest-xdist worker (`make test` runs two) adds XDIST_PORT_STEP per worker index and exports the sum, so
# the modules that derive ports of their own from the offset (a second head, vLLM, the object store) shift
# with it: worker gw1 runs a whole stack of its own (MLflow, Ray head, state dir) beside gw0's. 1200 keeps
# every port the suite uses (25000-29950 and those a few above them) apart from the other worker's and
# below Linux's ephemeral range (32768+).
XDIST_PORT_STEP = 1200
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
# (the base is kept apart, so a second import of this module computes the same offset)
_BASE = os.environ.setdefault("WORKBENCH_TEST_BASE_PORT_OFFSET", os.environ.get("WORKBENCH_TEST_PORT_OFFSET", "0"))
_OFFSET = (int(_BASE)
           + XDIST_PORT_STEP * (int(_WORKER[2:]) if _WORKER.startswith("gw") and _WORKER[2:].isdigit() else 0))
os.environ["WORKBENCH_TEST_PORT_OFFSET"] = str(_OFFSET)
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


# ---- where the suite is, for a run that is cut off ------------------------------------------------
# CI shows only the tail of a run it stops at its time limit. Each test outside tests/unit gets a line with
# the suite's clock when it starts, and a test still running after WATCHDOG_S prints the stack of the main
# thread once, so a cut-off log names the test, how long the suite had run, and where it waits.
WATCHDOG_S = float(os.environ.get("WORKBENCH_TEST_WATCHDOG_S", "600"))
_SUITE_START = time.monotonic()
_reporter: list[object] = []
_current: dict[str, object] = {}


def _clock() -> str:
    seconds = int(time.monotonic() - _SUITE_START)
    return f"{seconds // 60:3d}:{seconds % 60:02d}"


def _say(line: str) -> None:
    # looked up when used: conftest's pytest_configure can run before the terminal reporter registers
    tr = _reporter[0].pluginmanager.get_plugin("terminalreporter") if _reporter else None  # type: ignore[attr-defined]
    if tr is not None:
        tr.write_line(line)


def pytest_configure(config: pytest.Config) -> None:
    _reporter.append(config)
    # Under xdist the controller only hears that a test started (its clock line); the worker that runs it
    # watches it, since only there is its stack.
    controller = not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None))
    if not controller:
        threading.Thread(target=_watchdog, name="workbench-test-watchdog", daemon=True).start()


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _current.update(nodeid=nodeid, started=time.monotonic(), reported=False)
    if not nodeid.startswith("tests/unit/"):
        _say(f"[{_clock()}] {nodeid}")


def _watchdog() -> None:
    main = threading.main_thread().ident
    while True:
        time.sleep(5)
        started = _current.get("started")
        if not isinstance(started, float) or _current.get("reported") or time.monotonic() - started < WATCHDOG_S:
            continue
        _current["reported"] = True
        frame = sys._current_frames().get(main or 0)
        stack = "".join(traceback.format_stack(frame)[-12:]) if frame is not None else "(no main thread)"
        line = (f"[{_clock()}] still running after {WATCHDOG_S:.0f} s: {_current.get('nodeid')}; the main thread is "
                f"at:\n{stack}")
        # the test's output is captured while it runs: lift the capture for this one line, as pdb does
        capman = _reporter[0].pluginmanager.get_plugin("capturemanager") if _reporter else None  # type: ignore
        if capman is None:
            _say(line)
            continue
        with capman.global_and_fixture_disabled():
            if _WORKER:  # a worker's terminal reporter writes nowhere; its stderr is the controller's
                sys.stderr.write(f"[{_WORKER}] {line}\n")
                sys.stderr.flush()
            else:
                _say(line)
