"""The cluster profile against services that are remote in every way that matters, started here on loopback.

The "cluster" is a project of its own (own state dir, ports and working dir, sharing none of the notebook's
paths): SeaweedFS as its bucket, an MLflow server keeping artifacts in that bucket and serving them (proxied
artifact access), and a Ray head whose processes hold the bucket's keys in their environment, as pods get them
from a Kubernetes Secret. The notebook side is a ``profile = "cluster"`` project in another folder that knows
only the three addresses and its own keys.

A training job submitted from there reads its frame from the bucket (copied there by content), writes its spec,
metric files and checkpoints there, imports the ``workbench`` shipped in its ``runtime_env``, and logs its
model through MLflow into the bucket. Nothing the job was given names a path of the notebook's machine, no
secret is in anything Ray shows, and nothing lands in the notebook's folders.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, TEST_PORTS
from ray.job_submission import JobSubmissionClient
from remote_stack import Remote, cluster_toml, remote_stack
from sklearn.metrics import roc_auc_score

from workbench.config import load_settings
from workbench.errors import ConfigError
from workbench.pipeline import run_pipeline
from workbench.registry.versions import register_run
from workbench.services import ServiceManager
from workbench.serving import (
    Resources,
    delete_deployment,
    deploy,
    list_deployments,
    predict,
    read_predictions,
    wait_for_predictions,
)
from workbench.storage import list_objects
from workbench.training import TrainingSpec, submit_training_job

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

_SHIFT = TEST_PORTS["mlflow_port"] - 25000  # the suite's port offset (a second xdist worker adds 1200)
# 25300-25399 (SeaweedFS takes s3_port and the seven above it): no port of the suite is in it, and none sits
# 1200 above or below one of these, where the other xdist worker's stack would collide with this one (the
# haproxy head of test_serving_haproxy serves on 27100 + 1200, which took an earlier dashboard port here)
CLUSTER_PORTS = {name: port + _SHIFT for name, port in {
    "s3_port": 25300, "mlflow_port": 25310, "ray_port": 25320, "ray_dashboard_port": 25330,
    "ray_metrics_port": 25340, "serve_port": 25350, "haproxy_stats_port": 25360, "haproxy_metrics_port": 25370,
    "redis_port": 25390}.items()}


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    with remote_stack(tmp_path_factory.mktemp("cluster-side"), tmp_path_factory.mktemp("notebook-side"),
                      CLUSTER_PORTS) as stack:
        yield stack


def _frame(seed: int, n: int = 800) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "count": rng.integers(0, 9, n)})
    frame["label"] = (frame.x1 + 0.5 * frame.x2 + 0.1 * frame["count"] + rng.normal(scale=0.5, size=n) > 0.4)
    frame["label"] = frame["label"].astype(int)
    return frame


def _local_paths(text: str, *roots: Path) -> list[str]:
    return [str(root) for root in roots if str(root) in text]


def test_up_starts_nothing_in_the_cluster_profile(remote: Remote) -> None:
    status = {s.name: s for s in ServiceManager(remote.notebook).up()}
    assert not any(s.managed for s in status.values()), status
    assert status["mlflow"].healthy and status["ray"].healthy, status
    assert status["mlflow"].url == remote.cluster.mlflow_uri and status["ray"].url == remote.cluster.ray_address
    assert not remote.notebook.services_dir.exists() or not list(remote.notebook.services_dir.glob("*.json"))


@pytest.mark.parametrize("trainer", ["xgboost", "mlp"])
def test_a_job_on_the_remote_head_reads_and_writes_only_the_bucket(remote: Remote, trainer: str) -> None:
    notebook, cluster = remote.notebook, remote.cluster
    frame = _frame(11 if trainer == "xgboost" else 12)
    local_frame = notebook.project_dir / "frames" / f"{trainer}.parquet"
    local_frame.parent.mkdir(exist_ok=True)
    frame.to_parquet(local_frame)
    extra = ({"n_estimators": 15, "max_depth": 2, "early_stopping_rounds": 0} if trainer == "xgboost"
             else {"epochs": 3, "batch_size": 64, "hidden_sizes": [8], "lr": 0.05})
    spec = TrainingSpec(frame_path=str(local_frame), feature_columns=["x1", "x2", "count"], label_column="label",
                        task="binary", trainer=trainer, cpus_per_worker=0.5, seed=5, **extra)

    job = submit_training_job(notebook, spec)
    assert job.wait(timeout_s=1200, progress=False) == "SUCCEEDED", job.logs()[-4000:]

    # what the job was given: bucket URIs, the shipped package, the server's address; no local path, no secret
    ray_jobs = JobSubmissionClient(notebook.ray_address)
    info = ray_jobs.get_job_info(job.job_id)
    shown = json.dumps({"entrypoint": info.entrypoint, "runtime_env": info.runtime_env, "metadata": info.metadata})
    key, secret = notebook.s3_keys()
    assert secret not in shown and key not in shown
    assert _local_paths(shown, notebook.project_dir, cluster.project_dir, ROOT) == [], shown
    modules = info.runtime_env["py_modules"]
    assert len(modules) == 1 and modules[0].startswith("gcs://"), modules
    assert f"--spec {notebook.object_store_uri}/checkpoints/{job.run_id}/spec.json" in info.entrypoint
    assert info.entrypoint.startswith("python -m workbench.training.entrypoint ")

    # the job ran the shipped package, not the checkout's
    logs = ray_jobs.get_job_logs(job.job_id)
    shipped = re.search(r"workbench from (\S+);", logs)
    assert shipped and "runtime_resources/py_modules_files" in shipped.group(1), logs[:2000]
    assert not shipped.group(1).startswith(str(ROOT))

    # its run state is in the bucket: spec, the frame (copied once, by content), metric files, checkpoints
    run = mlflow.tracking.MlflowClient(notebook.mlflow_uri).get_run(job.run_id)
    frame_uri = run.data.params["frame_path"]
    assert frame_uri.startswith(f"{notebook.object_store_uri}/frames/") and frame_uri.endswith(local_frame.name)
    stored = {o.uri: o.size for o in list_objects(notebook, f"{notebook.object_store_uri}/checkpoints/{job.run_id}")}
    run_dir = f"{notebook.object_store_uri}/checkpoints/{job.run_id}"
    assert f"{run_dir}/spec.json" in stored
    epochs = sorted(u for u in stored if re.search(r"/metrics/epoch_\d+\.json$", u))
    history = mlflow.tracking.MlflowClient(notebook.mlflow_uri).get_metric_history(job.run_id, "val_loss")
    assert len(epochs) == len(history) == (15 if trainer == "xgboost" else 3)
    if trainer == "mlp":  # Ray Train's checkpoints went to the bucket through the job's S3 filesystem
        assert any(u.endswith("/state.pt") for u in stored), sorted(stored)
    assert TrainingSpec.load(f"{run_dir}/spec.json").frame_path == frame_uri

    # the model came back through MLflow's proxy, from the bucket, and scores the frame it was trained on
    model_uri = run.data.tags["workbench.model_uri"]
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(notebook.mlflow_uri)
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    finally:
        mlflow.set_tracking_uri(previous)
    assert any("MLmodel" in o.uri for o in list_objects(notebook, notebook.mlflow_artifacts_uri))
    scores = np.asarray(model.predict(frame[["x1", "x2", "count"]]), dtype=float)
    assert roc_auc_score(frame["label"], scores) > 0.8

    # and the notebook's machine kept nothing of it
    assert not notebook.checkpoints_dir.exists()
    assert not (cluster.state_dir / "checkpoints").exists()


def test_a_deployment_on_the_remote_head_ships_its_prediction_log_to_the_bucket(remote: Remote) -> None:
    notebook = remote.notebook
    frame = _frame(21, 600)
    path = notebook.project_dir / "frames" / "serve.parquet"
    path.parent.mkdir(exist_ok=True)
    frame.to_parquet(path)
    spec = TrainingSpec(frame_path=str(path), feature_columns=["x1", "x2", "count"], label_column="label",
                        task="binary", trainer="xgboost", n_estimators=10, max_depth=2, early_stopping_rounds=0,
                        cpus_per_worker=0.5)
    job = submit_training_job(notebook, spec)
    assert job.wait(timeout_s=900, progress=False) == "SUCCEEDED", job.logs()[-3000:]
    version = register_run(notebook, "wb-remote-model", job.run_id).version

    name = "remote-served"
    # features from the default SQLite online store (the notebook's disk) cannot reach a replica there:
    # refused before Serve is touched, nothing created
    with pytest.raises(ConfigError, match="online store the cluster reaches"):
        deploy(notebook, f"models:/wb-remote-model/{version}", name, feature_service="deliveries_service",
               progress=False)
    assert name not in [d.name for d in list_deployments(notebook)]
    info = deploy(notebook, f"models:/wb-remote-model/{version}", name, resources=Resources(num_cpus=0),
                  progress=False)
    try:
        assert info.running
        config = json.dumps(info.config)  # what Serve shows anyone who reaches the dashboard
        assert _local_paths(config, notebook.project_dir, remote.cluster.project_dir, ROOT) == [], config
        assert notebook.s3_keys()[1] not in config
        assert info.config["runtime_env"]["py_modules"][0].startswith("gcs://")
        rows = frame[["x1", "x2", "count"]].head(25).to_dict("records")
        answered = [p["request_id"] for p in predict(notebook, name, rows)["predictions"]]
        answered += [p["request_id"] for p in predict(notebook, name, rows[:5])["predictions"]]
        assert len(set(answered)) == 30

        # the replica closes its segment on age with no further request, and ships it; the notebook reads it
        logged = wait_for_predictions(notebook, name, answered, timeout_s=180)
        assert sorted(logged["request_id"]) == sorted(answered)  # each prediction once, none lost
        assert logged["x1"].tolist()[:25] == pytest.approx(frame["x1"].head(25).tolist())
        shipped = list_objects(notebook, f"{notebook.predictions_location}/{name}")
        assert shipped and all(o.uri.endswith(".parquet") for o in shipped), shipped
        assert not (remote.cluster.predictions_dir / name).exists()  # the cluster side's state dir holds none
    finally:
        delete_deployment(notebook, name)


def test_the_six_stage_notebooks_run_on_the_remote_services_by_a_profile_and_parameters(
        remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new project whose workbench.toml selects the cluster profile (addresses only; the keys come from the
    environment, never a file) runs the regression example through all six stages, nothing started here."""
    cluster, notebook = remote.cluster, remote.notebook
    project = tmp_path / "project"
    shutil.copytree(ROOT / "notebooks", project / "notebooks", ignore=shutil.ignore_patterns("llm", ".ipynb_*"))
    (project / "workbench.toml").write_text(cluster_toml(cluster, "wb-remote-pipeline"))
    key, secret = notebook.s3_keys()
    for name in [n for n in os.environ if n.startswith("WORKBENCH_")]:
        monkeypatch.delenv(name)  # the session's own settings must not leak into the kernels
    monkeypatch.setenv("WORKBENCH_PROJECT_DIR", str(project))
    monkeypatch.setenv("WORKBENCH_S3_ACCESS_KEY_ID", key)
    monkeypatch.setenv("WORKBENCH_S3_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", cluster.mlflow_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", cluster.mlflow_uri)
    settings = load_settings(project)
    assert settings.profile == "cluster" and settings.state_in_bucket and settings.ray_address == cluster.ray_address

    name = "remote-deliveries"
    report = run_pipeline(settings, parameters={
        "data": {"example": "deliveries", "n_rows": 2000, "seed": 5},
        "train": {"trainer": "xgboost", "n_estimators": 40},
        "registry": {"model_name": f"remote-deliveries-{uuid.uuid4().hex[:6]}"},
        "deploy": {"deployment_name": name, "smoke_requests": 20, "num_cpus": 0},
        "monitor": {"normal_requests": 60, "drifted_requests": 60}}, progress=lambda _: None)
    try:
        assert report.ok, report.summary()
        data, features, train, registry, deploy_stage, monitor = report.stages
        # data and training frame by s3:// URI, the job's state in the bucket, the model served from it
        assert data.outputs["dataset_path"].startswith(f"{settings.object_store_uri}/datasets/"), data.outputs
        run = mlflow.tracking.MlflowClient(settings.mlflow_uri).get_run(train.outputs["run_id"])
        assert run.data.params["frame_path"].startswith(f"{settings.object_store_uri}/frames/")
        assert run.data.tags["workbench.spec_path"].startswith(f"{settings.object_store_uri}/checkpoints/")
        info = JobSubmissionClient(settings.ray_address).get_job_info(run.data.tags["workbench.job_id"])
        shown = json.dumps({"entrypoint": info.entrypoint, "runtime_env": info.runtime_env})
        assert _local_paths(shown, project, ROOT, cluster.project_dir) == [] and secret not in shown, shown
        assert deploy_stage.outputs["deployment"] == name == monitor.parameters["deployment"]
        log = read_predictions(settings, name)
        assert len(log) == 20 + 120 + 3  # smoke requests, the monitored traffic, 05's first request (3 rows)
        assert list_objects(settings, f"{settings.predictions_location}/{name}")
        # nothing was started or kept here: no service records, no Ray or MLflow folders, no checkpoints
        assert not list(settings.services_dir.glob("*.json")) if settings.services_dir.exists() else True
        for folder in (settings.ray_dir, settings.mlflow_dir, settings.checkpoints_dir, settings.datasets_dir):
            assert not folder.exists() or not any(folder.rglob("*.parquet")), folder
    finally:
        delete_deployment(settings, name)


def test_the_same_frame_is_copied_once(remote: Remote) -> None:
    from workbench.storage import activate
    from workbench.training.shipping import frame_for_cluster

    notebook = remote.notebook
    activate(notebook)
    path = notebook.project_dir / "frames" / "twice.parquet"
    path.parent.mkdir(exist_ok=True)
    _frame(3, 200).to_parquet(path)
    first = frame_for_cluster(notebook, str(path))
    moved = notebook.project_dir / "elsewhere" / "twice.parquet"  # another folder, the same name and bytes
    moved.parent.mkdir()
    path.rename(moved)
    assert frame_for_cluster(notebook, str(moved)).rsplit("/", 2)[1] == first.rsplit("/", 2)[1]  # same content
    _frame(4, 200).to_parquet(path)
    assert frame_for_cluster(notebook, str(path)) != first
    copied = pd.read_parquet(moved)
    from workbench import locations

    fs, key = locations.resolve(first)
    pd.testing.assert_frame_equal(pd.read_parquet(key, filesystem=fs), copied)


def test_a_feature_project_model_serves_on_the_remote_head_from_the_bucket_and_redis(remote: Remote) -> None:
    """A feature project applied from the notebook (dataset by its s3:// URI, online store the cluster's Redis)
    is published to the bucket; a replica on the remote head, which shares no folder with the notebook, opens it
    from there and answers with the features the rows before each request give (computed here with pandas)."""
    from workbench import locations
    from workbench.data.generator import generate_transactions
    from workbench.features import (
        Aggregate,
        Entity,
        FeatureDeclaration,
        Relative,
        WindowedView,
        apply_features,
        feature_frame,
        materialize_features,
    )
    from workbench.storage import activate

    assert remote.redis, "the remote stack runs Redis for this test"
    txns = generate_transactions(400, seed=11, n_users=15, n_merchants=5, days=3)
    txns = txns[["transaction_id", "user_id", "amount", "event_timestamp", "is_fraud"]]
    activate(remote.notebook)
    dataset = f"{remote.notebook.object_store_uri}/test-data/{uuid.uuid4().hex[:8]}/txns.parquet"
    locations.write_bytes(dataset, txns.to_parquet(index=False))
    name = f"rf_{uuid.uuid4().hex[:6]}"
    declaration = FeatureDeclaration(
        name=name, timestamp="event_timestamp", entities=(Entity("user", ("user_id",)),),
        views=(WindowedView("spend", "user", (Aggregate("count", "ever", name="n_ever"),
                                              Aggregate("mean", "ever", column="amount", name="mean_ever"))),),
        on_demand=(Relative("amount_vs_mean", value="amount", to="mean_ever", fill=1.0),),
        request_columns=("amount",))

    # the default online store is a SQLite file on the notebook's disk: refused before anything is written
    with pytest.raises(ConfigError, match="online store the cluster reaches"):
        apply_features(remote.notebook, declaration, dataset)
    assert not list_objects(remote.notebook, f"{remote.notebook.object_store_uri}/features/{name}")

    notebook = remote.notebook.replace(feast_online_store="redis", feast_online_store_connection=remote.redis)
    project = apply_features(notebook, declaration, dataset)
    materialize_features(notebook, project.name)
    published = list_objects(notebook, f"{notebook.object_store_uri}/features/{name}")
    assert sorted(o.uri.rsplit("/", 1)[1] for o in published) == [
        "declaration.json", "manifest.json", "materialized.json", "registry.db"]
    frame = feature_frame(notebook, project.name, dataset, label="is_fraud")
    path = notebook.project_dir / "frames" / f"{name}.parquet"
    path.parent.mkdir(exist_ok=True)
    frame.to_parquet(path)
    inputs = list(project.model_inputs)
    spec = TrainingSpec(frame_path=str(path), feature_columns=inputs, label_column="is_fraud", task="binary",
                        trainer="xgboost", n_estimators=10, max_depth=2, early_stopping_rounds=0, cpus_per_worker=0.5)
    job = submit_training_job(notebook, spec)
    assert job.wait(timeout_s=900, progress=False) == "SUCCEEDED", job.logs()[-3000:]
    model = f"wb-remote-features-{uuid.uuid4().hex[:6]}"
    version = register_run(notebook, model, job.run_id).version

    shutil.rmtree(project.path)  # the notebook's copy goes: deploy and the replica open what the bucket holds
    deployment = "remote-features"
    deploy(notebook, f"models:/{model}/{version}", deployment, feature_service=project.service,
           resources=Resources(num_cpus=0), progress=False)
    try:
        after = txns["event_timestamp"].max() + pd.Timedelta(hours=1)  # every row is before the request
        users = sorted(txns["user_id"].unique())[:8]
        rows = [{"user_id": int(u), "amount": 10.0 + 7 * i, "event_timestamp": after.isoformat()}
                for i, u in enumerate(users)]
        answered = predict(notebook, deployment, rows)["predictions"]
        assert len(answered) == len(rows)
        logged = wait_for_predictions(notebook, deployment, [p["request_id"] for p in answered], timeout_s=180)
        logged = logged.set_index("user_id").loc[users]
        history = txns.groupby("user_id")["amount"]
        np.testing.assert_array_equal(logged["n_ever"].to_numpy(), history.count().loc[users].to_numpy())
        np.testing.assert_allclose(logged["mean_ever"].to_numpy(), history.mean().loc[users].to_numpy(), rtol=1e-9)
        np.testing.assert_allclose(logged["amount_vs_mean"].to_numpy(),
                                   [r["amount"] for r in rows] / history.mean().loc[users].to_numpy(), rtol=1e-9)
        # the scores are the registered model's on those features
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(notebook.mlflow_uri)
        try:
            loaded = mlflow.pyfunc.load_model(f"models:/{model}/{version}")
        finally:
            mlflow.set_tracking_uri(previous)
        scored = loaded.predict(logged[inputs].reset_index(drop=True))
        want = np.asarray(scored)[:, -1] if np.asarray(scored).ndim == 2 else np.asarray(scored)
        got = [p["score"] for p in answered]
        np.testing.assert_allclose(got, want, rtol=1e-5)
        assert not remote.cluster.feast_dir.exists() or not any(remote.cluster.feast_dir.rglob("*.db"))
    finally:
        delete_deployment(notebook, deployment)
