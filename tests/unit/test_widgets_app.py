"""``Workbench()``: every tab opens to something a user can read, with or without the services."""

from __future__ import annotations

from pathlib import Path

import ipywidgets as w

from workbench.config import Settings
from workbench.widgets.app import TABS, Workbench, available_tabs


def test_every_tab_opens_to_a_widget_even_with_no_service_answering(tmp_path: Path) -> None:
    settings = Settings(project_dir=tmp_path, mlflow_port=25997, ray_dashboard_port=25996, ray_metrics_port=25995,
                        serve_port=25994, request_timeout_s=1.0, service_timeout_s=1.0)
    app = Workbench(settings, lazy=False)
    assert app.tab_titles == [title for title, _ in available_tabs()]
    assert {"Data", "Jobs", "Runs", "Deploy", "Monitor"} <= set(app.tab_titles) <= {t for t, _, _ in TABS}
    for title, holder in zip(app.tab_titles, app.children, strict=True):
        (shown,) = holder.children
        assert isinstance(shown, w.Widget), title  # the Panel dashboard is shown through an Output widget
        text = shown.value if isinstance(shown, w.HTML) else ""
        assert "opening" not in text and "Traceback" not in text, (title, text)
    monitor = app.children[app.tab_titles.index("Monitor")].children[0]
    assert isinstance(monitor, w.Output) or "could not open" in getattr(monitor, "value", "")
