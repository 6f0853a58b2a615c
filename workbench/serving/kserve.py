"""The same deployment as a KServe ``InferenceService`` manifest, for a Kubernetes cluster.

KServe serves MLflow models with its ``mlflow`` model format (the MLServer runtime) straight from the
model version's artifact location. Replicas, CPU/GPU requests and autoscaling map onto the predictor.
The manifest is validated here (names, quantities, the fields KServe requires) and written as YAML; it
is not applied: ``kubectl apply -f`` it where KServe runs. Online features are the model's own concern
there (a KServe transformer calling Feast); the manifest says so in an annotation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import InvalidInput

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
_DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CPU = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$")
_MEMORY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_STORAGE = re.compile(r"^(s3|gs|https?|pvc|hdfs|webhdfs|oci|azure|file)://")


def _cpu(value: float) -> str:
    return f"{int(round(value * 1000))}m"


def inference_service(name: str, storage_uri: str, *, namespace: str = "default", replicas: int = 1,
                      max_replicas: int | None = None, num_cpus: float = 0.5, num_gpus: int = 0,
                      memory: str = "1Gi", model_version: str = "", feature_service: str = "",
                      service_account: str | None = None) -> dict[str, Any]:
    """An ``InferenceService`` for an MLflow model at ``storage_uri`` (its artifact location)."""
    manifest: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "workbench", "workbench/model-version": str(model_version)},
            "annotations": {"workbench/feature-service": feature_service,
                            "workbench/note": "requests must carry the model's input columns; look them up in "
                                              "Feast in a transformer or the client"},
        },
        "spec": {
            "predictor": {
                "minReplicas": replicas,
                "maxReplicas": max_replicas or replicas,
                "model": {
                    "modelFormat": {"name": "mlflow"},
                    "protocolVersion": "v2",
                    "storageUri": storage_uri,
                    "resources": {
                        "requests": {"cpu": _cpu(num_cpus), "memory": memory},
                        "limits": {"cpu": _cpu(max(num_cpus, 1.0)), "memory": memory},
                    },
                },
            }
        },
    }
    if num_gpus:
        for key in ("requests", "limits"):
            manifest["spec"]["predictor"]["model"]["resources"][key]["nvidia.com/gpu"] = str(num_gpus)
    if service_account:
        manifest["spec"]["predictor"]["serviceAccountName"] = service_account
    validate_inference_service(manifest)
    return manifest


def _need(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise InvalidInput(f"InferenceService {where}: {message}")


def check_common_fields(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Check what every InferenceService needs (kind, names, storage URI, resource quantities, plain YAML);
    returns ``spec.predictor.model`` for the runtime-specific checks."""
    _need(manifest.get("apiVersion") == API_VERSION, "apiVersion", f"must be {API_VERSION}")
    _need(manifest.get("kind") == KIND, "kind", f"must be {KIND}")
    meta = manifest.get("metadata") or {}
    for key in ("name", "namespace"):
        _need(bool(_DNS_1123.match(str(meta.get(key, "")))), f"metadata.{key}",
              f"{meta.get(key)!r} is not a DNS-1123 label (lower-case letters, digits, '-', at most 63)")
    model = dict(((manifest.get("spec") or {}).get("predictor") or {}).get("model") or {})
    _need(bool(_STORAGE.match(str(model.get("storageUri", "")))), "spec.predictor.model.storageUri",
          f"{model.get('storageUri')!r} is not a storage URI KServe can fetch (s3://, gs://, pvc://, https://, …)")
    for key, values in (model.get("resources") or {}).items():
        _need(key in ("requests", "limits"), f"spec.predictor.model.resources.{key}", "must be requests or limits")
        for resource, quantity in values.items():
            where = f"spec.predictor.model.resources.{key}.{resource}"
            if resource == "cpu":
                _need(bool(_CPU.match(str(quantity))), where, f"{quantity!r} is not a CPU quantity")
            elif resource == "memory":
                _need(bool(_MEMORY.match(str(quantity))), where, f"{quantity!r} is not a memory quantity")
            elif resource == "nvidia.com/gpu":
                _need(str(quantity).isdigit(), where, "GPUs are whole numbers")
    yaml.safe_load(yaml.safe_dump(dict(manifest)))  # round-trips as plain YAML
    return model


def validate_inference_service(manifest: dict[str, Any]) -> None:
    """InvalidInput naming the first field KServe would reject (MLflow format)."""
    model = check_common_fields(manifest)
    predictor = (manifest.get("spec") or {}).get("predictor") or {}
    low, high = predictor.get("minReplicas"), predictor.get("maxReplicas")
    _need(isinstance(low, int) and low >= 0, "spec.predictor.minReplicas", "must be an integer >= 0")
    _need(isinstance(high, int) and high >= max(1, low or 0), "spec.predictor.maxReplicas",
          "must be an integer >= minReplicas and >= 1")
    _need((model.get("modelFormat") or {}).get("name") == "mlflow", "spec.predictor.model.modelFormat.name",
          "must be 'mlflow'")


def write_manifest(manifest: dict[str, Any], path: str | Path) -> Path:
    """Validate and write ``manifest`` as YAML; returns the path."""
    validate_inference_service(manifest)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return target
