"""A JupyterLab server and a headless Chromium for browser tests (and the data browser benchmark).

JupyterLab runs from the project's venv on a free 127.0.0.1 port with a random token; all its state
(config, data, runtime, IPython, user settings, workspaces) lives in one temporary folder, so a test
never reads or writes the user's Jupyter setup. Chromium is Debian's (``apt-get install chromium``):
``playwright install`` would download a browser, which these machines cannot.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"autoStartDefaultKernel": True},
}


@dataclass
class Lab:
    root: Path
    port: int
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def write_services_toml(folder: Path, settings: Any, experiment: str) -> Path:
    """A workbench.toml in ``folder`` pointing at ``settings``' services (the session's shared test stack) with an
    MLflow experiment of its own; its state stays under ``folder``."""
    ports = {name: getattr(settings, name) for name in ("mlflow_port", "ray_port", "ray_dashboard_port",
                                                            "ray_metrics_port", "serve_port")}
    path = folder / "workbench.toml"
    path.write_text(f"experiment = {json.dumps(experiment)}\nrequest_timeout_s = 30.0\n"
                    + "".join(f"{k} = {v}\n" for k, v in ports.items()))
    return path


def write_notebook(path: Path, cells: list[str]) -> Path:
    """A notebook of code cells, no outputs, the venv's python3 kernel."""
    nb = {"nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [],
                     "source": src} for i, src in enumerate(cells)]}
    path.write_text(json.dumps(nb, indent=1))
    return path


def start_lab(root: Path, timeout_s: float = 180.0, python: Path | None = None) -> Lab:
    """Start JupyterLab serving ``root``; returns once its API answers (raises with the log otherwise).

    ``python``: run it from another environment's interpreter (``python -m jupyterlab``), e.g. a fresh venv
    holding the built wheel; then nothing of the main venv's Jupyter paths or settings reaches it.
    """
    state = root / ".jupyter-state"
    env = dict(os.environ)
    if python is not None:
        env = {k: v for k, v in env.items() if not k.startswith(("JUPYTER", "PYTHON", "VIRTUAL_ENV"))}
        env["PYTHONNOUSERSITE"] = "1"
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        (state / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(state / sub)
    for name, values in _SETTINGS.items():
        target = state / "settings" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    bin_dir = VENV_BIN if python is None else Path(python).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    port, token = free_port(), secrets.token_hex(16)
    log = state / "lab.log"
    launcher = [str(VENV_BIN / "jupyter"), "lab"] if python is None else [str(python), "-m", "jupyterlab"]
    cmd = [*launcher, "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
           "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           f"--LabApp.user_settings_dir={state / 'settings'}", f"--LabApp.workspaces_dir={state / 'workspaces'}",
           "--LabApp.news_url=", "--ServerApp.open_browser=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    lab = Lab(root, port, token, process, log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            request = urllib.request.Request(f"{lab.url}/api/status", headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(request, timeout=5) as answer:
                if answer.status == 200:
                    return lab
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    stop_lab(lab)
    raise RuntimeError(f"JupyterLab did not answer within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def stop_lab(lab: Lab) -> None:
    """Stop the server we started (its kernels with it), by its own process group."""
    if lab.process.poll() is None:
        lab.process.send_signal(signal.SIGTERM)
        try:
            lab.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(lab.process.pid, signal.SIGKILL)
            lab.process.wait(10)
    try:  # kernels the server did not get to shut down
        os.killpg(lab.process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_ARGS)


def run_first_cell(page: Any, timeout_ms: int = 120_000) -> None:
    """Run the notebook's first cell from the keyboard, as a user would."""
    page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=timeout_ms)
    # A cell run before the kernel is connected is dropped: wait for the status bar to say Idle.
    page.wait_for_selector(".jp-StatusBar-Widget:has-text('| Idle')", timeout=timeout_ms)
    page.click(".jp-Notebook .jp-Cell .cm-content")
    page.keyboard.press("Shift+Enter")
    page.wait_for_function("() => /\\[(\\*|\\d+)\\]/.test("
                           "document.querySelector('.jp-Cell .jp-InputPrompt').textContent)", timeout=timeout_ms)


def wait_for_job_in_page(page: Any, settings: Any, job_id: str, statuses: tuple[str, ...], timeout_s: float,
                         widget: str = ".wb-jobs") -> None:
    """Wait until the page shows Ray job ``job_id`` in one of ``statuses``, asking Ray itself meanwhile.

    A job that ends in another status, or a timeout, fails at once with Ray's view of it (status, message,
    log tail, free CPUs and who holds them) and what the page shows, instead of a bare selector timeout:
    a job that waits behind a leftover Serve replica then says so."""
    from playwright.sync_api import TimeoutError as PageTimeout

    from workbench.training import job_status

    selector = ", ".join(f"{widget} .wb-jobs-status[data-status='{status}']" for status in statuses)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            page.wait_for_selector(selector, timeout=5_000)
            return
        except PageTimeout:
            pass
        ended_otherwise = job_status(settings, job_id) in {"FAILED", "STOPPED", "SUCCEEDED"} - set(statuses)
        if ended_otherwise or time.monotonic() > deadline:
            shown = page.inner_text(widget) if page.query_selector(widget) else "(no widget)"
            raise AssertionError(f"the page did not show {job_id} as {'/'.join(statuses)} within "
                                 f"{timeout_s:.0f} s\n{job_diagnosis(settings, job_id)}\n--- the widget shows:\n"
                                 f"{shown[-3000:]}")


def job_diagnosis(settings: Any, job_id: str) -> str:
    """Ray's view of a job, for a failure message: status and message, the log's tail, the cluster's load."""
    from ray.job_submission import JobSubmissionClient

    from workbench.training.capacity import cluster_capacity, resource_holders

    lines = []
    try:
        client = JobSubmissionClient(settings.ray_address)
        info = client.get_job_info(job_id)
        lines.append(f"Ray says {job_id} is {info.status.value}: {info.message}")
        lines.append("--- its log ends:\n" + "\n".join(str(client.get_job_logs(job_id)).splitlines()[-40:]))
        lines.append(f"--- the cluster: {cluster_capacity(settings).summary()}")
        lines.extend(f"    held by {holder.summary()}" for holder in resource_holders(settings))
    except Exception as exc:  # noqa: BLE001 - a diagnosis never hides the failure it explains
        lines.append(f"(Ray could not say more: {exc!r})")
    return "\n".join(lines)
