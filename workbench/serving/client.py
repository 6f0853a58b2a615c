"""Calling a deployment over HTTP, the way any client would, with its errors made readable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import requests

from workbench.config import Settings
from workbench.errors import InvalidInput, ServiceUnavailable, WorkbenchError
from workbench.serving.prediction_log import check_deployment_name


def endpoint_url(settings: Settings, name: str) -> str:
    """``POST`` scoring requests here."""
    return f"{settings.serve_url}/{check_deployment_name(name)}/predict"


def predict(settings: Settings, name: str, instances: Sequence[Mapping[str, Any]], *,
            timeout_s: float | None = None, session: requests.Session | None = None) -> dict[str, Any]:
    """Score ``instances`` on deployment ``name``; returns the response body.

    A 4xx becomes InvalidInput carrying the server's message (which names the bad field); a 5xx or
    no answer becomes ServiceUnavailable.
    """
    url = endpoint_url(settings, name)
    http = session or requests
    try:
        response = http.post(url, json={"instances": list(instances)},
                             timeout=timeout_s or max(30.0, settings.request_timeout_s))
    except requests.RequestException as exc:
        raise ServiceUnavailable(f"deployment {name!r} at {url} is not answering ({type(exc).__name__}); "
                                 "is it deployed? see workbench.serving.list_deployments") from exc
    return _body(response, name)


def _body(response: requests.Response, name: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text[-500:]}
    if response.status_code == 404:
        raise InvalidInput(f"no deployment {name!r} answers at {response.url}")
    if 400 <= response.status_code < 500:
        reason = body.get("error") or body.get("detail") or body
        error = InvalidInput(f"deployment {name!r} refused the request ({response.status_code}): {reason}")
        error.field = body.get("field")  # type: ignore[attr-defined]
        raise error
    if response.status_code >= 500:
        raise ServiceUnavailable(f"deployment {name!r} failed ({response.status_code}): {body.get('error', body)}")
    if not isinstance(body, dict) or "predictions" not in body:
        raise WorkbenchError(f"deployment {name!r} answered without predictions: {body!r}")
    return body
