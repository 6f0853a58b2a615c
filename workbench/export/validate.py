"""Checks every exported manifest passes before it is written, without a cluster and without the CRDs.

Two kinds of rule live here. Structural ones the API server would apply (DNS-1123 names, label syntax,
resource quantities, required fields, one container per pod at least) fail early with the field named.
The others are rules no CRD schema holds, that the KubeRay operator and the Kueue/Volcano admission
webhooks enforce only once the object is applied (listed in ``OPERATOR_RULES``); an object that breaks
one is accepted by ``kubectl apply`` and then never runs, which is the failure hardest to act on. On top,
nothing a manifest carries may point at the notebook's machine (a loopback URL) or hold a secret's value.

The full schemas (strict fields, patterns, CEL rules) are checked by :mod:`workbench.export.crd_schema`
when the CRD files are at hand (the tests do that against the real CRDs).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import yaml

from workbench.config import SECRET_FIELDS
from workbench.errors import InvalidInput

DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_1123_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
#: Kubernetes' resource.Quantity syntax (the CRDs carry the same pattern).
QUANTITY = re.compile(r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
                      r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")
#: Environment variables that carry credentials: they may reach a container only as a secretKeyRef.
SECRET_ENV = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|APIKEY|CREDENTIAL|PRIVATE_KEY)", re.IGNORECASE)
SECRET_ENV_NAMES = frozenset({"WORKBENCH_" + f.upper() for f in SECRET_FIELDS})
RAY_API = "ray.io/v1"
KUEUE_API = "kueue.x-k8s.io/v1beta2"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
VOLCANO_QUEUE_LABEL = "volcano.sh/queue-name"
SCHEDULER_LABEL = "ray.io/scheduler-name"
#: KubeRay's name limits (it derives Service and Pod names from them).
NAME_LIMITS = {"RayJob": 47, "RayService": 47, "RayCluster": 53}
KUEUE_MAX_WORKER_GROUPS = 17
#: The rules of KubeRay, Kueue and Volcano checked here that no CRD schema holds (one negative test each).
OPERATOR_RULES = (
    "kuberay: a RayJob/RayService name has at most 47 characters, a RayCluster's 53",
    "kuberay: a RayJob sets rayClusterSpec or clusterSelector",
    "kuberay: a suspended RayJob needs shutdownAfterJobFinishes: true",
    "kuberay: without autoscaling every worker group sets minReplicas <= replicas <= maxReplicas",
    "kuberay: worker group names are unique",
    "kueue: a queued RayJob has shutdownAfterJobFinishes: true",
    "kueue: a queued RayJob has an inline rayClusterSpec, no clusterSelector",
    "kueue: a queued RayJob has at most 17 worker groups, none named 'head'",
    "kueue: a queued RayJob is created suspended (Kueue owns spec.suspend)",
    "kueue: a priority-class label needs a queue-name label",
    "volcano: a volcano.sh/queue-name label needs ray.io/scheduler-name: volcano",
    "queues: Kueue and Volcano labels are not mixed",
    "pods: GPU (nvidia.com/gpu) quantities are whole numbers, requests equal to limits",
    "secrets: credentials reach containers as secretKeyRef only, never in runtimeEnvYAML or serveConfigV2",
    "network: no URL or Serve http_options host points at the loopback interface",
)


def _fail(kind: str, name: Any, where: str, message: str) -> InvalidInput:
    return InvalidInput(f"{kind} {name or '?'}: {where}: {message}")


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def iter_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from iter_strings(item, f"{path}[{i}]")


_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"]+")


def loopback_references(value: Any) -> list[str]:
    """Paths of the strings in ``value`` that name the loopback interface (a URL's host, or the whole
    string): inside a pod that is the pod itself, never the notebook's machine."""
    found = []
    for path, text in iter_strings(value):
        hosts = [urlsplit(url).hostname or "" for url in _URL.findall(text)]
        if is_loopback_host(text) or any(is_loopback_host(h) for h in hosts if h):
            found.append(f"{path}={text!r}")
    return found


def check_quantity(kind: str, name: Any, where: str, value: Any) -> None:
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and QUANTITY.match(value))):
        raise _fail(kind, name, where, f"{value!r} is not a Kubernetes quantity (e.g. 2, 500m, 4Gi)")


