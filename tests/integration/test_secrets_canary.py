"""Canary secrets: configured, then the real path a user runs (feature repo, a training job, a deployment
that answers) leaves no trace of them in any file under the state dir, in MLflow's params, tags and
artifacts, in the job's entrypoint and runtime_env, in its logs, or in the Serve config the dashboard's
REST API returns. The canaries are random per run, so a hit can only come from this test's settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from monitoring_fixtures import FEATURES, register_binary_model, score
from ray.job_submission import JobStatus, JobSubmissionClient

from workbench.config import Settings
from workbench.features.repo import REDIS_CONNECTION_ENV, apply_repo
from workbench.services import ServiceManager
from workbench.services.processes import ProcessRecord
from workbench.serving import delete_deployment, deploy, predict, serve_details
from workbench.serving.deployments import Resources
from workbench.training import TrainingSpec, job_logs, submit_training_job, wait_for_job
from workbench.training.synthetic import SYNTHETIC_FEATURES, synthetic_training_frame

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]


@dataclass
class Canaries:
    vllm: str
    feast: str
    mlflow: str

    def all(self) -> list[str]:
        return [self.vllm, self.feast, self.mlflow]


def hits(text: str | bytes, canaries: Canaries) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [c for c in canaries.all() if c.encode() in data]


def file_hits(folders: Iterable[Path], canaries: Canaries, since: float = 0.0) -> dict[str, list[str]]:
    """Every regular file below ``folders`` (modified after ``since``) that holds a canary."""
    found: dict[str, list[str]] = {}
    for folder in folders:
        for path in folder.rglob("*"):
            try:
                if not path.is_file() or path.is_symlink() or path.stat().st_mtime < since:
                    continue
                data = path.read_bytes()
            except OSError:
                continue  # a file Ray removed meanwhile
            if found_here := hits(data, canaries):
                found[str(path)] = found_here
    return found


@pytest.fixture(scope="module")
def canary_settings(services: Settings) -> Iterator[tuple[Settings, Canaries, Path, Path]]:
    token = uuid.uuid4().hex[:10]
    canaries = Canaries(vllm=f"secvllm{uuid.uuid4().hex}", feast=f"secfeast{uuid.uuid4().hex}",
                        mlflow=f"secmlflow{uuid.uuid4().hex}")
    # under the suite's state dir (the Ray job reads its frame from here; /tmp/pytest-of-* may be pruned)
    folder = services.state_dir / "secrets-tests" / f"sec-{token}"
    host = services.mlflow_uri.split("://", 1)[1]
    settings = services.replace(
        state_dir=folder / "state", experiment=f"sec-canary-{token}", vllm_api_key=canaries.vllm,
        feast_online_store="redis", feast_online_store_connection=f"127.0.0.1:6399,password={canaries.feast}",
        mlflow_uri=f"http://sec-user:{canaries.mlflow}@{host}")
    before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                                              REDIS_CONNECTION_ENV)}
    try:
        # the shared head's session logs (the state dir, and so the runtime dir, of `settings` differ)
        yield settings, canaries, folder, services.ray_temp_dir / "session_latest" / "logs"
    finally:
        for key, value in before.items():  # what Settings and the feature repo exported into this process
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(folder, ignore_errors=True)


def test_a_canary_secret_is_found_nowhere(canary_settings: tuple[Settings, Canaries, Path, Path]) -> None:
    settings, canaries, folder, logs = canary_settings
    started = time.time() - 1.0
    # the secrets are configured and reachable where they are meant to be: this process's environment
    assert settings.mlflow_uri == f"http://{settings.host}:{settings.mlflow_port}"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == canaries.mlflow
    assert set(settings.secret_env()) >= {"WORKBENCH_VLLM_API_KEY", "WORKBENCH_FEAST_ONLINE_STORE_CONNECTION",
                                          "WORKBENCH_MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_PASSWORD"}
    # and the search finds a canary where there is one
    control = folder / "control" / "planted.txt"
    control.parent.mkdir(parents=True)
    control.write_text(f"x{canaries.feast}x")
    assert file_hits([control.parent], canaries) == {str(control): [canaries.feast]}

    # 1. the feature repository (Redis online store: registering needs no connection)
    info = apply_repo(settings)
    assert info.online_store == "redis" and os.environ[REDIS_CONNECTION_ENV].endswith(canaries.feast)

    # 2. a small training job on the shared Ray head
    frame_path = settings.state_dir / "frames" / "sec-frame.parquet"
    frame_path.parent.mkdir(parents=True)
    synthetic_training_frame(600, seed=3).to_parquet(frame_path)
    spec = TrainingSpec(frame_path=str(frame_path), feature_columns=list(SYNTHETIC_FEATURES), trainer="xgboost",
                        task="binary", n_estimators=5, max_depth=2, cpus_per_worker=0.5,
                        checkpoint_dir=str(settings.state_dir / "checkpoints"), experiment=settings.experiment,
                        run_name="sec-canary", tags={"suite": "test_secrets_canary"})
    job = submit_training_job(settings, spec)
    assert wait_for_job(settings, job.job_id, timeout_s=1200.0, progress=False) == "SUCCEEDED"

    # 3. a tiny model deployed on Ray Serve, answering
    model = register_binary_model(settings, folder / "model", f"sec-binary-{uuid.uuid4().hex[:6]}",
                                  settings.experiment)
    name = f"sec-canary-{uuid.uuid4().hex[:6]}"
    rows = model.frame[FEATURES].head(4)
    try:
        deploy(settings, model.uri, name, resources=Resources(num_cpus=0.25), timeout_s=900.0, progress=False)
        body = predict(settings, name, rows.to_dict("records"))
        got = [p["score"] if isinstance(p, dict) else p for p in body["predictions"]]
        assert np.allclose(got, score(rows), atol=1e-6)  # the replica has all it needs

        # the Serve config, as the dashboard's REST API gives it to anyone who can reach it
        raw = requests.get(f"{settings.ray_address}/api/serve/applications/", timeout=30).text
        # the API does return runtime_env values (MLFLOW_TRACKING_URI is one): a secret there would be a hit
        shown_env = json.loads(raw)["applications"][name]["deployed_app_config"]["runtime_env"]["env_vars"]
        assert shown_env["MLFLOW_TRACKING_URI"] == settings.mlflow_uri
        assert hits(raw, canaries) == []
        app = serve_details(settings)["applications"][name]
        assert hits(json.dumps(app, default=str), canaries) == []
        args = app["deployed_app_config"]["args"]
        assert "WORKBENCH_VLLM_API_KEY" in args["secret_variables"]  # named, never held
    finally:
        delete_deployment(settings, name)
    assert name not in (serve_details(settings).get("applications") or {})

    # 4. the job: entrypoint (argv), runtime_env, metadata, and its logs
    details = JobSubmissionClient(settings.ray_address).get_job_info(job.job_id)
    shown = json.dumps(details.model_dump(), default=str)
    assert "--tracking-uri" in details.entrypoint and hits(shown, canaries) == []
    assert hits(job_logs(settings, job.job_id), canaries) == []

    # 5. MLflow: params, tags and artifacts of the runs and logged models this test made
    client = MlflowClient(settings.mlflow_uri)
    version = client.get_model_version(model.uri.split("/")[1], model.version)
    runs = [client.get_run(job.run_id), client.get_run(version.run_id)]
    downloads = folder / "downloads"
    for run in runs:
        data = json.dumps({"params": run.data.params, "tags": run.data.tags, "info": dict(run.info)}, default=str)
        assert hits(data, canaries) == [], run.info.run_id
        target = downloads / run.info.run_id
        target.mkdir(parents=True)
        download_artifacts(run_id=run.info.run_id, dst_path=str(target))
        for logged in client.search_logged_models(experiment_ids=[run.info.experiment_id],
                                                  filter_string=f"source_run_id = '{run.info.run_id}'"):
            data = json.dumps({"params": logged.params, "tags": logged.tags}, default=str)
            assert hits(data, canaries) == [], logged.model_id
            download_artifacts(artifact_uri=f"models:/{logged.model_id}", dst_path=str(target / logged.model_id))
    assert any(p.name == "MLmodel" for p in downloads.rglob("MLmodel"))  # artifacts were really fetched
    assert file_hits([downloads], canaries) == {}

    # 6. every file under the state dir, and the Ray session's logs written meanwhile (jobs, Serve replicas)
    control.unlink()
    assert file_hits([settings.state_dir, folder], canaries) == {}
    assert logs.is_dir()
    assert file_hits([logs], canaries, since=started) == {}


# A head of our own, started as `workbench up` starts it, with a canary configured: its jobs and Serve
# replicas find the secret in the environment they inherit, while nothing Ray shows carries it.
_OFFSET = int(os.environ.get("WORKBENCH_TEST_PORT_OFFSET", "0"))
OWN_PORTS = {name: port + _OFFSET for name, port in {
    "mlflow_port": 25450, "ray_port": 26450, "ray_dashboard_port": 28450, "ray_metrics_port": 29450,
    "serve_port": 27450, "haproxy_stats_port": 28460, "haproxy_metrics_port": 29460}.items()}


@pytest.fixture(scope="module")
def own_head(services: Settings) -> Iterator[tuple[Settings, str]]:
    base = services.state_dir / "secrets-tests" / f"sec-head-{uuid.uuid4().hex[:6]}"
    base.mkdir(parents=True)
    canary = f"sechead{uuid.uuid4().hex}"
    settings = Settings(project_dir=base, mlflow_uri=services.mlflow_uri, vllm_api_key=canary,
                        serve_ingress="proxy", experiment="sec-own-head", **OWN_PORTS)
    manager = ServiceManager(settings)
    try:
        manager.up(("ray",))
        yield settings, canary
    finally:
        manager.down(("ray",))
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(settings.runtime_dir, ignore_errors=True)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_jobs_and_replicas_of_a_head_started_with_secrets_inherit_them(own_head: tuple[Settings, str],
                                                                       tmp_path: Path) -> None:
    settings, canary = own_head
    record = ProcessRecord.load(settings.services_dir, "ray")
    assert record is not None and canary not in " ".join(record.command)
    # a job given no runtime_env at all reads the key from its environment (it prints a digest, not the key)
    client = JobSubmissionClient(settings.ray_address)
    code = ("import hashlib, os; print('key', hashlib.sha256(os.environ.get('WORKBENCH_VLLM_API_KEY', '')"
            ".encode()).hexdigest())")
    job = client.submit_job(entrypoint=f'python -c "{code}"')
    deadline = time.monotonic() + 300
    while (status := client.get_job_status(job)) not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
        assert time.monotonic() < deadline, f"job {job} still {status}"
        time.sleep(0.5)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs
    assert f"key {_digest(canary)}" in logs
    assert canary not in json.dumps(client.get_job_info(job).model_dump(), default=str)

    # a Serve replica likewise: it answers, and its process carries the key that its config does not
    model = register_binary_model(settings, tmp_path / "model", f"sec-head-{uuid.uuid4().hex[:6]}",
                                  settings.experiment)
    name = f"sec-head-{uuid.uuid4().hex[:6]}"
    rows = model.frame[FEATURES].head(3)
    deploy(settings, model.uri, name, resources=Resources(num_cpus=0.25), timeout_s=900.0, progress=False)
    try:
        body = predict(settings, name, rows.to_dict("records"))
        got = [p["score"] if isinstance(p, dict) else p for p in body["predictions"]]
        assert np.allclose(got, score(rows), atol=1e-6)
        raw = requests.get(f"{settings.ray_address}/api/serve/applications/", timeout=30).text
        assert name in raw and canary not in raw
        replicas = [p for p in psutil.process_iter(["cmdline"])
                    if any(f"ServeReplica:{name}" in part for part in (p.info["cmdline"] or []))]
        assert replicas, f"no replica process of {name}"
        for proc in replicas:
            assert proc.environ().get("WORKBENCH_VLLM_API_KEY") == canary
            assert canary not in " ".join(proc.cmdline())
    finally:
        delete_deployment(settings, name)
