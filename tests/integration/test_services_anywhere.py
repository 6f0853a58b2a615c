"""The local stack from a checkout whose absolute path is 150 characters long.

Ray puts its Unix sockets ~66 bytes below its temp dir and AF_UNIX allows 107, so a temp dir inside an
ordinary deep checkout broke `workbench up` ("Module MetricsHead failed to start"). Here the services
start, run a Ray job, serve a model and stop from such a path, beside the session's own services, and every socket they
listen on is on loopback (read on the sockets, not on the command lines).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray.job_submission import JobStatus, JobSubmissionClient

from workbench.config import Settings
from workbench.services import ServiceManager
from workbench.services.processes import ProcessRecord, is_loopback, listening_addresses, port_is_free

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

_OFFSET = int(os.environ.get("WORKBENCH_TEST_PORT_OFFSET", "0"))
PORTS = {name: port + _OFFSET for name, port in {
    "mlflow_port": 25410, "ray_port": 26410, "ray_dashboard_port": 28410, "ray_metrics_port": 29410,
    "serve_port": 27410, "haproxy_stats_port": 28420, "haproxy_metrics_port": 29420}.items()}


def deep_checkout(base: Path, length: int = 150) -> Path:
    """A folder whose absolute path is exactly ``length`` characters long."""
    stem = base / "projects"
    room = length - len(str(stem)) - 1
    assert room > 10, f"{stem} is already too long for this test"
    folder = stem / ("workbench-" + "x" * (room - len("workbench-")))
    assert len(str(folder)) == length
    folder.mkdir(parents=True)
    (folder / "workbench.toml").write_text('experiment = "deep-path"\n')
    return folder


@pytest.fixture(scope="module")
def deep_stack(services: Settings) -> Iterator[Settings]:
    # under the suite's state dir, not /tmp/pytest-of-*, which another pytest session may prune meanwhile
    base = services.state_dir / "anywhere" / uuid.uuid4().hex[:6]
    settings = Settings(project_dir=deep_checkout(base), **PORTS)
    manager = ServiceManager(settings)
    try:
        manager.up()
        yield settings
    finally:
        manager.down()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(settings.runtime_dir, ignore_errors=True)


def test_services_start_from_a_150_character_checkout(deep_stack: Settings) -> None:
    assert len(str(deep_stack.project_dir)) == 150
    statuses = {s.name: s for s in ServiceManager(deep_stack).status()}
    assert statuses["mlflow"].healthy and statuses["ray"].healthy
    # the logs are still found under the project, through the link to the short folder
    assert deep_stack.ray_dir.is_symlink()
    assert (deep_stack.ray_dir / "session_latest" / "logs").is_dir()
    sockets = [p for p in deep_stack.ray_temp_dir.glob("session_*/sockets/*")]
    assert sockets and all(len(str(p).encode()) <= 107 for p in sockets)


def test_a_ray_job_runs_on_the_deep_checkouts_head(deep_stack: Settings) -> None:
    client = JobSubmissionClient(deep_stack.ray_address)
    job = client.submit_job(entrypoint="python -c \"print('answer', 6 * 7)\"")
    deadline = time.monotonic() + 300
    while (status := client.get_job_status(job)) not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
        assert time.monotonic() < deadline, f"job {job} still {status}"
        time.sleep(0.5)
    assert status == JobStatus.SUCCEEDED, client.get_job_logs(job)
    assert "answer 42" in client.get_job_logs(job)


def test_every_started_process_listens_on_loopback_only(deep_stack: Settings) -> None:
    for name in ("mlflow", "ray"):
        record = ProcessRecord.load(deep_stack.services_dir, name)
        assert record is not None
        proc = record.process()
        assert proc is not None
        addresses = listening_addresses(proc)
        assert addresses, f"{name} listens nowhere?"
        exposed = sorted(a for a in addresses if not is_loopback(a[0]))
        assert not exposed, f"{name} listens beyond loopback: {exposed}"
        if name == "ray":
            ports = {port for _, port in addresses}
            assert {deep_stack.ray_port, deep_stack.ray_dashboard_port, deep_stack.ray_metrics_port} <= ports


def test_a_model_deploys_and_answers_on_the_deep_checkouts_head(deep_stack: Settings, services: Settings,
                                                                 tmp_path: Path) -> None:
    """Serve's HAProxy (the default ingress) puts its own sockets in the short folder too (its limit is
    97 bytes), and a registered model answers through it from the deep checkout."""
    import mlflow
    import pandas as pd
    from monitoring_fixtures import register_binary_model, score

    from workbench.serving import delete_deployment, deploy, predict

    try:
        model = register_binary_model(deep_stack, tmp_path / "model", f"deep-{uuid.uuid4().hex[:6]}", "deep-path")
        info = deploy(deep_stack, model.uri, "deep-model", progress=False)
        assert info.running and info.model_version == model.version
        rows = [{"amount": 31.5, "colour": "red"}, {"amount": 4.0, "colour": "blue"}]
        answer = predict(deep_stack, "deep-model", rows)
        expected = score(pd.DataFrame(rows))
        assert [p["score"] for p in answer["predictions"]] == pytest.approx(list(expected), rel=1e-9)
        sockets = [p for p in deep_stack.haproxy_dir.rglob("*") if p.is_socket()]
        assert sockets and all(len(str(p).encode()) <= 97 for p in sockets)
        delete_deployment(deep_stack, "deep-model")
    finally:
        mlflow.set_tracking_uri(services.mlflow_uri)  # later modules' fluent calls go to the session's server
        mlflow.set_registry_uri(services.mlflow_uri)


def test_down_frees_the_deep_stacks_ports_and_leaves_the_suites_services(deep_stack: Settings,
                                                                         services: Settings) -> None:
    other = Settings(project_dir=deep_stack.project_dir, **PORTS)  # a second handle, as another shell has
    ServiceManager(other).down()
    for port in PORTS.values():
        deadline = time.monotonic() + 60
        while not port_is_free(deep_stack.host, port):
            assert time.monotonic() < deadline, f"port {port} still taken after down"
            time.sleep(0.5)
    assert ServiceManager(services).ray_healthy() and ServiceManager(services).mlflow_healthy()