def check_labels(kind: str, name: Any, where: str, labels: Any) -> None:
    if not isinstance(labels, Mapping):
        raise _fail(kind, name, where, "must be a mapping of strings")
    for key, value in labels.items():
        prefix, _, short = str(key).rpartition("/")
        if (prefix and not DNS_1123_SUBDOMAIN.match(prefix)) or not _LABEL_NAME.match(short):
            raise _fail(kind, name, f"{where}.{key}", "is not a valid label key ([prefix/]name, name at most 63 "
                                                      "characters)")
        if where.endswith("labels") and (not isinstance(value, str) or (value and not _LABEL_NAME.match(value))):
            raise _fail(kind, name, f"{where}.{key}", f"{value!r} is not a valid label value (at most 63 "
                                                      "characters of [-A-Za-z0-9_.])")
        if not isinstance(value, str):
            raise _fail(kind, name, f"{where}.{key}", "must be a string")


def check_metadata(manifest: Mapping[str, Any], namespaced: bool = True) -> tuple[str, str]:
    kind = str(manifest.get("kind") or "object")
    meta = manifest.get("metadata")
    if not isinstance(meta, Mapping):
        raise _fail(kind, "?", "metadata", "is required")
    name = meta.get("name")
    if not isinstance(name, str) or not DNS_1123_SUBDOMAIN.match(name):
        raise _fail(kind, name, "metadata.name", f"{name!r} is not a DNS-1123 name (lower-case letters, digits, "
                                                 "'-' and '.', starting and ending alphanumeric)")
    limit = NAME_LIMITS.get(kind)
    if limit and (len(name) > limit or not DNS_1123_LABEL.match(name[:63])):
        raise _fail(kind, name, "metadata.name", f"KubeRay allows at most {limit} characters (it names Services and "
                                                 f"Pods after it); this one has {len(name)}")
    unknown = sorted(set(meta) - {"name", "namespace", "labels", "annotations"})
    if unknown:
        raise _fail(kind, name, "metadata", f"unexpected fields {unknown}")
    if namespaced:
        namespace = meta.get("namespace")
        if not isinstance(namespace, str) or not DNS_1123_LABEL.match(namespace):
            raise _fail(kind, name, "metadata.namespace", f"{namespace!r} is not a DNS-1123 label")
    elif "namespace" in meta:
        raise _fail(kind, name, "metadata.namespace", f"a {kind} is cluster-scoped: it has no namespace")
    check_labels(kind, name, "metadata.labels", meta.get("labels") or {})
    check_labels(kind, name, "metadata.annotations", meta.get("annotations") or {})
    return kind, name


def is_secret_env(name: str) -> bool:
    return name in SECRET_ENV_NAMES or bool(SECRET_ENV.search(name))


def check_env_vars(kind: str, name: Any, where: str, env: Any) -> None:
    """Plain environment variables (a runtime_env's ``env_vars``): no credential among them."""
    if not isinstance(env, Mapping):
        raise _fail(kind, name, where, "must be a mapping of strings")
    for key, value in env.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise _fail(kind, name, f"{where}.{key}", "names and values must be strings")
        if is_secret_env(key):
            raise _fail(kind, name, f"{where}.{key}", "carries a credential in plain text; give it to the pods from a "
                                                      "Kubernetes Secret (ClusterTarget.secrets) instead")


def check_pod_template(kind: str, name: Any, where: str, template: Any) -> None:
    if not isinstance(template, Mapping) or not isinstance(template.get("spec"), Mapping):
        raise _fail(kind, name, where, "needs a pod template with a spec")
    containers = template["spec"].get("containers")
    if not isinstance(containers, list) or not containers:
        raise _fail(kind, name, f"{where}.spec.containers", "needs at least one container")
    check_labels(kind, name, f"{where}.metadata.labels", (template.get("metadata") or {}).get("labels") or {})
    for i, container in enumerate(containers):
        at = f"{where}.spec.containers[{i}]"
        if not isinstance(container.get("name"), str) or not DNS_1123_LABEL.match(container["name"]):
            raise _fail(kind, name, f"{at}.name", f"{container.get('name')!r} is not a DNS-1123 label")
        if not isinstance(container.get("image"), str) or not container["image"]:
            raise _fail(kind, name, f"{at}.image", "is required")
        resources = container.get("resources") or {}
        for part in ("requests", "limits"):
            for resource, quantity in (resources.get(part) or {}).items():
                check_quantity(kind, name, f"{at}.resources.{part}.{resource}", quantity)
        gpu_limit = (resources.get("limits") or {}).get("nvidia.com/gpu")
        gpu_request = (resources.get("requests") or {}).get("nvidia.com/gpu")
        for quantity in (gpu_limit, gpu_request):
            if quantity is not None and not str(quantity).isdigit():
                raise _fail(kind, name, f"{at}.resources", f"nvidia.com/gpu must be a whole number, got {quantity!r}")
        if gpu_request is not None and str(gpu_request) != str(gpu_limit):
            raise _fail(kind, name, f"{at}.resources", "an extended resource (nvidia.com/gpu) needs requests equal to "
                                                       "limits")
        for j, var in enumerate(container.get("env") or []):
            var_name = var.get("name")
            if not isinstance(var_name, str) or not _ENV_NAME.match(var_name):
                raise _fail(kind, name, f"{at}.env[{j}].name", f"{var_name!r} is not an environment variable name")
            if "value" in var and "valueFrom" in var:
                raise _fail(kind, name, f"{at}.env[{j}]", "sets both value and valueFrom")
            if is_secret_env(var_name) and "secretKeyRef" not in (var.get("valueFrom") or {}):
                raise _fail(kind, name, f"{at}.env[{j}] ({var_name})", "a credential must come from a Secret "
                                                                      "(valueFrom.secretKeyRef), never a value")


