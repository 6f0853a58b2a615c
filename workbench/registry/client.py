"""One way to reach MLflow for the registry: a health-checked client and MLflow errors made actionable.

``MlflowClient`` retries a dead server for minutes before it fails; asking ``/health`` first with the
settings' timeout turns that into a prompt :class:`ServiceUnavailable`. MLflow's own error codes are
mapped onto the workbench's kinds, so callers catch ``NotFound`` / ``InvalidInput``, never
``MlflowException``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound, ServiceUnavailable, WorkbenchError

_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "ENDPOINT_NOT_FOUND"}
_INVALID = {"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE", "RESOURCE_ALREADY_EXISTS"}


def _hint(settings: Settings) -> str:
    return ("run `workbench up`" if settings.profile == "local"
            else "check mlflow_uri in workbench.toml and that the server is reachable")


def check_mlflow(settings: Settings) -> None:
    """Raise ServiceUnavailable unless the tracking server answers ``/health`` within the timeout."""
    uri = settings.mlflow_uri
    if not uri.startswith(("http://", "https://")):
        return  # a file or database store has no server to ask
    try:
        requests.get(f"{uri}/health", timeout=settings.request_timeout_s).raise_for_status()
    except requests.RequestException as exc:
        raise ServiceUnavailable(f"MLflow at {uri} is not answering: {_hint(settings)} "
                                 f"({type(exc).__name__})") from exc


def mlflow_client(settings: Settings, *, check: bool = True) -> MlflowClient:
    """A client bound to ``settings.mlflow_uri`` (tracking and registry), checked for health first."""
    if check:
        check_mlflow(settings)
    return MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)


def translate(exc: MlflowException, doing: str) -> WorkbenchError:
    """The workbench error for an MLflow error that happened while ``doing`` something."""
    code = str(getattr(exc, "error_code", "") or "")
    message = exc.message if hasattr(exc, "message") else str(exc)
    text = f"{doing}: {message}"
    if code in _NOT_FOUND:
        return NotFound(text)
    if code in _INVALID:
        return InvalidInput(text)
    return ServiceUnavailable(text)


@contextmanager
def mlflow_errors(doing: str) -> Iterator[None]:
    """Re-raise any MlflowException inside the block as the matching workbench error."""
    try:
        yield
    except MlflowException as exc:
        raise translate(exc, doing) from exc


def experiment_ids(client: MlflowClient, settings: Settings, experiment: str | Sequence[str] | None) -> list[str]:
    """The ids of experiments given by name (``None``: the settings' experiment); NotFound names the gap."""
    names = [settings.experiment] if experiment is None else (
        [experiment] if isinstance(experiment, str) else list(experiment))
    if not names or not all(isinstance(n, str) and n for n in names):
        raise InvalidInput(f"experiment must be a name or a list of names, got {experiment!r}")
    ids: list[str] = []
    for name in names:
        with mlflow_errors(f"looking up experiment {name!r} at {settings.mlflow_uri}"):
            found = client.get_experiment_by_name(name)
        if found is None:
            raise NotFound(f"no MLflow experiment named {name!r} at {settings.mlflow_uri}; train a model first "
                           "(workbench.training) or pass experiment=<name>")
        ids.append(found.experiment_id)
    return ids
