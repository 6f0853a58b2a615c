"""The logic behind the REST API, testable without HTTP (the dask-labextension way).

One :class:`WorkbenchManager` per Jupyter server: it holds the project's Settings, the server root, the
template library and the stage runner, and turns each request into a call of a domain module. Methods
are blocking (they talk to MLflow, Ray, the file system); the handlers run them in a thread. Inputs are
checked here, so the same errors (InvalidInput, NotFound, ServiceUnavailable) come back whether the
caller is a handler, a test or a notebook.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.config import Settings, find_project_dir, load_settings
from workbench.errors import InvalidInput, NotFound, ServiceUnavailable
from workbench.lineage import STAGES, latest_record
from workbench.pipeline import NOTEBOOKS
from workbench.server.paths import resolve_under
from workbench.server.stage_runs import StageRunner
from workbench.server.templates import STAGE_TITLES, TemplateLibrary, default_template_dir
from workbench.services import SERVICES, ServiceManager

MAX_RUNS = 200
SERVICES_TTL_S = 2.0
MAX_LOG_CHARS = 200_000
_HEADLINE_KEYS = {
    "data": ("dataset_name", "dataset_version"),
    "features": ("feature_service", "training_frame_version"),
    "train": ("run_id", "job_id", "model_uri"),
    "registry": ("model_name", "model_version", "alias", "model_uri"),
    "deploy": ("deployment", "endpoint", "model_version", "url"),
    "monitor": ("alerts", "report_path"),
}


def _plain(value: Any, depth: int = 0) -> Any:
    """JSON-safe copy of a record's value (NaN and infinities become None; deep values are cut)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if depth > 4:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value[:200]]
    return str(value)


def _check_service(name: str) -> str:
    if name not in SERVICES:
        raise InvalidInput(f"unknown service {name!r}; services are {list(SERVICES)}")
    return name


