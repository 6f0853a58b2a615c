"""Exported manifests (RayJob, RayService, Kueue): their content, the product's own checks, and one
negative test per operator/webhook rule (``OPERATOR_RULES``). No services, no CRDs: see
test_export_crds.py for the strict checks against the real CRD schemas."""

from __future__ import annotations

import copy
import json
import math
import shlex
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from workbench.config import Settings
from workbench.errors import InvalidInput
from workbench.export import (
    OPERATOR_RULES,
    ClusterTarget,
    GpuPool,
    SecretRef,
    SharedVolume,
    kueue_manifests,
    rayjob_manifest,
    rayservice_manifest,
    read_manifests,
    validate_manifest,
    write_manifests,
)
from workbench.export.cli import register_cli, run_export
from workbench.training.spec import TrainingSpec

RUN_ID = "0123456789abcdef0123456789abcdef"
SECRET_VALUE = "kx-very-secret-value-7f3a"


@pytest.fixture()
def shared(tmp_path: Path) -> Path:
    folder = tmp_path / "shared"
    folder.mkdir()
    pq.write_table(pa.table({"amount": [1.0, 2.0, 3.0, 4.0], "merchant": ["a", "b", "a", "b"],
                             "is_fraud": [0, 1, 0, 1]}), folder / "frame.parquet")
    return folder


def make_target(shared: Path, **changes: Any) -> ClusterTarget:
    base: dict[str, Any] = dict(
        image="ghcr.io/acme/workbench:1.0", mlflow_uri="http://mlflow.mlops.svc:5000", namespace="ml",
        shared_volumes=[SharedVolume(str(shared), "workbench-data")], checkpoint_dir=str(shared / "ckpt"),
        kueue_queue="training", kueue_priority_class="training-high",
        secrets={"AWS_SECRET_ACCESS_KEY": SecretRef("s3-credentials", "secret-key")},
        env={"AWS_ENDPOINT_URL": "http://seaweedfs.storage.svc:8333"},
        gpu_node_selector={"nvidia.com/gpu.present": "true"})
    base.update(changes)
    return ClusterTarget(**base)


def make_spec(shared: Path, **changes: Any) -> TrainingSpec:
    return TrainingSpec(frame_path=str(shared / "frame.parquet"), feature_columns=["amount", "merchant"],
                        **{"num_workers": 3, "use_gpu": True, "cpus_per_worker": 1.5, **changes})


def _pod(rayjob: dict[str, Any], group: str) -> dict[str, Any]:
    cluster = rayjob["spec"]["rayClusterSpec"]
    if group == "head":
        return cluster["headGroupSpec"]["template"]["spec"]
    return next(g for g in cluster["workerGroupSpecs"] if g["groupName"] == group)["template"]["spec"]