def check_ray_cluster_spec(kind: str, name: Any, where: str, spec: Any) -> None:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("headGroupSpec"), Mapping):
        raise _fail(kind, name, f"{where}.headGroupSpec", "is required")
    check_pod_template(kind, name, f"{where}.headGroupSpec.template", spec["headGroupSpec"].get("template"))
    autoscaling = bool(spec.get("enableInTreeAutoscaling"))
    seen: set[str] = set()
    for i, group in enumerate(spec.get("workerGroupSpecs") or []):
        at = f"{where}.workerGroupSpecs[{i}]"
        group_name = group.get("groupName")
        if not isinstance(group_name, str) or not DNS_1123_LABEL.match(group_name):
            raise _fail(kind, name, f"{at}.groupName", f"{group_name!r} is not a DNS-1123 label")
        if group_name in seen:
            raise _fail(kind, name, f"{at}.groupName", f"{group_name!r} is used by two worker groups")
        seen.add(group_name)
        check_pod_template(kind, name, f"{at}.template", group.get("template"))
        low, high, replicas = group.get("minReplicas"), group.get("maxReplicas"), group.get("replicas")
        if not autoscaling and not (isinstance(low, int) and isinstance(high, int)):
            raise _fail(kind, name, at, "without autoscaling KubeRay needs minReplicas and maxReplicas")
        if isinstance(low, int) and isinstance(high, int):
            if not 0 <= low <= high:
                raise _fail(kind, name, at, f"needs 0 <= minReplicas <= maxReplicas, got {low}..{high}")
            if isinstance(replicas, int) and not low <= replicas <= high:
                raise _fail(kind, name, at, f"replicas {replicas} is outside minReplicas..maxReplicas {low}..{high}")


def _check_queue_labels(kind: str, name: Any, labels: Mapping[str, str]) -> None:
    kueue = KUEUE_QUEUE_LABEL in labels
    if KUEUE_PRIORITY_LABEL in labels and not kueue:
        raise _fail(kind, name, f"metadata.labels.{KUEUE_PRIORITY_LABEL}", f"needs the {KUEUE_QUEUE_LABEL} label")
    volcano = VOLCANO_QUEUE_LABEL in labels or labels.get(SCHEDULER_LABEL) == "volcano"
    if kueue and volcano:
        raise _fail(kind, name, "metadata.labels", "queues with Kueue and with Volcano at once; choose one")
    if VOLCANO_QUEUE_LABEL in labels and labels.get(SCHEDULER_LABEL) != "volcano":
        raise _fail(kind, name, f"metadata.labels.{SCHEDULER_LABEL}", "a Volcano queue needs ray.io/scheduler-name: "
                                                                      "volcano (and the operator's "
                                                                      "--batch-scheduler=volcano)")


def _runtime_env(kind: str, name: Any, where: str, text: Any) -> dict[str, Any]:
    try:
        env = yaml.safe_load(text) if text else {}
    except yaml.YAMLError as exc:
        raise _fail(kind, name, where, f"is not YAML: {exc}") from exc
    if not isinstance(env, dict):
        raise _fail(kind, name, where, "must be a YAML mapping")
    check_env_vars(kind, name, f"{where}.env_vars", env.get("env_vars") or {})
    return env


