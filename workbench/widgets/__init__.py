"""Widgets: one per stage, and the :class:`Workbench` app that puts them in tabs. Presentation only.

Imports are lazy (``workbench.widgets.RunComparer`` loads ipywidgets and Plotly when first asked for), so
the package imports without the ``lab`` extras, and a widget whose module is absent is simply missing.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Workbench": "workbench.widgets.app",
    "RunComparer": "workbench.widgets.run_comparer",
    "RunComparerModel": "workbench.widgets._runs_model",
    "DataBrowser": "workbench.widgets.data_browser",
    "JobLauncher": "workbench.widgets.jobs",
    "Deployer": "workbench.widgets.deployer",
    "MonitoringDashboard": "workbench.widgets.dashboard",
}

__all__ = ["DataBrowser", "Deployer", "JobLauncher", "MonitoringDashboard", "RunComparer", "RunComparerModel",
           "Workbench", "show", "use_offline_renderer"]


def show(fig: Any) -> None:
    """Display a Plotly figure so it survives papermill and HTML export offline (plotly.js inline once)."""
    from IPython.display import display

    from workbench.monitoring.figures import figure_mimebundle

    display(figure_mimebundle(fig), raw=True)


def use_offline_renderer() -> None:
    """Make every Plotly figure of this kernel display like :func:`show` does."""
    from workbench.monitoring.figures import use_offline_renderer as use

    use()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench.widgets' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
