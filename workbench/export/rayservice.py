"""A Serve application config as a KubeRay ``RayService``: the deployment ``deploy`` PUTs to a local
Ray head, run by the KubeRay operator instead.

The exporter takes the application config itself (what :func:`workbench.serving.deployments.app_config`
builds, or a whole Serve config with ``applications``), so it follows that function rather than
re-deriving it. What changes on the way: Serve listens on 0.0.0.0 inside the head pod (KubeRay's Service
routes to it); credentials leave the config and reach the pods as ``secretKeyRef`` (the target names the
Secret); and nothing in the config may point at the notebook's machine: no loopback URL, no local path
off the volumes the target shares. A worker group is sized from the deployments' replicas and
``ray_actor_options`` (one replica per worker pod), autoscaled when a deployment autoscales.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from workbench.errors import InvalidInput
from workbench.export import _pods
from workbench.export.target import ClusterTarget
from workbench.export.validate import RAY_API, is_secret_env, iter_strings, validate_manifest

SERVE_PORT = 8000


def _applications(app_config: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(app_config, Mapping) and "applications" in app_config:
        apps = app_config["applications"]
    elif isinstance(app_config, Mapping):
        apps = [app_config]
    else:
        apps = list(app_config)
    if not apps or not all(isinstance(a, Mapping) and a.get("import_path") for a in apps):
        raise InvalidInput("rayservice_manifest needs Serve application configs (each with a name and an "
                           "import_path), as workbench.serving.deployments.app_config builds them")
    return [copy.deepcopy(dict(a)) for a in apps]


def _strip_secrets(app: dict[str, Any], target: ClusterTarget) -> None:
    env = (app.get("runtime_env") or {}).get("env_vars") or {}
    # the variables a replica reads from its environment (app_config names them, never their values)
    needed = list((app.get("args") or {}).get("secret_variables") or [])
    for key in dict.fromkeys([*(k for k in env if is_secret_env(k)), *needed]):
        if key not in target.secrets:
            raise InvalidInput(f"application {app.get('name')!r} carries the credential {key} in its runtime_env; a "
                               "RayService must not hold it in plain text: name the Kubernetes Secret that holds it "
                               f"in ClusterTarget.secrets ({{{key!r}: SecretRef(name, key)}})")
        env.pop(key, None)  # the pods get it from the Secret; Ray workers inherit the pod's environment


def _replicas(app: Mapping[str, Any]) -> tuple[int, int, float, float, bool]:
    low = high = 0
    cpus = gpus = 0.0
    autoscaled = False
    for deployment in app.get("deployments") or []:
        options = deployment.get("ray_actor_options") or {}
        cpus = max(cpus, float(options.get("num_cpus", 1.0)))
        gpus = max(gpus, float(options.get("num_gpus", 0.0)))
        scaling = deployment.get("autoscaling_config")
        if scaling:
            autoscaled = True
            low += int(scaling.get("min_replicas", 1))
            high += int(scaling.get("max_replicas", 1))
        else:
            count = int(deployment.get("num_replicas", 1))
            low, high = low + count, high + count
    return low, high, cpus, gpus, autoscaled


def rayservice_manifest(app_config: Mapping[str, Any] | Sequence[Mapping[str, Any]], target: ClusterTarget, *,
                        name: str = "", serve_port: int = SERVE_PORT, head_cpus: int = 2,
                        head_memory_mib: int = 4096, worker_memory_mib: int = 4096) -> dict[str, Any]:
    """A validated RayService serving ``app_config`` (one application, a list, or a Serve config) on
    ``target``; ``name`` defaults to the (first) application's name."""
    apps = _applications(app_config)
    for app in apps:
        _strip_secrets(app, target)
        for path, value in iter_strings({"args": app.get("args"), "runtime_env": app.get("runtime_env")}):
            if value.startswith("/"):
                _pods.check_shared(target, f"application {app.get('name')!r} {path}", value)
    low = high = 0
    cpus = gpus = 0.0
    autoscaled = False
    for app in apps:
        a_low, a_high, a_cpus, a_gpus, a_auto = _replicas(app)
        low, high, cpus, gpus, autoscaled = low + a_low, high + a_high, max(cpus, a_cpus), max(gpus, a_gpus), \
            autoscaled or a_auto
    name = name or str(apps[0].get("name") or "")
    serve_config = {"http_options": {"host": "0.0.0.0", "port": serve_port}, "applications": apps}
    worker_cpus = max(1, _pods.whole(cpus))
    worker_gpus = _pods.whole(gpus)
    worker_params = {"num-cpus": str(worker_cpus)}
    if worker_gpus:
        worker_params["num-gpus"] = str(worker_gpus)
    head = _pods.pod_template(target, "ray-head", cpus=head_cpus, memory_mib=head_memory_mib,
                              ports=[*_pods.HEAD_PORTS, {"containerPort": serve_port, "name": "serve"}])
    worker = _pods.pod_template(target, "ray-worker", cpus=worker_cpus, memory_mib=worker_memory_mib,
                                gpus=worker_gpus)
    cluster: dict[str, Any] = {
        "rayVersion": target.ray_version,
        "enableInTreeAutoscaling": autoscaled,
        # replicas go to the workers; the head keeps Serve's controller and proxy (0-CPU actors)
        "headGroupSpec": {"rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"}, "template": head},
        "workerGroupSpecs": [{"groupName": "serve", "replicas": low, "minReplicas": low, "maxReplicas": max(high, 1),
                              "rayStartParams": worker_params, "template": worker}],
    }
    manifest = {
        "apiVersion": RAY_API,
        "kind": "RayService",
        "metadata": {"name": name, "namespace": target.namespace, "labels": {**target.labels, **_pods.MANAGED_BY}},
        "spec": {"serveConfigV2": yaml.safe_dump(serve_config, sort_keys=False), "rayClusterConfig": cluster},
    }
    validate_manifest(manifest)
    return manifest