def validate_rayjob(manifest: Mapping[str, Any]) -> None:
    kind, name = check_metadata(manifest)
    spec = manifest.get("spec")
    if not isinstance(spec, Mapping):
        raise _fail(kind, name, "spec", "is required")
    if not isinstance(spec.get("entrypoint"), str) or not spec["entrypoint"].strip():
        raise _fail(kind, name, "spec.entrypoint", "is required")
    has_cluster, has_selector = "rayClusterSpec" in spec, bool(spec.get("clusterSelector"))
    if has_cluster == has_selector:
        raise _fail(kind, name, "spec", "set exactly one of rayClusterSpec and clusterSelector")
    if spec.get("suspend") and not spec.get("shutdownAfterJobFinishes"):
        raise _fail(kind, name, "spec.suspend", "KubeRay suspends a RayJob only with shutdownAfterJobFinishes: true")
    labels = (manifest.get("metadata") or {}).get("labels") or {}
    _check_queue_labels(kind, name, labels)
    if has_cluster:
        check_ray_cluster_spec(kind, name, "spec.rayClusterSpec", spec["rayClusterSpec"])
    if KUEUE_QUEUE_LABEL in labels:
        if not spec.get("shutdownAfterJobFinishes"):
            raise _fail(kind, name, "spec.shutdownAfterJobFinishes", "Kueue admits a RayJob only when it deletes its "
                                                                     "cluster at the end (true)")
        if has_selector or not has_cluster:
            raise _fail(kind, name, "spec.clusterSelector", "Kueue queues RayJobs that bring their own cluster "
                                                            "(rayClusterSpec), not ones that select one")
        groups = spec["rayClusterSpec"].get("workerGroupSpecs") or []
        if len(groups) > KUEUE_MAX_WORKER_GROUPS:
            raise _fail(kind, name, "spec.rayClusterSpec.workerGroupSpecs", f"Kueue takes at most "
                                                                            f"{KUEUE_MAX_WORKER_GROUPS} worker groups")
        if any(g.get("groupName") == "head" for g in groups):
            raise _fail(kind, name, "spec.rayClusterSpec.workerGroupSpecs", "Kueue reserves the group name 'head'")
        if spec.get("suspend") is not True:
            raise _fail(kind, name, "spec.suspend", "a RayJob queued by Kueue is created suspended (true): Kueue "
                                                    "un-suspends it when it admits it")
    _runtime_env(kind, name, "spec.runtimeEnvYAML", spec.get("runtimeEnvYAML"))


def validate_rayservice(manifest: Mapping[str, Any]) -> None:
    kind, name = check_metadata(manifest)
    spec = manifest.get("spec")
    if not isinstance(spec, Mapping):
        raise _fail(kind, name, "spec", "is required")
    _check_queue_labels(kind, name, (manifest.get("metadata") or {}).get("labels") or {})
    check_ray_cluster_spec(kind, name, "spec.rayClusterConfig", spec.get("rayClusterConfig"))
    try:
        serve = yaml.safe_load(spec.get("serveConfigV2") or "")
    except yaml.YAMLError as exc:
        raise _fail(kind, name, "spec.serveConfigV2", f"is not YAML: {exc}") from exc
    if not isinstance(serve, dict) or not isinstance(serve.get("applications"), list) or not serve["applications"]:
        raise _fail(kind, name, "spec.serveConfigV2", "needs a list of applications")
    host = str((serve.get("http_options") or {}).get("host", ""))
    if is_loopback_host(host):
        raise _fail(kind, name, "spec.serveConfigV2.http_options.host", f"{host!r} listens on the pod's loopback "
                                                                        "only: nothing outside the pod reaches it "
                                                                        "(use 0.0.0.0)")
    loopback = loopback_references(serve)
    if loopback:
        raise _fail(kind, name, "spec.serveConfigV2", f"{loopback[0]} names the loopback interface; inside a pod "
                                                      "that is the pod itself: use in-cluster addresses")
    for i, app in enumerate(serve["applications"]):
        if not isinstance(app, dict) or not app.get("import_path") or not app.get("name"):
            raise _fail(kind, name, f"spec.serveConfigV2.applications[{i}]", "needs a name and an import_path")
        check_env_vars(kind, name, f"spec.serveConfigV2.applications[{i}].runtime_env.env_vars",
                       (app.get("runtime_env") or {}).get("env_vars") or {})


