"""Thin tornado handlers of the REST API under ``<base_url>/workbench/api/``.

Each method is ``@tornado.web.authenticated`` and ``@authorized`` (resource ``workbench``), reads and
checks the shape of its input, then runs one :class:`~workbench.server.manager.WorkbenchManager` method
in a thread (``asyncio.to_thread``: MLflow, Ray and papermill block) and writes its JSON. The package's
errors become JSON answers with a status: InvalidInput 400, NotFound 404, ServiceUnavailable 503.
POSTs carry Jupyter's XSRF check (APIHandler's, unless the request comes with a token).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from workbench.errors import InvalidInput, NotFound, ServiceUnavailable, WorkbenchError
from workbench.server.manager import WorkbenchManager

AUTH_RESOURCE = "workbench"
MAX_BODY_BYTES = 1_000_000
_STATUS = ((InvalidInput, 400), (NotFound, 404), (ServiceUnavailable, 503))


class WorkbenchHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def manager(self) -> WorkbenchManager:
        return self.settings["workbench_manager"]  # type: ignore[no-any-return]

    def body(self) -> dict[str, Any]:
        """The JSON object of the request body ({} when empty); InvalidInput otherwise."""
        raw = self.request.body or b""
        if len(raw) > MAX_BODY_BYTES:
            raise InvalidInput(f"the request body is over {MAX_BODY_BYTES} bytes")
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"the request body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidInput("the request body must be a JSON object")
        return data

    @staticmethod
    def text(data: dict[str, Any], key: str, default: str = "") -> str:
        value = data.get(key, default)
        if not isinstance(value, str):
            raise InvalidInput(f"{key!r} must be a string, got {type(value).__name__}")
        return value

    async def reply(self, call: Callable[..., Any], *args: Any, status: int = 200) -> None:
        """Run ``call(*args)`` off the event loop and answer with its result (or the error's status)."""
        try:
            result = await asyncio.to_thread(call, *args)
        except WorkbenchError as exc:
            code = next((c for kind, c in _STATUS if isinstance(exc, kind)), 500)
            self.set_status(code)
            self.finish(json.dumps({"error": str(exc), "kind": type(exc).__name__}))
            return
        self.set_status(status)
        self.finish(json.dumps(result, default=str))

    async def reply_input(self, read: Callable[[], tuple[Any, ...]], call: Callable[..., Any],
                          status: int = 200) -> None:
        """Like :meth:`reply`, after ``read()`` has parsed the request (its InvalidInput is a 400)."""
        try:
            args = read()
        except InvalidInput as exc:
            self.set_status(400)
            self.finish(json.dumps({"error": str(exc), "kind": type(exc).__name__}))
            return
        await self.reply(call, *args, status=status)


class ServicesHandler(WorkbenchHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.reply(lambda: {"services": self.manager.services(), "links": self.manager.links(),
                                  "profile": self.manager.settings.profile})


class ServiceActionHandler(WorkbenchHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, name: str, action: str) -> None:
        call = self.manager.start_service if action == "start" else self.manager.stop_service
        await self.reply(lambda: {"services": call(name)})


class StagesHandler(WorkbenchHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        project = self.get_query_argument("project", "")
        await self.reply(lambda: {"stages": self.manager.stage_summaries(project)})


class TemplatesHandler(WorkbenchHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.reply(lambda: {"templates": self.manager.list_templates()})

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        def read() -> tuple[str, str]:
            data = self.body()
            return self.text(data, "stage"), self.text(data, "folder")
        await self.reply_input(read, self.manager.copy_template, status=201)


class ProjectsHandler(WorkbenchHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        def read() -> tuple[str, str]:
            data = self.body()
            return self.text(data, "name", "lifecycle"), self.text(data, "folder")
        await self.reply_input(read, self.manager.new_project, status=201)


class StageRunsHandler(WorkbenchHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.reply(lambda: {"runs": self.manager.stage_runs()})

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        def read() -> tuple[str, dict[str, Any], str]:
            data = self.body()
            parameters = data.get("parameters", {})
            if not isinstance(parameters, dict):
                raise InvalidInput("'parameters' must be an object of notebook parameter names to values")
            return self.text(data, "stage"), parameters, self.text(data, "project")
        await self.reply_input(read, self.manager.start_stage_run, status=202)


class StageRunHandler(WorkbenchHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        await self.reply(self.manager.stage_run, run_id)


class JobsHandler(WorkbenchHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.reply(lambda: {"jobs": self.manager.jobs()})


class JobLogsHandler(WorkbenchHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        await self.reply(self.manager.job_logs, job_id)


class JobStopHandler(WorkbenchHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        await self.reply(self.manager.stop_job, job_id)


class RunsHandler(WorkbenchHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        limit = self.get_query_argument("limit", "50")
        experiment = self.get_query_argument("experiment", "")
        await self.reply(self.manager.runs, limit, experiment)


class DeploymentsHandler(WorkbenchHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.reply(lambda: {"deployments": self.manager.deployments()})


_ID = r"([A-Za-z0-9_.\-]{1,200})"
ROUTES: list[tuple[str, type[WorkbenchHandler]]] = [
    ("services", ServicesHandler),
    (r"services/(\w{1,20})/(start|stop)", ServiceActionHandler),
    ("stages", StagesHandler),
    ("templates", TemplatesHandler),
    ("projects", ProjectsHandler),
    ("stage-runs", StageRunsHandler),
    (f"stage-runs/{_ID}", StageRunHandler),
    ("jobs", JobsHandler),
    (f"jobs/{_ID}/logs", JobLogsHandler),
    (f"jobs/{_ID}/stop", JobStopHandler),
    ("runs", RunsHandler),
    ("deployments", DeploymentsHandler),
]


def url_patterns(base_url: str) -> list[tuple[str, type[WorkbenchHandler]]]:
    """The routes, anchored under ``<base_url>/workbench/api/``."""
    return [(url_path_join(base_url, "workbench", "api", path), handler) for path, handler in ROUTES]
