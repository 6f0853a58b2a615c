"""The REST API through a real Jupyter server (pytest-jupyter's ``jp_fetch``), no engines needed:
templates, projects, stages, stage runs, bad input, path traversal, and authentication of every route."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.utils import JupyterServerAuthWarning
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from workbench.config import Settings
from workbench.lineage import STAGES, record_stage
from workbench.pipeline import NOTEBOOKS
from workbench.server.handlers import ROUTES

pytest_plugins = ["pytest_jupyter.jupyter_server"]

# Unused ports: no engine answers there, so nothing in these tests can reach a shared service.
DEAD = {"mlflow_port": 1, "ray_dashboard_port": 2, "request_timeout_s": 1.0}


@pytest.fixture()
def jp_server_config(jp_root_dir: Path) -> Config:
    settings = Settings(project_dir=jp_root_dir, **DEAD)  # type: ignore[arg-type]
    return Config({"ServerApp": {"jpserver_extensions": {"workbench.server": True},
                                 "tornado_settings": {"workbench_settings": settings}}})


async def call(jp_fetch: Any, *parts: str, method: str = "GET", body: Any = None, **kw: Any) -> tuple[int, Any]:
    """(status, JSON) of a request; error statuses are returned, not raised."""
    if body is not None:
        kw["body"] = body if isinstance(body, str) else json.dumps(body)
    try:
        answer = await jp_fetch("workbench", "api", *parts, method=method, **kw)
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.code, json.loads(exc.response.body or b"{}")
    return answer.code, json.loads(answer.body)


async def test_templates_and_copy(jp_fetch: Any, jp_root_dir: Path) -> None:
    code, reply = await call(jp_fetch, "templates")
    assert code == 200 and [t["stage"] for t in reply["templates"]] == list(STAGES)
    (jp_root_dir / "work").mkdir()
    code, first = await call(jp_fetch, "templates", method="POST", body={"stage": "deploy", "folder": "work"})
    code2, second = await call(jp_fetch, "templates", method="POST", body={"stage": "deploy", "folder": "work"})
    assert (code, code2) == (201, 201)
    assert (first["path"], second["path"]) == ("work/05_deploy.ipynb", "work/05_deploy-1.ipynb")
    assert (jp_root_dir / "work" / "05_deploy-1.ipynb").is_file()


async def test_new_project_then_its_stages(jp_fetch: Any, jp_root_dir: Path) -> None:
    code, made = await call(jp_fetch, "projects", method="POST", body={"name": "jx-demo"})
    assert code == 201 and made["path"] == "jx-demo"
    assert sorted(p.name for p in (jp_root_dir / "jx-demo" / "notebooks").iterdir()) == sorted(NOTEBOOKS.values())
    record_stage(Settings(project_dir=jp_root_dir / "jx-demo"), "data",
                 {"dataset_name": "jx", "dataset_version": "sha256:1"})
    code, reply = await call(jp_fetch, "stages", params={"project": "jx-demo"})
    assert code == 200
    by_stage = {s["stage"]: s for s in reply["stages"]}
    assert list(by_stage) == list(STAGES)
    assert by_stage["data"]["status"] == "done" and by_stage["data"]["headline"]["dataset_version"] == "sha256:1"
    assert by_stage["train"]["status"] == "never run"
    code, reply = await call(jp_fetch, "stages")  # the server's own project: nothing recorded there
    assert code == 200 and {s["status"] for s in reply["stages"]} == {"never run"}


@pytest.mark.parametrize(("parts", "method", "body", "needle"), [
    (("templates",), "POST", {"stage": "nope"}, "unknown stage"),
    (("templates",), "POST", {"stage": 3}, "must be a string"),
    (("templates",), "POST", "not json", "not JSON"),
    (("templates",), "POST", "[1, 2]", "JSON object"),
    (("templates",), "POST", {"stage": "data", "folder": "../.."}, "parent folder"),
    (("templates",), "POST", {"stage": "data", "folder": "/etc"}, "absolute"),
    (("projects",), "POST", {"name": "../up"}, "project name"),
    (("projects",), "POST", {"name": "x", "folder": "a/../../b"}, "parent folder"),
    (("stage-runs",), "POST", {"stage": "bogus"}, "unknown stage"),
    (("stage-runs",), "POST", {"stage": "data", "parameters": [1]}, "parameters"),
    (("stage-runs",), "POST", {"stage": "data", "project": "../../"}, "parent folder"),
    (("services", "postgres", "start"), "POST", {}, "unknown service"),
    (("runs",), "GET", None, "limit"),
])
async def test_bad_input_is_a_400_with_a_message(jp_fetch: Any, parts: tuple[str, ...], method: str, body: Any,
                                                 needle: str) -> None:
    params = {"limit": "0"} if parts == ("runs",) else None
    code, reply = await call(jp_fetch, *parts, method=method, body=body, params=params)
    assert code == 400, reply
    assert needle in reply["error"] and reply["kind"] in ("InvalidInput", "ConfigError")


async def test_traversal_in_a_query_is_refused(jp_fetch: Any) -> None:
    code, reply = await call(jp_fetch, "stages", params={"project": "../../etc"})
    assert code == 400 and "parent folder" in reply["error"]


async def test_unknown_ids_are_404(jp_fetch: Any) -> None:
    code, reply = await call(jp_fetch, "stage-runs", "ui-missing")
    assert code == 404 and "no stage run" in reply["error"]
    code, reply = await call(jp_fetch, "stage-runs", method="POST", body={"stage": "data"})
    assert code == 404 and "does not exist" in reply["error"]


async def test_a_service_that_does_not_answer_is_reported(jp_fetch: Any) -> None:
    code, reply = await call(jp_fetch, "services")
    assert code == 200
    assert {s["name"]: s["healthy"] for s in reply["services"]} == {"mlflow": False, "ray": False}
    code, reply = await call(jp_fetch, "runs")
    assert code == 503 and "not answering" in reply["error"]


def _sample_path(pattern: str) -> str:
    """A concrete URL for a route's regex: each group becomes a plausible value."""
    path = pattern.rstrip("$")
    path = re.sub(r"\(start\|stop\)", "start", path)
    return re.sub(r"\([^)]*\)", "x1", path)


