"""The Jupyter server extension: the REST API the Workbench sidebar talks to (``/workbench/api/...``).

Enabled by ``jupyter-config/jupyter_server_config.d/workbench.json`` (installed with the package), or by
hand with ``jupyter server extension enable workbench.server``. The project is the nearest folder holding
workbench.toml at or above the server's root (or ``WORKBENCH_HOME``); an embedding application or a test
can hand its own Settings in as the tornado setting ``workbench_settings``.
"""

from __future__ import annotations

from typing import Any

from workbench.server.handlers import url_patterns
from workbench.server.manager import WorkbenchManager

__all__ = ["WorkbenchManager", "_jupyter_server_extension_points", "_load_jupyter_server_extension"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "workbench.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    web_app = serverapp.web_app
    root = getattr(serverapp.contents_manager, "root_dir", None) or serverapp.root_dir
    manager = WorkbenchManager.for_server(root, web_app.settings.get("workbench_settings"))
    web_app.settings["workbench_manager"] = manager
    web_app.add_handlers(".*$", url_patterns(web_app.settings["base_url"]))
    serverapp.log.info("workbench: REST API under %sworkbench/api/ for project %s (root %s)",
                       web_app.settings["base_url"], manager.settings.project_dir, manager.root)
