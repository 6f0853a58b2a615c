"""Where no kernel answers, the run comparer leaves a static snapshot: executed, exported, still readable."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

CELL = """
from mlflow.entities import Metric, Param, Run, RunData, RunInfo
from workbench.config import Settings
from workbench.registry.run_cache import RunCache
from workbench.widgets import RunComparer, RunComparerModel

settings = Settings(project_dir={root!r}, mlflow_port=1)
cache = RunCache(settings, "3", "wr-snapshot")
cache._upsert([Run(RunInfo(f"{{i:032x}}", "3", "me", "FINISHED", 1_000 + i, 2_000 + i, "active",
                           run_name=f"snap-{{i}}"),
                   RunData(metrics=[Metric("roc_auc", i / 10, 0, 0)], params=[Param("lr", str(i / 100))]))
               for i in range(8)])
RunComparer(settings=settings, model=RunComparerModel(settings, cache=cache), sync="never")
"""


def test_executed_comparer_exports_a_static_snapshot(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL.format(root=str(tmp_path)))]
    # no widget state kept, as in an export where no widget manager can run (offline): text/html is shown
    NotebookClient(nb, timeout=180, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["execute_result"], outputs
    data = outputs[0]["data"]
    assert "application/vnd.jupyter.widget-view+json" in data and "text/html" in data
    assert data["text/plain"].startswith("RunComparer(8 runs of 'wr-snapshot'")
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert "Runs of wr-snapshot" in html and "snap-7" in html  # summary and first page
    assert "Plotly.newPlot" in html and html.count("plotly.js v") == 1  # the parcoords, plotly.js inline
    assert not re.search(r'<script[^>]+src="https?://[^"]*plot', html)
