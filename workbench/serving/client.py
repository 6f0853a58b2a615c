"""Calling a deployment over HTTP, the way any client would, with its errors made readable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import requests

from workbench.config import Settings
from workbench.errors import InvalidInput, ServiceUnavailable, WorkbenchError
from workbench.serving.prediction_log import check_deployment_name

PROTOCOLS = ("predict", "invocations", "v2")


def endpoint_url(settings: Settings, name: str, protocol: str = "predict") -> str:
    """Where to ``POST`` scoring requests for ``protocol`` (``predict``, ``invocations`` or ``v2``)."""
    base = f"{settings.serve_url}/{check_deployment_name(name)}"
    if protocol == "predict":
        return f"{base}/predict"
    if protocol == "invocations":
        return f"{base}/invocations"
    if protocol == "v2":
        return f"{base}/v2/models/{name}/infer"
    raise InvalidInput(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")


def v2_request(instances: Sequence[Mapping[str, Any]], datatypes: Mapping[str, str] | None = None,
               request_id: str | None = None) -> dict[str, Any]:
    """Rows as an Open Inference Protocol request: one input per column, the form MLServer takes for a
    pandas model (``{"parameters": {"content_type": "pd"}}``)."""
    columns: list[str] = []
    for instance in instances:
        columns += [k for k in instance if k not in columns]
    inputs = []
    for column in columns:
        data = [instance.get(column) for instance in instances]
        present = [v for v in data if v is not None]
        guess = ("BOOL" if present and all(isinstance(v, bool) for v in present) else
                 "INT64" if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present) else
                 "FP64" if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)
                 else "BYTES")
        inputs.append({"name": column, "shape": [len(data)], "datatype": (datatypes or {}).get(column, guess),
                       "data": data})
    body: dict[str, Any] = {"inputs": inputs, "parameters": {"content_type": "pd"}}
    if request_id:
        body["id"] = request_id
    return body


def predict(settings: Settings, name: str, instances: Sequence[Mapping[str, Any]], *, protocol: str = "predict",
            timeout_s: float | None = None, session: requests.Session | None = None) -> dict[str, Any]:
    """Score ``instances`` (one dict of request fields per row) on deployment ``name``; returns the body.

    ``protocol="predict"`` (``{"instances": [...]}``, answers carry the task's outputs per row),
    ``"invocations"`` (MLflow's ``dataframe_records``; ``{"predictions": <raw predict output>}``) or
    ``"v2"`` (the Open Inference Protocol; ``{"outputs": [...]}``). A 4xx becomes InvalidInput carrying the
    server's message (which names the bad field); a 5xx or no answer becomes ServiceUnavailable.
    """
    url = endpoint_url(settings, name, protocol)
    body: dict[str, Any]
    if protocol == "predict":
        body = {"instances": list(instances)}
    elif protocol == "invocations":
        body = {"dataframe_records": list(instances)}
    else:
        body = v2_request(instances)
    http = session or requests
    try:
        response = http.post(url, json=body, timeout=timeout_s or max(30.0, settings.request_timeout_s))
    except requests.RequestException as exc:
        raise ServiceUnavailable(f"deployment {name!r} at {url} is not answering ({type(exc).__name__}); "
                                 "is it deployed? see workbench.serving.list_deployments") from exc
    return _body(response, name, "outputs" if protocol == "v2" else "predictions")


def request_fields(settings: Settings, name: str, *, timeout_s: float | None = None) -> dict[str, Any]:
    """What an instance of deployment ``name`` carries: ``{"fields": [{name, type, required, nullable}],
    "optional": [...]}``, read from the replica that serves it."""
    url = f"{settings.serve_url}/{check_deployment_name(name)}/"
    try:
        response = requests.get(url, timeout=timeout_s or max(30.0, settings.request_timeout_s))
    except requests.RequestException as exc:
        raise ServiceUnavailable(f"deployment {name!r} at {url} is not answering ({type(exc).__name__})") from exc
    if response.status_code == 404:
        raise InvalidInput(f"no deployment {name!r} answers at {url}")
    if response.status_code >= 400:
        raise ServiceUnavailable(f"deployment {name!r} failed ({response.status_code}): {response.text[-300:]}")
    return dict(response.json().get("request") or {})


def _body(response: requests.Response, name: str, key: str = "predictions") -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text[-500:]}
    if response.status_code == 404:
        said = " ".join(str(body.get("error") or body.get("detail") or body).split())[:200]
        raise InvalidInput(f"no deployment {name!r} answers at {response.url} (the ingress said: {said})")
    if 400 <= response.status_code < 500:
        reason = body.get("error") or body.get("message") or body.get("detail") or body
        error = InvalidInput(f"deployment {name!r} refused the request ({response.status_code}): {reason}")
        error.field = body.get("field")  # type: ignore[attr-defined]
        raise error
    if response.status_code >= 500:
        raise ServiceUnavailable(f"deployment {name!r} failed ({response.status_code}): {body.get('error', body)}")
    if not isinstance(body, dict) or key not in body:
        raise WorkbenchError(f"deployment {name!r} answered without {key}: {body!r}")
    return body