# the warning Jupyter gives when an extension registers a handler method without @authenticated: an error here,
# during the server's start (which loads the extension) as well as in the test
@pytest.mark.filterwarnings("error::jupyter_server.utils.JupyterServerAuthWarning")
async def test_every_route_refuses_unauthenticated_requests(jp_serverapp: Any, http_server_client: Any) -> None:
    web_app = jp_serverapp.web_app
    ours = [rule for rule in web_app.wildcard_router.rules
            if "/workbench/" in getattr(rule.matcher, "regex", re.compile("")).pattern]
    # the routes a host-specific router holds too (add_handlers puts extension routes there)
    for host_rule in web_app.default_router.rules:
        for rule in getattr(host_rule.target, "rules", []):
            if "/workbench/" in getattr(rule.matcher, "regex", re.compile("")).pattern:
                ours.append(rule)
    patterns = {rule.matcher.regex.pattern for rule in ours}
    assert len(patterns) == len(ROUTES), sorted(patterns)
    with warnings.catch_warnings():
        warnings.simplefilter("error", JupyterServerAuthWarning)
        for rule in ours:
            assert web_app._check_handler_auth(rule.matcher, rule.target) == []
    checked = []
    for pattern in sorted(patterns):
        url = _sample_path(pattern)
        for method in ("GET", "POST"):
            answer = await http_server_client.fetch(url, method=method, body="{}" if method == "POST" else None,
                                        raise_error=False, follow_redirects=False)
            if answer.code == 405:
                continue  # the route has no such method
            assert answer.code in (401, 403) or 300 <= answer.code < 400, (method, url, answer.code)
            checked.append((method, pattern))
    assert len(checked) >= len(ROUTES)
