"""The data browser's static snapshot: what an executed notebook or an HTML export shows with no kernel.

Without a kernel the grid cannot ask for pages, so the output keeps a summary of what was open and its
first page as a plain HTML table (escaped, no script, no external resources).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

SNAPSHOT_ROWS = 20


def _cell(value: Any) -> str:
    if value is None or (not isinstance(value, str | bytes) and pd.isna(value)):
        return '<td class="wb-null">null</td>'
    if isinstance(value, pd.Timestamp):
        value = value.isoformat()
    text = str(value)
    if len(text) > 200:
        text = text[:200] + "…"
    return f"<td>{html.escape(text)}</td>"


def snapshot_html(label: str, total_rows: int | None, columns: Sequence[Mapping[str, Any]],
                  page: pd.DataFrame | None, error: str = "") -> str:
    """A self-contained HTML card: the source, its size and columns, and the first rows."""
    parts = ['<div class="wb-data-browser-snapshot" style="font-family:sans-serif;font-size:12px">',
             f"<p><b>Data browser</b>: {html.escape(label or 'no dataset open')}"]
    if total_rows is not None:
        parts.append(f" &middot; {total_rows:,} rows &middot; {len(columns)} columns")
    parts.append("</p>")
    if error:
        parts.append(f'<p class="wb-error" style="color:#b00020">{html.escape(error)}</p>')
    if page is not None and len(page.columns):
        types = {str(c["name"]): str(c.get("dtype", "")) for c in columns}
        head = "".join(f"<th>{html.escape(str(c))}<br><small>{html.escape(types.get(str(c), ''))}</small></th>"
                       for c in page.columns)
        body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>"
                       for row in page.head(SNAPSHOT_ROWS).itertuples(index=False, name=None))
        parts.append(f'<table border="1" style="border-collapse:collapse"><thead><tr>{head}</tr></thead>'
                     f"<tbody>{body}</tbody></table>")
        shown = min(len(page), SNAPSHOT_ROWS)
        if total_rows is not None and total_rows > shown:
            parts.append(f"<p><i>first {shown:,} of {total_rows:,} rows; open the notebook with a running "
                         "kernel to browse the rest</i></p>")
    parts.append("</div>")
    return "".join(parts)