def _positive(value: Any, name: str, most: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be an integer, got {value!r}") from exc
    if not 1 <= number <= most:
        raise InvalidInput(f"{name} must be within 1..{most}, got {number}")
    return number


def _job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not job_id or len(job_id) > 200 or not all(
            c.isalnum() or c in "-_." for c in job_id):
        raise InvalidInput(f"job id {job_id!r} must be letters, digits, '-', '_' or '.'")
    return job_id


class WorkbenchManager:
    """Everything the Workbench sidebar asks the server for."""

    def __init__(self, settings: Settings, root_dir: Path, template_dir: Path | None = None) -> None:
        self.settings = settings
        self.root = Path(root_dir).resolve()
        self.templates = TemplateLibrary(self.root, template_dir or default_template_dir())
        self.runner = StageRunner(self.root)
        self._services_lock = threading.Lock()
        self._services_cache: list[dict[str, Any]] = []
        self._services_at = -math.inf

    @classmethod
    def for_server(cls, root_dir: str | Path, settings: Settings | None = None) -> WorkbenchManager:
        """The manager of a Jupyter server rooted at ``root_dir``: the project is the nearest folder holding
        workbench.toml at or above it (or WORKBENCH_HOME), unless ``settings`` are given."""
        root = Path(root_dir).expanduser().resolve()
        return cls(settings or load_settings(find_project_dir(root)), root)

    # projects ----------------------------------------------------------------------------------
    def project_settings(self, project: str = "") -> Settings:
        """The server's Settings, or those of a project folder under the root (one holding workbench.toml,
        as 'New lifecycle project' creates): its own lineage and runs, the same services."""
        if not project:
            return self.settings
        folder = resolve_under(self.root, project)
        if not (folder / "workbench.toml").is_file():
            raise NotFound(f"{project!r} is not a workbench project (no workbench.toml in it)")
        return load_settings(folder, env={})

    # services ----------------------------------------------------------------------------------
    def services(self) -> list[dict[str, Any]]:
        """The services' health, cached for SERVICES_TTL_S: every open sidebar polls it, and each look asks
        MLflow and Ray over HTTP (a second under 20 concurrent polls on a busy machine without the cache)."""
        with self._services_lock:
            if time.monotonic() - self._services_at < SERVICES_TTL_S:
                return self._services_cache
            self._services_cache = self._services_now()
            self._services_at = time.monotonic()
            return self._services_cache

    def _services_now(self) -> list[dict[str, Any]]:
        out = []
        for status in ServiceManager(self.settings).status():
            out.append({"name": status.name, "url": status.url, "healthy": status.healthy,
                        "managed": status.managed, "pid": status.pid, "detail": status.detail})
        return out

    def links(self) -> dict[str, str]:
        return {"mlflow": self.settings.mlflow_uri, "ray_dashboard": self.settings.ray_address}

    def start_service(self, name: str) -> list[dict[str, Any]]:
        _check_service(name)
        if self.settings.profile != "local":
            raise InvalidInput(f"the {self.settings.profile} profile points at existing services: nothing to start")
        ServiceManager(self.settings).up((name,))
        self._services_at = -math.inf
        return self.services()

    def stop_service(self, name: str) -> list[dict[str, Any]]:
        _check_service(name)
        if self.settings.profile != "local":
            raise InvalidInput(f"the {self.settings.profile} profile points at existing services: nothing to stop")
        ServiceManager(self.settings).down((name,))
        self._services_at = -math.inf
        return self.services()

    # stages ------------------------------------------------------------------------------------
    def stage_summaries(self, project: str = "") -> list[dict[str, Any]]:
        """Each stage with its latest record's outputs (what the sidebar shows) and any run in progress."""
        settings = self.project_settings(project)
        running = self.runner.running()
        out = []
        for stage in STAGES:
            summary: dict[str, Any] = {"stage": stage, "title": STAGE_TITLES[stage], "notebook": NOTEBOOKS[stage],
                                       "status": "never run", "recorded_at": "", "outputs": {}, "headline": {},
                                       "record_id": "", "active_run": None}
            try:
                record = latest_record(settings, stage)
            except NotFound:
                record = None
            if record is not None:
                outputs = _plain(record.outputs)
                summary.update(status="done", recorded_at=record.created_at, outputs=outputs,
                               record_id=record.record_id,
                               headline={k: outputs[k] for k in _HEADLINE_KEYS[stage] if k in outputs})
            active = running.get(stage)
            if active is not None and active.project == project:
                summary["status"] = active.status
                summary["active_run"] = active.run_id
            out.append(summary)
        return out

    # templates ---------------------------------------------------------------------------------
    def list_templates(self) -> list[dict[str, str]]:
        return [t.to_dict() for t in self.templates.templates()]

    def copy_template(self, stage: str, folder: str = "") -> dict[str, str]:
        return {"path": self.templates.copy(stage, folder)}

    def new_project(self, name: str, folder: str = "") -> dict[str, Any]:
        config = self.settings.project_dir / "workbench.toml"
        return self.templates.new_project(name, folder, config.read_text() if config.is_file() else "")

    # stage runs --------------------------------------------------------------------------------
    def start_stage_run(self, stage: str, parameters: Mapping[str, Any] | None = None,
                        project: str = "") -> dict[str, Any]:
        return self.runner.start(self.project_settings(project), stage, parameters, project).to_dict()

    def stage_run(self, run_id: str) -> dict[str, Any]:
        return self.runner.get(run_id).to_dict()

    def stage_runs(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.runner.list()]

    # jobs --------------------------------------------------------------------------------------
    def jobs(self) -> list[dict[str, Any]]:
        """Every submitted Ray job, the workbench's and anyone else's (the entrypoint is left out: a command
        line may carry a token)."""
        from workbench.training.capacity import list_ray_jobs

        return [{"job_id": j.job_id, "status": j.status, "run_id": j.run_id, "experiment_id": j.experiment_id,
                 "trainer": j.trainer, "kind": j.kind, "epochs": j.epochs, "start_time": j.start_time,
                 "end_time": j.end_time, "message": j.message, "workbench": j.workbench}
                for j in list_ray_jobs(self.settings)]

    def job_logs(self, job_id: str) -> dict[str, str]:
        from workbench.training import job_logs

        text = job_logs(self.settings, _job_id(job_id))
        return {"job_id": job_id, "log": text[-MAX_LOG_CHARS:]}

    def stop_job(self, job_id: str) -> dict[str, str]:
        from workbench.training import stop_job

        return {"job_id": job_id, "status": stop_job(self.settings, _job_id(job_id), wait=False)}

    # runs --------------------------------------------------------------------------------------
    def runs(self, limit: Any = 50, experiment: str = "") -> dict[str, Any]:
        from mlflow.exceptions import MlflowException

        from workbench.registry import fetch_runs
        from workbench.training.cluster import check_mlflow
        from workbench.training.tracking import tracking_client

        limit = _positive(limit, "limit", MAX_RUNS)
        name = experiment or self.settings.experiment
        if not isinstance(name, str) or len(name) > 500:
            raise InvalidInput("experiment must be a name of at most 500 characters")
        check_mlflow(self.settings)  # fails fast instead of the MLflow client's minutes of retries
        client = tracking_client(self.settings.mlflow_uri)
        try:
            found = client.get_experiment_by_name(name)
        except MlflowException as exc:
            raise ServiceUnavailable(f"MLflow at {self.settings.mlflow_uri} did not answer: {exc}") from exc
        if found is None:
            return {"experiment": name, "runs": []}
        runs = fetch_runs(client, [found.experiment_id], max_results=limit)
        return {"experiment": name, "experiment_id": found.experiment_id, "runs": [
            {"run_id": r.info.run_id, "run_name": r.info.run_name, "status": r.info.status,
             "start_time": r.info.start_time, "end_time": r.info.end_time,
             "metrics": _plain(dict(r.data.metrics)), "tags": {k: v for k, v in r.data.tags.items()
                                                               if k.startswith("workbench.")}}
            for r in runs]}

    # deployments -------------------------------------------------------------------------------
    def deployments(self) -> list[dict[str, Any]]:
        from workbench.serving.deployments import list_deployments

        return [_plain(d.to_dict()) for d in list_deployments(self.settings)]

    def shutdown(self) -> None:
        self.runner.shutdown()
