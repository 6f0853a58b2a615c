"""Workbench: data → features → training → registry → deployment → monitoring, from a notebook.

The public entry points, short on purpose (each stage's API lives in its own package)::

    from workbench import Workbench, load_settings, Task
    Workbench()                      # the tabbed app: data, jobs, runs, deployments, monitoring
    settings = load_settings()       # workbench.toml + WORKBENCH_* variables

``Workbench`` is imported on first use, so ``import workbench`` stays cheap for the CLI and the server.
"""

from __future__ import annotations

from typing import Any

from workbench.config import Settings, load_settings
from workbench.data.task import Task
from workbench.errors import WorkbenchError

__all__ = ["Settings", "Task", "Workbench", "WorkbenchError", "load_settings"]


def __getattr__(name: str) -> Any:
    if name == "Workbench":
        from workbench.widgets import Workbench

        return Workbench
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
