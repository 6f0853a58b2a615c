"""Serving: registered models on Ray Serve, the prediction log, KServe manifests.

The stage in a few calls (``05_deploy.ipynb`` does exactly this)::

    from workbench.serving import deploy, predict, update_deployment, rollback, list_deployments
    info = deploy(settings, "models:/fraud-detector@champion", name="fraud")   # Ray Serve, health-checked
    predict(settings, "fraud", [{"user_id": 7, "merchant_id": 12, "amount": 31.5}])
    request_fields(settings, "fraud")                                          # what an instance carries
    update_deployment(settings, "fraud", "models:/fraud-detector/4")          # in place, no failed request
    rollback(settings, "fraud")
    read_predictions(settings, "fraud")                                        # every prediction served

Any registered MLflow pyfunc model with a signature is served: the request fields come from its signature
(plus its feature service's keys when it has one), the answers from its task (:mod:`.contract`). Each
deployment speaks ``/predict``, MLflow's ``/invocations`` and the Open Inference Protocol (``/v2/...``);
``predict(..., protocol="v2")`` sends the same rows in another form.

Nothing here imports Ray Serve until a replica does: the control plane is Serve's REST API.
"""

from workbench.serving.client import endpoint_url, predict, request_fields
from workbench.serving.deployments import (
    Autoscaling,
    DeploymentFailed,
    DeploymentInfo,
    Resources,
    delete_deployment,
    deploy,
    get_deployment,
    kserve_manifest,
    list_deployments,
    rollback,
    serve_details,
    update_deployment,
)
from workbench.serving.kserve import validate_inference_service, write_manifest
from workbench.serving.llm_client import ChatResult, chat, complete, llm_client, served_models
from workbench.serving.payload import PayloadError, RequestSchema, Row, parse_invocations, parse_payload, parse_v2
from workbench.serving.prediction_log import PredictionLogWriter, log_dir, read_predictions, wait_for_predictions
from workbench.serving.vllm import (
    LLMDeployment,
    VLLMOptions,
    deploy_llm,
    get_llm_deployment,
    kserve_llm_manifest,
    list_llm_deployments,
    ray_serve_llm_config,
    restart_llm,
    roll_llm,
    rollback_llm,
    stop_llm,
)

__all__ = [
    "Autoscaling",
    "ChatResult",
    "LLMDeployment",
    "VLLMOptions",
    "chat",
    "complete",
    "deploy_llm",
    "get_llm_deployment",
    "kserve_llm_manifest",
    "list_llm_deployments",
    "llm_client",
    "ray_serve_llm_config",
    "restart_llm",
    "roll_llm",
    "rollback_llm",
    "served_models",
    "stop_llm",
    "DeploymentFailed",
    "DeploymentInfo",
    "PayloadError",
    "RequestSchema",
    "Row",
    "PredictionLogWriter",
    "Resources",
    "delete_deployment",
    "deploy",
    "endpoint_url",
    "get_deployment",
    "kserve_manifest",
    "list_deployments",
    "log_dir",
    "parse_invocations",
    "parse_payload",
    "parse_v2",
    "predict",
    "read_predictions",
    "wait_for_predictions",
    "request_fields",
    "rollback",
    "serve_details",
    "update_deployment",
    "validate_inference_service",
    "write_manifest",
]
