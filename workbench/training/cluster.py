"""What the Ray cluster and the MLflow server can do for a job, asked before anything is submitted.

A GPU request on a CPU-only cluster would otherwise sit PENDING forever; an unreachable service would
otherwise surface as a connection traceback. Both become errors a data scientist can act on.
"""

from __future__ import annotations

import requests

from workbench.config import Settings
from workbench.errors import ServiceUnavailable


def _hint(settings: Settings) -> str:
    return ("run `workbench up`" if settings.profile == "local"
            else "check the cluster address in workbench.toml and that the service is reachable")


def check_ray(settings: Settings) -> None:
    """Raise ServiceUnavailable unless the Ray Jobs API answers at ``settings.ray_address``."""
    url = f"{settings.ray_address}/api/version"
    try:
        response = requests.get(url, timeout=settings.request_timeout_s)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise ServiceUnavailable(f"Ray at {settings.ray_address} is not answering: {_hint(settings)} "
                                 f"({type(exc).__name__})") from exc


def check_mlflow(settings: Settings) -> None:
    """Raise ServiceUnavailable unless the MLflow tracking server answers at ``settings.mlflow_uri``."""
    if not settings.mlflow_uri.startswith(("http://", "https://")):
        return  # a file or database store has no server to ask
    try:
        response = requests.get(f"{settings.mlflow_uri}/health", timeout=settings.request_timeout_s)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise ServiceUnavailable(f"MLflow at {settings.mlflow_uri} is not answering: {_hint(settings)} "
                                 f"({type(exc).__name__})") from exc


def cluster_gpus(settings: Settings) -> float:
    """Total GPUs of the cluster's live nodes (Ray's state API over the dashboard address).

    An autoscaling cluster may add GPU nodes on demand; this counts the nodes that exist now.
    """
    check_ray(settings)
    from ray.util.state import list_nodes

    try:
        nodes = list_nodes(address=settings.ray_address, timeout=int(max(1, settings.request_timeout_s)),
                           detail=True, raise_on_missing_output=False)
    except Exception as exc:  # noqa: BLE001 - the state API raises several kinds; all mean "cannot ask"
        raise ServiceUnavailable(f"cannot list the nodes of Ray at {settings.ray_address}: {exc}") from exc
    return float(sum((node.resources_total or {}).get("GPU", 0.0) for node in nodes if node.state == "ALIVE"))
