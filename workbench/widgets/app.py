"""``Workbench()``: one tabbed app holding the stage widgets that exist in this installation.

Each tab names a widget class by module; a module that is not there (not written yet, or its extras not
installed) leaves its tab out. A widget is built when its tab is first opened, so opening the app asks
no service anything for the tabs nobody looks at, and a widget that fails to build shows the reason in
its tab instead of breaking the app.
"""

from __future__ import annotations

import html
import importlib
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as w

from workbench.config import Settings, load_settings
from workbench.errors import WorkbenchError

#: (tab title, module, class): in the lifecycle's order. Each class takes ``settings=`` as a keyword.
TABS: tuple[tuple[str, str, str], ...] = (
    ("Data", "workbench.widgets.data_browser", "DataBrowser"),
    ("Jobs", "workbench.widgets.jobs", "JobLauncher"),
    ("Runs", "workbench.widgets.run_comparer", "RunComparer"),
    ("Deploy", "workbench.widgets.deployer", "Deployer"),
    ("Monitor", "workbench.widgets.dashboard", "MonitoringDashboard"),
)


def available_tabs(tabs: Sequence[tuple[str, str, str]] = TABS) -> list[tuple[str, Callable[..., Any]]]:
    """(title, widget class) for each tab whose module imports; a missing module is skipped, quietly."""
    found = []
    for title, module_name, class_name in tabs:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")
                             or exc.name.split(".")[0] in ("anywidget", "ipywidgets", "plotly", "panel")):
                continue
            raise
        factory = getattr(module, class_name, None)
        if factory is not None:
            found.append((title, factory))
    return found


def _displayed(obj: Any) -> w.Output:
    """A widget showing ``obj`` as the notebook would: for a tab whose view is not an ipywidget (the
    monitoring dashboard is a Panel layout, which renders through its own display machinery)."""
    from IPython.display import display

    out = w.Output()
    with out:
        display(obj)
    return out


class Workbench(w.Tab):
    """The stage widgets as tabs. ``Workbench()``; ``Workbench(tabs=["Runs"])`` keeps some of them.

    ``options`` maps a tab title to keyword arguments for its widget, e.g.
    ``Workbench(options={"Runs": {"experiment": "my-experiment"}})``.
    """

    def __init__(self, settings: Settings | None = None, *, tabs: Sequence[str] | None = None,
                 options: dict[str, dict[str, Any]] | None = None, lazy: bool = True) -> None:
        super().__init__()
        self.settings = settings if settings is not None else load_settings()
        self._options = dict(options or {})
        found = available_tabs()
        if tabs is not None:
            wanted = list(tabs)
            unknown = [t for t in wanted if t not in {title for title, _ in found}]
            if unknown:
                raise WorkbenchError(f"no tab {unknown}; this installation has {[t for t, _ in found]}")
            found = [(title, factory) for title, factory in found if title in wanted]
        self._factories = dict(found)
        for _title, factory in found:  # page code a tab's view needs must load now, while the cell runs
            prepare = getattr(factory, "prepare_notebook", None)
            if callable(prepare):
                prepare()
        self.widgets: dict[str, Any] = {}
        self.children = [w.VBox([w.HTML(f"<i>opening {html.escape(title)} …</i>")]) for title, _ in found]
        self.titles = tuple(title for title, _ in found)
        self.observe(self._on_select, "selected_index")
        if found:
            if lazy:
                self._build(0)
            else:
                for i in range(len(found)):
                    self._build(i)

    @property
    def tab_titles(self) -> list[str]:
        return list(self.titles)

    def _on_select(self, change: dict[str, Any]) -> None:
        if change["new"] is not None:
            self._build(int(change["new"]))

    def _build(self, index: int) -> Any:
        """The widget of tab ``index``, built on first use; a failure is shown in the tab."""
        title = self.titles[index]
        if title in self.widgets:
            return self.widgets[title]
        holder = self.children[index]
        try:
            widget = self._factories[title](settings=self.settings, **self._options.get(title, {}))
        except Exception as exc:  # noqa: BLE001 - one broken tab must not break the app
            message = str(exc) if isinstance(exc, WorkbenchError) else f"unexpected {type(exc).__name__}: {exc}"
            holder.children = (w.HTML(f'<span style="color:#c62828">⚠ {html.escape(title)} could not open: '
                                      f"{html.escape(message)}</span>"),)
            return None
        self.widgets[title] = widget
        holder.children = (widget if isinstance(widget, w.Widget) else _displayed(widget),)
        return widget

    def widget(self, title: str) -> Any:
        """The widget of tab ``title`` (built now if it was not yet)."""
        if title not in self.titles:
            raise WorkbenchError(f"no tab {title!r}; the tabs are {list(self.titles)}")
        return self._build(self.titles.index(title))

    def snapshot_html(self) -> str:
        parts = []
        for title in self.titles:
            widget = self.widgets.get(title)
            body = widget.snapshot_html() if widget is not None and hasattr(widget, "snapshot_html") else (
                "<i>not opened</i>")
            parts.append(f"<details open><summary><b>{html.escape(title)}</b></summary>{body}</details>")
        return "<div class='workbench-app'>" + "".join(parts) + "</div>"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle or {}, {})
        return {**data, "text/plain": f"Workbench(tabs={list(self.titles)})", "text/html": self.snapshot_html()}, \
            metadata
