"""The REST API against the real services (the shared MLflow server and Ray head of tests/conftest.py):
services, runs, jobs, deployments; and the handlers' latency under 20 concurrent requests."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from ray.job_submission import JobSubmissionClient
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from workbench.config import Settings
from workbench.serving.deployments import list_deployments

pytest_plugins = ["pytest_jupyter.jupyter_server"]
pytestmark = pytest.mark.integration


@pytest.fixture()
def jp_server_config(services: Settings, jp_root_dir: Path) -> Config:
    return Config({"ServerApp": {"jpserver_extensions": {"workbench.server": True},
                                 "tornado_settings": {"workbench_settings": services}}})


async def call(jp_fetch: Any, *parts: str, method: str = "GET", body: Any = None, **kw: Any) -> tuple[int, Any]:
    if body is not None:
        kw["body"] = json.dumps(body)
    try:
        answer = await jp_fetch("workbench", "api", *parts, method=method, **kw)
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.code, json.loads(exc.response.body or b"{}")
    return answer.code, json.loads(answer.body)


async def test_services_status_and_start_of_a_running_service(jp_fetch: Any, services: Settings) -> None:
    code, reply = await call(jp_fetch, "services")
    assert code == 200
    assert {s["name"]: (s["healthy"], s["url"]) for s in reply["services"]} == {
        "mlflow": (True, services.mlflow_uri), "ray": (True, services.ray_address)}
    assert reply["links"] == {"mlflow": services.mlflow_uri, "ray_dashboard": services.ray_address}
    code, reply = await call(jp_fetch, "services", "mlflow", "start", method="POST", body={})
    assert code == 200 and next(s for s in reply["services"] if s["name"] == "mlflow")["healthy"] is True


async def test_runs_of_an_experiment(jp_fetch: Any, services: Settings) -> None:
    client = MlflowClient(services.mlflow_uri)
    name = f"jx-server-{uuid.uuid4().hex[:8]}"
    experiment_id = client.create_experiment(name)
    made = []
    for value in (0.25, 0.75):
        run = client.create_run(experiment_id, run_name=f"jx-{value}")
        client.log_metric(run.info.run_id, "roc_auc", value)
        client.set_terminated(run.info.run_id)
        made.append(run.info.run_id)
    code, reply = await call(jp_fetch, "runs", params={"experiment": name, "limit": "10"})
    assert code == 200 and reply["experiment_id"] == experiment_id
    assert sorted(r["run_id"] for r in reply["runs"]) == sorted(made)
    assert {r["run_id"]: r["metrics"]["roc_auc"] for r in reply["runs"]} == dict(zip(made, (0.25, 0.75), strict=True))
    code, reply = await call(jp_fetch, "runs", params={"experiment": f"jx-missing-{uuid.uuid4().hex}"})
    assert code == 200 and reply["runs"] == []


async def test_jobs_and_deployments_match_the_engines(jp_fetch: Any, services: Settings) -> None:
    ray_jobs = JobSubmissionClient(services.ray_address)
    plain = f"jx-plain-{uuid.uuid4().hex[:8]}"  # somebody else's job: no workbench metadata, no MLflow run
    ray_jobs.submit_job(entrypoint="python -c \"print('jx-plain-hello')\"", submission_id=plain)
    deadline = time.monotonic() + 300
    while ray_jobs.get_job_status(plain).value not in ("SUCCEEDED", "FAILED", "STOPPED"):
        assert time.monotonic() < deadline, f"{plain} did not end: {ray_jobs.get_job_info(plain)}"
        await asyncio.sleep(0.5)
    code, reply = await call(jp_fetch, "jobs")
    assert code == 200
    listed = {j.submission_id: j for j in ray_jobs.list_jobs() if j.submission_id}
    assert {j["job_id"] for j in reply["jobs"]} == set(listed)  # every submitted job, not only the workbench's
    for job in reply["jobs"]:
        ours = (listed[job["job_id"]].metadata or {}).get("workbench") == "training"
        assert job["workbench"] is ours and job["status"] == listed[job["job_id"]].status.value
        assert "entrypoint" not in job  # a command line may carry a token
    other = next(j for j in reply["jobs"] if j["job_id"] == plain)
    assert other["kind"] == "ray job" and other["run_id"] == "" and other["status"] == "SUCCEEDED"
    code, reply = await call(jp_fetch, "jobs", plain, "logs")
    assert code == 200 and "jx-plain-hello" in reply["log"]
    code, reply = await call(jp_fetch, "jobs", "jx-no-such-job", "logs")
    assert code == 404 and "jx-no-such-job" in reply["error"]
    code, reply = await call(jp_fetch, "jobs", "jx-no-such-job", "stop", method="POST", body={})
    assert code == 404
    code, reply = await call(jp_fetch, "deployments")
    assert code == 200
    assert [d["name"] for d in reply["deployments"]] == [d.name for d in list_deployments(services)]


async def test_latency_under_20_concurrent_requests(jp_fetch: Any) -> None:
    """p50/p99 of the sidebar's polled routes, 20 requests in flight (printed for the notes)."""
    for route in ("stages", "services", "templates"):
        async def one(route: str = route) -> float:
            started = time.perf_counter()
            answer = await jp_fetch("workbench", "api", route)
            assert answer.code == 200
            return (time.perf_counter() - started) * 1000
        await one()
        times: list[float] = []
        for _ in range(5):
            times += await asyncio.gather(*(one() for _ in range(20)))
        cuts = statistics.quantiles(times, n=100)
        print(f"\n/workbench/api/{route}: n={len(times)} p50={cuts[49]:.1f} ms p99={cuts[98]:.1f} ms")
