"""Exported manifests against the real CRDs in ../shared/crds (KubeRay v1.7.0, Kueue v0.19.2), as a
strict API server would check them: unknown fields, types, patterns and required fields (JSON Schema
from each CRD's openAPIV3Schema), then the CRDs' CEL rules (cel-python); the built-in ConfigMap with
kubernetes-validate --strict. Each kind of check has a negative test. The CRD files are read from
../shared/crds, never copied here; parsed schemas are cached in pytest's cache, keyed by file size and
modification time."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_export_manifests import RUN_ID, _app_config, make_spec, make_target, shared  # noqa: F401

from workbench.errors import InvalidInput
from workbench.export import GpuPool, kueue_manifests, rayjob_manifest, rayservice_manifest, validate_manifest
from workbench.export.crd_schema import CrdValidator, apply_defaults, load_crd
from workbench.export.files import to_yaml

CRDS = Path(__file__).resolve().parents[2].parent / "shared" / "crds"
FILES = {
    "RayJob": "kuberay-v1.7.0/ray.io_rayjobs.yaml",
    "RayService": "kuberay-v1.7.0/ray.io_rayservices.yaml",
    "ResourceFlavor": "kueue-v0.19.2/kueue.x-k8s.io_resourceflavors.yaml",
    "ClusterQueue": "kueue-v0.19.2/kueue.x-k8s.io_clusterqueues.yaml",
    "LocalQueue": "kueue-v0.19.2/kueue.x-k8s.io_localqueues.yaml",
    "WorkloadPriorityClass": "kueue-v0.19.2/kueue.x-k8s.io_workloadpriorityclasses.yaml",
    "InferenceService": "kserve-v0.20.0/serving.kserve.io_inferenceservices.yaml",
}
VERSIONS = {"RayJob": "v1", "RayService": "v1"}  # Kueue: the storage version, v1beta2

pytestmark = pytest.mark.skipif(not CRDS.is_dir(), reason=f"the CRD files are not at {CRDS}")


def _crd(cache: Any, kind: str) -> dict[str, Any]:
    path = CRDS / FILES[kind]
    stat = path.stat()
    key = "workbench-export/crd/" + hashlib.sha1(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    crd = cache.get(key, None) if cache is not None else None  # no cache under -p no:cacheprovider
    if crd is None:
        full = load_crd(path)
        version = VERSIONS.get(kind)
        keep = [v for v in full["spec"]["versions"] if (v["name"] == version if version else v.get("storage"))]
        crd = {**full, "spec": {**full["spec"], "versions": keep}}
        if cache is not None:
            cache.set(key, crd)
    return crd


@pytest.fixture(scope="session")
def crds(request: pytest.FixtureRequest) -> dict[str, CrdValidator]:
    cache = getattr(request.config, "cache", None)
    return {kind: CrdValidator.from_crd(_crd(cache, kind), VERSIONS.get(kind)) for kind in FILES}


def _rayjob(shared_dir: Path, **target: Any) -> dict[str, Any]:
    job = rayjob_manifest(make_spec(shared_dir), make_target(shared_dir, **target), run_id=RUN_ID).rayjob
    return yaml.safe_load(to_yaml(job))  # what is written is what is checked


def test_crds_are_the_ones_the_readme_names(crds: dict[str, CrdValidator]) -> None:
    assert (crds["RayJob"].group, crds["RayJob"].version) == ("ray.io", "v1")
    assert (crds["ClusterQueue"].group, crds["ClusterQueue"].version) == ("kueue.x-k8s.io", "v1beta2")


def _count_rules(node: Any) -> int:
    """Every CEL rule anywhere below ``node`` (a plain walk, blind to what the validator walks)."""
    if isinstance(node, dict):
        own = len(node.get("x-kubernetes-validations") or [])
        return own + sum(_count_rules(v) for k, v in node.items() if k != "x-kubernetes-validations")
    if isinstance(node, list):
        return sum(_count_rules(v) for v in node)
    return 0


def test_every_cel_rule_of_the_crds_compiles(crds: dict[str, CrdValidator]) -> None:
    counts = {kind: validator.compile_all() for kind, validator in crds.items()}
    assert counts == {kind: _count_rules(validator.schema) for kind, validator in crds.items()}
    assert counts["RayJob"] == 9 and counts["ClusterQueue"] == 4 and counts["WorkloadPriorityClass"] == 0


@pytest.mark.parametrize("queue", ["kueue", "volcano", "none"])
def test_rayjob_passes_its_crd(crds: dict[str, CrdValidator], shared: Path, queue: str) -> None:  # noqa: F811
    target = {"kueue": {}, "none": {"kueue_queue": "", "kueue_priority_class": ""},
              "volcano": {"kueue_queue": "", "kueue_priority_class": "", "volcano_queue": "gpu-q"}}[queue]
    assert crds["RayJob"].errors(_rayjob(shared, **target)) == []


def test_rayservice_passes_its_crd(crds: dict[str, CrdValidator], shared: Path) -> None:  # noqa: F811
    manifest = rayservice_manifest(_app_config(shared), make_target(shared))
    assert crds["RayService"].errors(yaml.safe_load(to_yaml(manifest))) == []


def test_kueue_objects_pass_their_crds(crds: dict[str, CrdValidator]) -> None:
    objects = kueue_manifests(GpuPool(namespaces=["ml", "research"], cohort="gpus"))
    for manifest in objects:
        assert crds[manifest["kind"]].errors(yaml.safe_load(to_yaml(manifest))) == [], manifest["kind"]


def _inference_services() -> list[dict[str, Any]]:
    from workbench.serving.kserve import inference_service
    from workbench.serving.vllm import kserve_llm_manifest

    return [inference_service("kx-fraud", "s3://kx-bucket/models/3", namespace="ml", num_gpus=1, model_version="3"),
            kserve_llm_manifest("kx-llm", "s3://kx-bucket/llm/1", served_model_name="smollm2", namespace="ml")]


def test_inference_services_pass_their_crd_and_the_product_checks(crds: dict[str, CrdValidator]) -> None:
    for manifest in _inference_services():
        validate_manifest(manifest)
        assert crds["InferenceService"].errors(yaml.safe_load(to_yaml(manifest))) == []
        broken = copy.deepcopy(manifest)
        broken["spec"]["predictor"]["model"]["storageURI"] = broken["spec"]["predictor"]["model"].pop("storageUri")
        assert any("Additional properties" in p for p in crds["InferenceService"].errors(broken))
        with pytest.raises(InvalidInput, match="storageUri"):
            validate_manifest(broken)


# strict structure: one negative test per kind of schema rule ------------------------------------------
def _head_container(m: dict[str, Any]) -> dict[str, Any]:
    return m["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]


STRUCTURE = [
    ("unknown spec field", lambda m: m["spec"].update(shutdownAfterJobFinished=True), "Additional properties"),
    ("unknown container field", lambda m: _head_container(m).update(cpus=2), "Additional properties"),
    ("unknown metadata field", lambda m: m["metadata"].update(owner="me"), "Additional properties"),
    ("unknown top-level field", lambda m: m.update(status2={}), "Additional properties"),
    ("bad quantity", lambda m: _head_container(m)["resources"]["limits"].update(cpu="2 cores"), "does not match"),
    ("wrong type", lambda m: m["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].update(replicas="three"),
     "is not of type 'integer'"),
    ("missing required", lambda m: m["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].pop("groupName"),
     "'groupName' is a required property"),
    ("wrong apiVersion", lambda m: m.update(apiVersion="ray.io/v2"), "was expected"),
    ("pattern of a map value", lambda m: m["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"][
        "containers"][0]["resources"]["limits"].update({"nvidia.com/gpu": "one"}), "does not match"),
]


@pytest.mark.parametrize(("what", "breaks", "message"), STRUCTURE, ids=[s[0] for s in STRUCTURE])
def test_structural_rule_refuses(crds: dict[str, CrdValidator], shared: Path, what: str, breaks: Any,  # noqa: F811
                                 message: str) -> None:
    job = _rayjob(shared)
    breaks(job)
    problems = crds["RayJob"].errors(job)
    assert problems and any(message in p for p in problems), problems
    with pytest.raises(InvalidInput, match="refused by its CRD"):
        crds["RayJob"].validate(job)


def test_enum_and_pattern_of_kueue_objects_refuse(crds: dict[str, CrdValidator]) -> None:
    queue = _queue()
    queue["spec"]["queueingStrategy"] = "Random"
    assert any("is not one of" in p for p in crds["ClusterQueue"].errors(queue))
    local = next(m for m in kueue_manifests(GpuPool()) if m["kind"] == "LocalQueue")
    local["spec"]["clusterQueue"] = "Not_A_Queue"
    assert any("does not match" in p for p in crds["LocalQueue"].errors(local))
    priority = next(m for m in kueue_manifests(GpuPool()) if m["kind"] == "WorkloadPriorityClass")
    del priority["value"]
    assert any("'value' is a required property" in p for p in crds["WorkloadPriorityClass"].errors(priority))


# CEL rules: each one our objects could break, broken ---------------------------------------------------
def _queue() -> dict[str, Any]:
    return next(m for m in kueue_manifests(GpuPool()) if m["kind"] == "ClusterQueue")


def _flavor() -> dict[str, Any]:
    return next(m for m in kueue_manifests(GpuPool()) if m["kind"] == "ResourceFlavor")


CEL = [
    ("RayJob", "managedBy field value must be either", lambda m: m["spec"].update(managedBy="someone-else")),
    ("RayJob", "requires either BOTH onSuccess and onFailure",
     lambda m: m["spec"].update(deletionStrategy={"onSuccess": {"policy": "DeleteCluster"}})),
    ("RayJob", "cannot be used together",
     lambda m: m["spec"].update(deletionStrategy={"onSuccess": {"policy": "DeleteCluster"},
                                                  "onFailure": {"policy": "DeleteNone"},
                                                  "deletionRules": [{"policy": "DeleteCluster",
                                                                     "condition": {"jobStatus": "SUCCEEDED"}}]})),
    ("ClusterQueue", "same number of resources as the coveredResources",
     lambda m: m["spec"]["resourceGroups"][0]["flavors"][0]["resources"].pop()),
    ("ClusterQueue", "borrowingLimit must be nil when cohort is empty",
     lambda m: m["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0].update(borrowingLimit="8")),
    ("ClusterQueue", "reclaimWithinCohort=Never and borrowWithinCohort",  # reclaimWithinCohort is defaulted
     lambda m: m["spec"]["preemption"].update(borrowWithinCohort={"policy": "LowerPriority"})),
    ("ResourceFlavor", "effect must be 'NoExecute' when 'tolerationSeconds' is set",
     lambda m: m["spec"]["tolerations"][0].update(tolerationSeconds=30)),
    ("ResourceFlavor", "a value must be empty when 'operator' is 'Exists'",
     lambda m: m["spec"]["tolerations"][0].update(value="yes")),
    ("ResourceFlavor", "at least one nodeLabel is required when topology is set",
     lambda m: (m["spec"].pop("nodeLabels"), m["spec"].update(topologyName="default"))),
]


@pytest.mark.parametrize(("kind", "message", "breaks"), CEL, ids=[f"{c[0]}-{i}" for i, c in enumerate(CEL)])
def test_cel_rule_refuses(crds: dict[str, CrdValidator], shared: Path, kind: str, message: str,  # noqa: F811
                          breaks: Any) -> None:
    manifest = _rayjob(shared) if kind == "RayJob" else _queue() if kind == "ClusterQueue" else _flavor()
    assert crds[kind].errors(manifest) == []
    broken = copy.deepcopy(manifest)
    breaks(broken)
    problems = crds[kind].errors(broken)  # the structure passes: only the CEL rule refuses it
    assert problems and all("CEL" in p for p in problems), problems
    assert any(message in p for p in problems), problems


def test_defaults_are_applied_before_cel(crds: dict[str, CrdValidator]) -> None:
    queue = apply_defaults(crds["ClusterQueue"].schema, copy.deepcopy(_queue()))
    assert queue["spec"]["preemption"]["reclaimWithinCohort"] == "Never"  # the schema's default
    assert queue["spec"]["preemption"]["borrowWithinCohort"]["policy"] == "Never"


def test_transition_rules_are_skipped_on_create(crds: dict[str, CrdValidator]) -> None:
    queue = next(m for m in kueue_manifests(GpuPool()) if m["kind"] == "LocalQueue")
    # LocalQueue.spec.clusterQueue carries `self == oldSelf` (immutable): no oldSelf exists on create
    assert crds["LocalQueue"].errors(queue) == []


# built-in kinds: kubernetes-validate --strict -----------------------------------------------------------
def test_configmap_passes_kubernetes_validate_strict(shared: Path) -> None:  # noqa: F811
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    from kubernetes_validate.utils import latest_version

    configmap = rayjob_manifest(make_spec(shared), make_target(shared), run_id=RUN_ID).configmap
    kubernetes_validate.validate(yaml.safe_load(to_yaml(configmap)), latest_version(), strict=True)
    broken = dict(configmap, spec={"data": 1})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, latest_version(), strict=True)
    wrong_type = dict(configmap, data={"spec.json": 5})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, latest_version(), strict=True)
