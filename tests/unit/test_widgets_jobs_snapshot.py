"""Where no kernel answers (papermill, HTML export), the job launcher leaves a static snapshot."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

CELL = """
from workbench.config import Settings
from workbench.training.capacity import JobSummary
from workbench.widgets.jobs import JobLauncher

settings = Settings(project_dir={root!r}, ray_dashboard_port={port}, mlflow_port={port}, request_timeout_s=1.0)
launcher = JobLauncher("wj-snapshot", settings=settings, live=False)
job = JobSummary("workbench-train-snap-1", "SUCCEEDED", "a" * 32, "3", "mlp", "training", 2, 1.0, 2.0)
launcher.job_list, launcher.selected = [job], job
launcher.curve_points = {{"loss": [(0, 0.69), (1, 0.41)], "roc_auc": [(0, 0.61), (1, 0.83)]}}
launcher
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_executed_launcher_exports_a_static_snapshot(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL.format(root=str(tmp_path), port=_free_port()))]
    NotebookClient(nb, timeout=180, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["execute_result"], outputs
    data = outputs[0]["data"]
    assert "application/vnd.jupyter.widget-view+json" in data and "text/html" in data
    assert data["text/plain"] == "JobLauncher(experiment='wj-snapshot', jobs=1)"
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert "Training jobs" in html and "workbench-train-snap-1" in html and "SUCCEEDED" in html
    assert f"/#/experiments/3/runs/{'a' * 32}" in html  # the MLflow link
    assert "did not report its resources" in html  # the widget's readable error, no traceback
    assert "Traceback" not in html
    assert "Plotly.newPlot" in html and html.count("plotly.js v") == 1  # the curve, plotly.js inline once
    assert not re.search(r'<script[^>]+src="https?://[^"]*plot', html)