# RayJob content ----------------------------------------------------------------------------------------
def test_rayjob_sizes_groups_from_the_spec_and_places_gpus(shared: Path) -> None:
    spec = make_spec(shared)
    job = rayjob_manifest(spec, make_target(shared), run_id=RUN_ID, experiment_id="7").rayjob
    group = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (3, 3, 3)
    worker = _pod(job, "workers")
    limits = worker["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1
    assert limits["cpu"] == str(math.ceil(1.5)) and group["rayStartParams"]["num-cpus"] == "2"
    assert worker["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in worker["tolerations"]
    head = _pod(job, "head")  # the driver reserves no GPU: the head stays off the GPU pool
    assert "nvidia.com/gpu" not in head["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in head and "tolerations" not in head
    assert job["spec"]["shutdownAfterJobFinishes"] is True


def test_rayjob_without_gpu_asks_for_none(shared: Path) -> None:
    job = rayjob_manifest(make_spec(shared, use_gpu=False), make_target(shared), run_id=RUN_ID).rayjob
    worker = _pod(job, "workers")
    assert "nvidia.com/gpu" not in worker["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in worker


def test_rayjob_runs_todays_entrypoint_and_runtime_env(shared: Path) -> None:
    spec = make_spec(shared)
    export = rayjob_manifest(spec, make_target(shared), run_id=RUN_ID, experiment_id="7", name="kx-job")
    job = export.rayjob
    assert shlex.split(job["spec"]["entrypoint"]) == [
        "python", "-m", "workbench.training.entrypoint", "--spec", "/workbench/spec/spec.json", "--run-id", RUN_ID,
        "--tracking-uri", "http://mlflow.mlops.svc:5000", "--job-id", "kx-job"]
    runtime = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    assert runtime["env_vars"]["MLFLOW_TRACKING_URI"] == "http://mlflow.mlops.svc:5000"
    assert runtime["env_vars"]["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] == "600"
    assert runtime["env_vars"]["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] == "0.25"  # quick epochs not held to 2 s
    assert "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER" not in runtime["env_vars"]  # a local-profile-only setting
    assert job["spec"]["jobId"] == "kx-job" and job["spec"]["metadata"]["mlflow_run_id"] == RUN_ID
    # the ConfigMap holds the spec the job loads, with the paths and experiment resolved
    assert export.configmap["metadata"]["name"] == "kx-job-spec"
    shipped = TrainingSpec.from_json(export.configmap["data"]["spec.json"])
    assert shipped == spec.replace(experiment="fraud-detection", checkpoint_dir=str(shared / "ckpt"))
    mounts = [m["mountPath"] for m in _pod(job, "head")["containers"][0]["volumeMounts"]]
    assert mounts == [str(shared), "/workbench/spec"]


def test_rayjob_secrets_only_as_secret_key_refs(shared: Path) -> None:
    job = rayjob_manifest(make_spec(shared), make_target(shared), run_id=RUN_ID).rayjob
    for group in ("head", "workers"):
        env = {e["name"]: e for e in _pod(job, group)["containers"][0]["env"]}
        assert env["AWS_SECRET_ACCESS_KEY"] == {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {
            "secretKeyRef": {"name": "s3-credentials", "key": "secret-key"}}}
        assert env["AWS_ENDPOINT_URL"]["value"] == "http://seaweedfs.storage.svc:8333"
    assert "AWS_SECRET_ACCESS_KEY" not in job["spec"]["runtimeEnvYAML"]


def test_rayjob_kueue_labels_and_suspend(shared: Path) -> None:
    job = rayjob_manifest(make_spec(shared), make_target(shared), run_id=RUN_ID).rayjob
    labels = job["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "training"
    assert labels["kueue.x-k8s.io/priority-class"] == "training-high"
    assert job["spec"]["suspend"] is True
    assert not any(k.startswith("volcano.sh") or k == "ray.io/scheduler-name" for k in labels)


def test_rayjob_volcano_labels(shared: Path) -> None:
    target = make_target(shared, kueue_queue="", kueue_priority_class="", volcano_queue="gpu-q")
    job = rayjob_manifest(make_spec(shared), target, run_id=RUN_ID).rayjob
    labels = job["metadata"]["labels"]
    assert labels["volcano.sh/queue-name"] == "gpu-q" and labels["ray.io/scheduler-name"] == "volcano"
    assert "suspend" not in job["spec"] and "kueue.x-k8s.io/queue-name" not in labels


def test_rayjob_refuses_a_local_frame_path(shared: Path, tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    pq.write_table(pa.table({"amount": [1.0, 2.0], "is_fraud": [0, 1]}), local / "frame.parquet")
    spec = TrainingSpec(frame_path=str(local / "frame.parquet"), feature_columns=["amount"])
    with pytest.raises(InvalidInput, match="path on this machine.*frame_path|frame_path.*path on this machine"):
        rayjob_manifest(spec, make_target(shared), run_id=RUN_ID)


def test_rayjob_accepts_a_uri_frame(shared: Path) -> None:
    spec = make_spec(shared)
    # TrainingSpec checks a frame on this disk today; the exporter's own rule takes any remote URI
    object.__setattr__(spec, "frame_path", "s3://kx-bucket/frames/frame.parquet")
    from workbench.export import _pods

    _pods.check_shared(make_target(shared), "frame_path", spec.frame_path)  # no error
    with pytest.raises(InvalidInput, match="path on this machine"):
        _pods.check_shared(make_target(shared), "frame_path", "file:///tmp/frame.parquet")


def test_rayjob_refuses_missing_checkpoint_dir_and_local_code(shared: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="checkpoint"):
        rayjob_manifest(make_spec(shared), make_target(shared, checkpoint_dir=""), run_id=RUN_ID)
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('hi')\n")
    custom = make_spec(shared, trainer="custom", entrypoint="train.py", working_dir=str(code), use_gpu=False)
    with pytest.raises(InvalidInput, match="working_dir.*URI"):
        rayjob_manifest(custom, make_target(shared), run_id=RUN_ID)


def test_custom_trainer_in_the_image_runs_its_driver_on_a_gpu_head(shared: Path) -> None:
    spec = TrainingSpec(frame_path="", feature_columns=[], trainer="custom", entrypoint="kx_pkg.train:main",
                        cpus_per_worker=3.0, use_gpu=True, memory_mb=2048)
    export = rayjob_manifest(spec, make_target(shared), run_id=RUN_ID, workers=0)
    job = export.rayjob
    assert job["spec"]["entrypointNumCpus"] == 3.0 and job["spec"]["entrypointNumGpus"] == 1.0
    head = _pod(job, "head")
    limits = head["containers"][0]["resources"]["limits"]
    assert (limits["cpu"], limits["nvidia.com/gpu"], limits["memory"]) == ("3", 1, f"{4096 + 2048}Mi")
    assert head["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    params = job["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]
    assert (params["num-cpus"], params["num-gpus"]) == ("3", "1")
    assert job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] == 0
    env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]
    assert env["MLFLOW_RUN_ID"] == RUN_ID and env["MLFLOW_TRACKING_URI"] == "http://mlflow.mlops.svc:5000"


def test_a_job_larger_than_the_pool_is_refused(shared: Path) -> None:
    from workbench.export import check_job_fits
    from workbench.export.kueue import parse_quantity, rayjob_requests

    assert (parse_quantity("500m"), parse_quantity("4Gi"), parse_quantity(3)) == (0.5, 4 * 2**30, 3.0)
    job = rayjob_manifest(make_spec(shared), make_target(shared), run_id=RUN_ID).rayjob
    needed = rayjob_requests(job)
    assert needed["nvidia.com/gpu"] == 3 and needed["cpu"] == 1 + 3 * 2
    assert needed["memory"] == 4 * 4096 * 2**20
    check_job_fits(job, GpuPool(gpus=3, cpu="7", memory="16Gi"))  # exactly fits
    with pytest.raises(InvalidInput, match="nvidia.com/gpu.*can ever admit"):
        check_job_fits(job, GpuPool(gpus=2))
    with pytest.raises(InvalidInput, match="cpu"):
        check_job_fits(job, GpuPool(cpu="6500m"))


def test_rayjob_refuses_a_loopback_tracking_uri(shared: Path) -> None:
    with pytest.raises(InvalidInput, match="loopback"):
        rayjob_manifest(make_spec(shared), make_target(shared, mlflow_uri="http://127.0.0.1:5000"), run_id=RUN_ID)


def test_target_refuses_two_queueing_systems(shared: Path) -> None:
    with pytest.raises(InvalidInput, match="not both"):
        make_target(shared, volcano_queue="gpu-q")


# Kueue objects -----------------------------------------------------------------------------------------
def test_kueue_objects_for_a_gpu_pool() -> None:
    objects = kueue_manifests(GpuPool(name="a100", cpu="96", memory="512Gi", gpus=8, namespaces=["ml", "research"]))
    kinds = [o["kind"] for o in objects]
    assert kinds == ["ResourceFlavor", "WorkloadPriorityClass", "WorkloadPriorityClass", "ClusterQueue",
                     "LocalQueue", "LocalQueue"]
    queue = objects[3]
    group = queue["spec"]["resourceGroups"][0]
    assert group["coveredResources"] == ["cpu", "memory", "nvidia.com/gpu"]
    assert {r["name"]: r["nominalQuota"] for r in group["flavors"][0]["resources"]} == {
        "cpu": "96", "memory": "512Gi", "nvidia.com/gpu": "8"}
    assert group["flavors"][0]["name"] == objects[0]["metadata"]["name"] == "a100"
    assert [(q["metadata"]["namespace"], q["spec"]["clusterQueue"]) for q in objects[4:]] == [
        ("ml", "a100"), ("research", "a100")]
    assert {o["metadata"]["name"]: o["value"] for o in objects[1:3]} == {"training-high": 1000, "training-low": 100}


def test_kueue_bad_quota_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not a Kubernetes quantity"):
        kueue_manifests(GpuPool(cpu="lots"))


# RayService --------------------------------------------------------------------------------------------
def _app_config(shared: Path, secret: str = "") -> dict[str, Any]:
    from workbench.serving import deployments

    settings = Settings(profile="cluster", project_dir=shared, host="0.0.0.0",
                        mlflow_uri="http://mlflow.mlops.svc:5000", ray_address="http://ray-head.ml.svc:8265",
                        vllm_api_key=secret)
    target = deployments._Target(uri="models:/kx-fraud/3", version="3", requested="models:/kx-fraud@champion",
                                 feature_service=None)
    resources = deployments.Resources(num_cpus=1.5, autoscaling=deployments.Autoscaling(1, 4))
    return deployments.app_config(settings, "kx-fraud", target, resources)


def test_rayservice_carries_the_deploy_config(shared: Path) -> None:
    app = _app_config(shared)
    manifest = rayservice_manifest(app, make_target(shared))
    serve = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    assert serve["http_options"]["host"] == "0.0.0.0"
    assert serve["applications"] == [app]  # the same application config deploy PUTs
    group = manifest["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert (group["minReplicas"], group["maxReplicas"]) == (1, 4)
    assert manifest["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] is True
    assert group["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "2"
    assert "127.0.0.1" not in manifest["spec"]["serveConfigV2"]


def test_rayservice_moves_secrets_to_secret_refs(shared: Path) -> None:
    app = _app_config(shared, secret=SECRET_VALUE)
    with pytest.raises(InvalidInput, match="WORKBENCH_VLLM_API_KEY"):
        rayservice_manifest(app, make_target(shared))
    target = make_target(shared, secrets={"WORKBENCH_VLLM_API_KEY": SecretRef("vllm", "api-key")})
    manifest = rayservice_manifest(app, target)
    assert SECRET_VALUE not in yaml.safe_dump(manifest)
    head_env = manifest["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "WORKBENCH_VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "vllm", "key": "api-key"}}} \
        in head_env


def test_rayservice_refuses_local_settings(shared: Path, tmp_path: Path) -> None:
    from workbench.serving import deployments

    local = Settings(project_dir=tmp_path / "nb")  # the local profile: 127.0.0.1 and the notebook's disk
    target = deployments._Target(uri="models:/kx-fraud/3", version="3", requested="x", feature_service=None)
    app = deployments.app_config(local, "kx-fraud", target, deployments.Resources())
    with pytest.raises(InvalidInput, match="path on this machine|loopback"):
        rayservice_manifest(app, make_target(shared))


# Operator and webhook rules: one negative test each ------------------------------------------------------
def _rule(text: str) -> int:
    return next(i for i, rule in enumerate(OPERATOR_RULES) if rule.startswith(text))


def _groups(m: dict[str, Any]) -> list[dict[str, Any]]:
    return m["spec"]["rayClusterSpec"]["workerGroupSpecs"]


def _container(m: dict[str, Any]) -> dict[str, Any]:
    return _groups(m)[0]["template"]["spec"]["containers"][0]


BROKEN_RAYJOBS = [
    (_rule("kuberay: a RayJob/RayService name"), lambda m: m["metadata"].update(name="k" * 48), "at most 47"),
    (_rule("kuberay: a RayJob sets"), lambda m: m["spec"].pop("rayClusterSpec"), "rayClusterSpec and clusterSelector"),
    (_rule("kuberay: a suspended"), lambda m: (m["metadata"]["labels"].pop("kueue.x-k8s.io/queue-name"),
                                             m["metadata"]["labels"].pop("kueue.x-k8s.io/priority-class"),
                                             m["spec"].update(shutdownAfterJobFinishes=False)),
     "suspends a RayJob only with shutdownAfterJobFinishes"),
    (_rule("kuberay: without autoscaling"), lambda m: _groups(m)[0].pop("maxReplicas"), "minReplicas and maxReplicas"),
    (_rule("kuberay: without autoscaling"), lambda m: _groups(m)[0].update(replicas=9), "outside minReplicas"),
    (_rule("kuberay: worker group names"), lambda m: _groups(m).append(copy.deepcopy(_groups(m)[0])), "two worker"),
    (_rule("kueue: a queued RayJob has shutdown"), lambda m: m["spec"].update(shutdownAfterJobFinishes=False,
                                                                             suspend=False), "Kueue admits"),
    (_rule("kueue: a queued RayJob has an inline"),
     lambda m: (m["spec"].pop("rayClusterSpec"), m["spec"].update(clusterSelector={"ray.io/cluster": "c"})),
     "not ones that select"),
    (_rule("kueue: a queued RayJob has at most"),
     lambda m: _groups(m).extend(dict(copy.deepcopy(_groups(m)[0]), groupName=f"g{i}") for i in range(17)),
     "at most 17"),
    (_rule("kueue: a queued RayJob has at most"), lambda m: _groups(m)[0].update(groupName="head"), "'head'"),
    (_rule("kueue: a queued RayJob is created"), lambda m: m["spec"].pop("suspend"), "created suspended"),
    (_rule("kueue: a priority-class"), lambda m: m["metadata"]["labels"].pop("kueue.x-k8s.io/queue-name"),
     "needs the kueue.x-k8s.io/queue-name"),
    (_rule("volcano:"), lambda m: (m["metadata"]["labels"].pop("kueue.x-k8s.io/queue-name"),
                                   m["metadata"]["labels"].pop("kueue.x-k8s.io/priority-class"),
                                   m["metadata"]["labels"].update({"volcano.sh/queue-name": "q"})),
     "scheduler-name: volcano"),
    (_rule("queues:"), lambda m: m["metadata"]["labels"].update({"volcano.sh/queue-name": "q",
                                                                 "ray.io/scheduler-name": "volcano"}), "at once"),
    (_rule("pods:"), lambda m: _container(m)["resources"]["limits"].update({"nvidia.com/gpu": "0.5"}), "whole"),
    (_rule("pods:"), lambda m: _container(m)["resources"]["requests"].update({"nvidia.com/gpu": 2}), "equal to"),
    (_rule("secrets:"), lambda m: _container(m)["env"].append({"name": "AWS_SECRET_ACCESS_KEY", "value": "x"}),
     "secretKeyRef"),
    (_rule("secrets:"), lambda m: m["spec"].update(runtimeEnvYAML="env_vars:\n  MLFLOW_TRACKING_TOKEN: abc\n"),
     "credential in plain text"),
    (_rule("network:"), lambda m: _container(m)["env"].append({"name": "X_URL", "value": "http://localhost:9/"}),
     "loopback"),
]


@pytest.mark.parametrize(("rule", "breaks", "message"), BROKEN_RAYJOBS,
                         ids=[f"{OPERATOR_RULES[r].split(':')[0]}-{i}" for i, (r, _, _) in enumerate(BROKEN_RAYJOBS)])
def test_each_operator_rule_refuses_a_broken_rayjob(shared: Path, rule: int, breaks: Any, message: str) -> None:
    job = rayjob_manifest(make_spec(shared), make_target(shared), run_id=RUN_ID).rayjob
    validate_manifest(job)  # the unbroken one passes
    broken = copy.deepcopy(job)
    breaks(broken)
    with pytest.raises(InvalidInput, match=message):
        validate_manifest(broken)


def test_rayservice_rules(shared: Path) -> None:
    good = rayservice_manifest(_app_config(shared), make_target(shared))
    long_name = copy.deepcopy(good)
    long_name["metadata"]["name"] = "s" * 48
    with pytest.raises(InvalidInput, match="at most 47"):
        validate_manifest(long_name)
    loopback = copy.deepcopy(good)
    serve = yaml.safe_load(loopback["spec"]["serveConfigV2"])
    serve["http_options"]["host"] = "127.0.0.1"
    loopback["spec"]["serveConfigV2"] = yaml.safe_dump(serve)
    with pytest.raises(InvalidInput, match="loopback"):
        validate_manifest(loopback)


def test_every_operator_rule_has_a_negative_test() -> None:
    covered = {r for r, _, _ in BROKEN_RAYJOBS}
    assert covered == set(range(len(OPERATOR_RULES)))


# Files and the CLI ---------------------------------------------------------------------------------------
def test_write_round_trips_and_writes_nothing_when_one_is_bad(shared: Path, tmp_path: Path) -> None:
    export = rayjob_manifest(make_spec(shared), make_target(shared), run_id=RUN_ID, name="kx-job")
    objects = [*export.objects, *kueue_manifests(GpuPool())]
    paths = write_manifests(objects, tmp_path / "out")
    assert [p.name for p in paths][:2] == ["00-configmap-ml-kx-job-spec.yaml", "01-rayjob-ml-kx-job.yaml"]
    assert read_manifests(tmp_path / "out") == objects
    assert "&id" not in paths[1].read_text()  # no YAML anchors: each object reads on its own
    bad = copy.deepcopy(export.rayjob)
    bad["metadata"]["name"] = "Not_A_Name"
    with pytest.raises(InvalidInput, match="DNS-1123"):
        write_manifests([export.configmap, bad], tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def test_cli_exports_a_rayjob_and_kueue(shared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    spec_path = make_spec(shared).save(tmp_path / "spec.json")
    target_path = tmp_path / "target.yaml"
    target_path.write_text(yaml.safe_dump({
        "image": "ghcr.io/acme/workbench:1.0", "mlflow_uri": "http://mlflow.mlops.svc:5000", "namespace": "ml",
        "shared_volumes": [{"mount_path": str(shared), "claim_name": "workbench-data"}],
        "checkpoint_dir": str(shared / "ckpt"), "kueue_queue": "training"}))
    parser = argparse.ArgumentParser(prog="workbench")
    register_cli(parser.add_subparsers(dest="command", required=True))
    settings = Settings(profile="cluster", project_dir=tmp_path)
    args = parser.parse_args(["export", "rayjob", "--spec", str(spec_path), "--run-id", RUN_ID, "--target",
                              str(target_path), "--name", "kx-cli", "-o", str(tmp_path / "job")])
    assert run_export(settings, args) == 0
    written = read_manifests(tmp_path / "job")
    assert [m["kind"] for m in written] == ["ConfigMap", "RayJob"]
    assert written[1]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "training"
    assert json.loads(written[0]["data"]["spec.json"])["frame_path"] == str(shared / "frame.parquet")
    args = parser.parse_args(["export", "kueue", "-o", str(tmp_path / "kueue")])
    assert run_export(settings, args) == 0
    assert len(read_manifests(tmp_path / "kueue")) == 5
    assert str(tmp_path / "kueue") in capsys.readouterr().out
