"""With no kernel to answer, the data browser's output still shows its source and first rows.

A notebook showing ``DataBrowser`` is executed by papermill (a real kernel, no browser); the stored
output must carry the static snapshot as ``text/html``, and an HTML export that falls back from the
widget view (no widget state kept) must show it: rows equal to DuckDB's on the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import nbformat
import papermill
import pyarrow as pa
import pyarrow.parquet as pq
from nbconvert import HTMLExporter


def test_executed_notebook_keeps_a_static_snapshot(tmp_path: Path) -> None:
    data = tmp_path / "small.parquet"
    pq.write_table(pa.table({"id": list(range(500)), "name": [f"n{i}" for i in range(500)]}), data)
    source = tmp_path / "show.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from workbench.config import Settings\n"
        "from workbench.widgets.data_browser import DataBrowser\n"
        f"DataBrowser(path='small.parquet', settings=Settings(project_dir={str(tmp_path)!r}))")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, source)
    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(str(source), str(executed), cwd=str(tmp_path), kernel_name="python3",
                               progress_bar=False, log_output=False)

    out = nbformat.read(executed, as_version=4)
    (output,) = out.cells[0].outputs
    assert "application/vnd.jupyter.widget-view+json" in output["data"]
    snapshot = output["data"]["text/html"]
    con = duckdb.connect()
    first = con.execute("SELECT id, name FROM read_parquet($f) ORDER BY file_row_number LIMIT 20",
                        {"f": str(data)}).fetchall()
    con.close()
    for row_id, name in first:
        assert f"<td>{row_id}</td><td>{name}</td>" in snapshot
    assert "<td>20</td><td>n20</td>" not in snapshot  # a snapshot, not the frame
    assert "500 rows" in snapshot and "Traceback" not in json.dumps(out.cells[0].outputs)

    out.metadata.pop("widgets", None)  # no widget state: nbconvert falls back to text/html
    html, _ = HTMLExporter().from_notebook_node(out)
    assert "wb-data-browser-snapshot" in html and "<td>19</td><td>n19</td>" in html