def validate_kueue(manifest: Mapping[str, Any]) -> None:
    kind = str(manifest.get("kind"))
    kind, name = check_metadata(manifest, namespaced=kind == "LocalQueue")
    if kind == "WorkloadPriorityClass":
        value = manifest.get("value")
        if not isinstance(value, int) or isinstance(value, bool) or not -(2**31) <= value < 2**31:
            raise _fail(kind, name, "value", f"must be a 32-bit integer, got {value!r}")
        return
    spec = manifest.get("spec")
    if not isinstance(spec, Mapping):
        raise _fail(kind, name, "spec", "is required")
    if kind == "LocalQueue":
        if not isinstance(spec.get("clusterQueue"), str) or not DNS_1123_SUBDOMAIN.match(spec["clusterQueue"]):
            raise _fail(kind, name, "spec.clusterQueue", "must name a ClusterQueue")
    elif kind == "ClusterQueue":
        groups = spec.get("resourceGroups") or []
        if not groups:
            raise _fail(kind, name, "spec.resourceGroups", "needs at least one resource group (quotas)")
        for i, group in enumerate(groups):
            covered = list(group.get("coveredResources") or [])
            for j, flavor in enumerate(group.get("flavors") or []):
                at = f"spec.resourceGroups[{i}].flavors[{j}]"
                names = [r.get("name") for r in flavor.get("resources") or []]
                if sorted(map(str, names)) != sorted(map(str, covered)):
                    raise _fail(kind, name, at, f"quotas {names} must cover exactly {covered}")
                for k, resource in enumerate(flavor.get("resources") or []):
                    check_quantity(kind, name, f"{at}.resources[{k}].nominalQuota", resource.get("nominalQuota"))
    elif kind == "ResourceFlavor":
        check_labels(kind, name, "spec.nodeLabels", spec.get("nodeLabels") or {})


def validate_configmap(manifest: Mapping[str, Any]) -> None:
    kind, name = check_metadata(manifest)
    data = manifest.get("data") or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise _fail(kind, name, "data", "must map file names to strings")
    if sum(len(v.encode()) for v in data.values()) > 1_000_000:
        raise _fail(kind, name, "data", "a ConfigMap holds at most 1 MiB")


def validate_inference_service(manifest: Mapping[str, Any]) -> None:
    """KServe's own rules live with the serving code that builds the manifest (by model format)."""
    check_metadata(manifest)
    model = ((manifest.get("spec") or {}).get("predictor") or {}).get("model") or {}
    if (model.get("modelFormat") or {}).get("name") == "huggingface":
        from workbench.serving.vllm import validate_kserve_llm_manifest

        validate_kserve_llm_manifest(manifest)
    else:
        from workbench.serving.kserve import validate_inference_service as validate_tabular

        validate_tabular(dict(manifest))
    limits = (model.get("resources") or {}).get("limits") or {}
    requests = (model.get("resources") or {}).get("requests") or {}
    kind, name = "InferenceService", (manifest.get("metadata") or {}).get("name")
    for quantity in (limits.get("nvidia.com/gpu"), requests.get("nvidia.com/gpu")):
        if quantity is not None and not str(quantity).isdigit():
            raise _fail(kind, name, "spec.predictor.model.resources", f"nvidia.com/gpu must be a whole number, got "
                                                                      f"{quantity!r}")
    if "nvidia.com/gpu" in requests and str(requests["nvidia.com/gpu"]) != str(limits.get("nvidia.com/gpu")):
        raise _fail(kind, name, "spec.predictor.model.resources", "nvidia.com/gpu needs requests equal to limits")


_VALIDATORS = {
    ("serving.kserve.io/v1beta1", "InferenceService"): validate_inference_service,
    (RAY_API, "RayJob"): validate_rayjob,
    (RAY_API, "RayService"): validate_rayservice,
    (KUEUE_API, "ResourceFlavor"): validate_kueue,
    (KUEUE_API, "ClusterQueue"): validate_kueue,
    (KUEUE_API, "LocalQueue"): validate_kueue,
    (KUEUE_API, "WorkloadPriorityClass"): validate_kueue,
    ("v1", "ConfigMap"): validate_configmap,
}


def validate_manifest(manifest: Mapping[str, Any]) -> None:
    """InvalidInput naming the first field (and rule) a cluster would reject; see ``OPERATOR_RULES``."""
    if not isinstance(manifest, Mapping):
        raise InvalidInput(f"a manifest must be a mapping, got {type(manifest).__name__}")
    key = (manifest.get("apiVersion"), manifest.get("kind"))
    validator = _VALIDATORS.get(key)  # type: ignore[arg-type]
    if validator is None:
        raise InvalidInput(f"no validator for {key[1]} {key[0]}; known: {sorted(k for _, k in _VALIDATORS)}")
    validator(manifest)
    name = (manifest.get("metadata") or {}).get("name")
    loopback = loopback_references({k: v for k, v in manifest.items() if k != "status"})
    if loopback:
        raise _fail(str(key[1]), name, loopback[0].split("=")[0], f"points at the loopback interface "
                                                                   f"({loopback[0]}); inside a pod that is the pod "
                                                                   "itself: use the in-cluster address")
    try:
        if yaml.safe_load(yaml.safe_dump(dict(manifest))) != dict(manifest):
            raise InvalidInput(f"{key[1]} {name}: does not round-trip through YAML")
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{key[1]} {name}: is not plain YAML data: {exc}") from exc
