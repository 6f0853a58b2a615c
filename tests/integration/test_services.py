"""The services manager on real processes."""

import socket
from pathlib import Path

import mlflow
import pytest
import requests
from ray.job_submission import JobSubmissionClient

from workbench.config import Settings
from workbench.errors import ServiceUnavailable
from workbench.services import ServiceManager
from workbench.services.processes import ProcessRecord

pytestmark = pytest.mark.integration


def test_services_answer_through_official_clients(services: Settings) -> None:
    client = mlflow.MlflowClient(services.mlflow_uri)
    exp = client.get_experiment_by_name("Default")
    assert exp is not None
    jobs = JobSubmissionClient(services.ray_address)
    assert isinstance(jobs.list_jobs(), list)
    statuses = {s.name: s for s in ServiceManager(services).status()}
    assert statuses["mlflow"].healthy and statuses["ray"].healthy
    assert statuses["mlflow"].pid is not None
    # bound to loopback only
    rec = ProcessRecord.load(services.services_dir, "mlflow")
    assert rec is not None and "127.0.0.1" in rec.command


def test_up_is_idempotent(services: Settings) -> None:
    before = ProcessRecord.load(services.services_dir, "mlflow")
    ServiceManager(services).up()
    after = ProcessRecord.load(services.services_dir, "mlflow")
    assert before is not None and after is not None and before.pid == after.pid


def test_taken_port_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        settings = Settings(project_dir=tmp_path, mlflow_port=port)
        with pytest.raises(ServiceUnavailable, match=f"port {port} .* already taken.*WORKBENCH_MLFLOW_PORT"):
            ServiceManager(settings).up(("mlflow",))
    assert ProcessRecord.load(settings.services_dir, "mlflow") is None


def test_service_that_does_not_come_up_names_its_log_and_is_cleaned_up(tmp_path: Path) -> None:
    settings = Settings(project_dir=tmp_path, mlflow_port=25901, service_timeout_s=0.5)
    manager = ServiceManager(settings)
    with pytest.raises(ServiceUnavailable, match=r"mlflow did not become healthy.*mlflow\.log"):
        manager.up(("mlflow",))
    assert ProcessRecord.load(settings.services_dir, "mlflow") is None  # `up` stopped what it started
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{settings.mlflow_uri}/health", timeout=2)


def test_down_stops_only_what_it_started(tmp_path: Path, services: Settings) -> None:
    settings = Settings(project_dir=tmp_path, mlflow_port=25902)
    manager = ServiceManager(settings)
    manager.up(("mlflow",))
    record = ProcessRecord.load(settings.services_dir, "mlflow")
    assert record is not None and record.process() is not None
    assert manager.down() == ["mlflow"]
    assert record.process() is None
    assert not manager.mlflow_healthy()
    assert ServiceManager(services).mlflow_healthy()  # the session's services are untouched


def test_cluster_profile_starts_nothing_and_says_what_is_down(tmp_path: Path) -> None:
    settings = Settings(project_dir=tmp_path, profile="cluster", mlflow_uri="http://127.0.0.1:25903",
                        ray_address="http://127.0.0.1:25904", request_timeout_s=1)
    with pytest.raises(ServiceUnavailable, match="mlflow at http://127.0.0.1:25903 is not answering"):
        ServiceManager(settings).up()
    assert not settings.services_dir.exists()


def test_taken_haproxy_port_is_refused_before_ray_starts(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        settings = Settings(project_dir=tmp_path, state_dir=tmp_path / "s", serve_ingress="haproxy",
                            haproxy_stats_port=port, ray_port=26950, ray_dashboard_port=28950,
                            ray_metrics_port=29950, serve_port=27950)
        with pytest.raises(ServiceUnavailable, match=f"port {port} .* already taken.*WORKBENCH_HAPROXY_STATS_PORT"):
            ServiceManager(settings).up(("ray",))
    assert ProcessRecord.load(settings.services_dir, "ray") is None
