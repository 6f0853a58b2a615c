"""Small HTML cards and tables for the rich reprs (``_repr_html_``) of result objects.

An executed notebook is a report: a result a cell displays must read as a short card, not as a dataclass
dump with a frame inside. These helpers build that card from plain values, escape everything, and stay
dependency-free so any domain module can use them (the registry's results too).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

_STYLE = ("border-collapse:collapse;font-size:12px;margin:2px 0 6px 0",
          "text-align:left;padding:2px 8px;border-bottom:1px solid #ddd",
          "text-align:right;padding:2px 8px;border-bottom:1px solid #eee;font-variant-numeric:tabular-nums")


def fmt(value: Any, digits: int = 4) -> str:
    """A value as a short string: numbers to ``digits`` significant digits, NaN/None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:,.0f}" if abs(value) >= 10 ** digits else f"{value:.{digits}g}"
    if isinstance(value, pd.Timestamp | datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, max_rows: int = 20) -> str:
    """An HTML table of at most ``max_rows`` rows (the rest counted), values escaped and formatted."""
    head = "".join(f'<th style="{_STYLE[1]}">{html.escape(h)}</th>' for h in headers)
    body, extra = [], 0
    for i, row in enumerate(rows):
        if i >= max_rows:
            extra += 1
            continue
        cells = "".join(
            f'<td style="{_STYLE[2] if isinstance(v, int | float) and not isinstance(v, bool) else _STYLE[1]}">'
            f"{html.escape(fmt(v))}</td>" for v in row)
        body.append(f"<tr>{cells}</tr>")
    more = f'<div style="font-size:11px;color:#666">… and {extra} more</div>' if extra else ""
    return f'<table style="{_STYLE[0]}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>{more}'


def card(title: str, fields: Mapping[str, Any] | None = None, *, note: str = "", extra: str = "",
         status: str = "") -> str:
    """A titled card: a two-column table of ``fields``, an optional note and extra (already safe) HTML.

    ``status`` (``ok`` / ``warn`` / ``drift`` / ``error`` …) colours the title's marker.
    """
    colour = {"ok": "#2e7d32", "warn": "#ef6c00", "warning": "#ef6c00", "drift": "#c62828",
              "error": "#c62828", "critical": "#c62828"}.get(status, "#4c78a8")
    parts = [f'<div class="workbench-card" style="border-left:4px solid {colour};padding:4px 10px;margin:4px 0">',
             f'<div style="font-weight:600;margin-bottom:2px">{html.escape(title)}</div>']
    if fields:
        parts.append(table(["", ""], list(fields.items()), max_rows=len(fields)).replace(
            "<thead><tr>" + "".join(f'<th style="{_STYLE[1]}"></th>' for _ in range(2)) + "</tr></thead>", ""))
    if extra:
        parts.append(extra)
    if note:
        parts.append(f'<div style="font-size:11px;color:#666">{html.escape(note)}</div>')
    parts.append("</div>")
    return "".join(parts)
