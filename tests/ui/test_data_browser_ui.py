"""The data browser in a real JupyterLab and Chromium, on a generated 1M-row Parquet dataset.

A notebook shows ``DataBrowser``; the test runs its cell from the keyboard, then pages, jumps, scrolls,
sorts and filters through the widget's own controls, and checks that the rows drawn in the DOM are
DuckDB's rows for the same request, computed here on the files. Screenshots and the browser's
request-to-drawn times go to ``tests/ui/artifacts/``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import ui_lab as _lab

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(_lab.chromium() is None, reason="Debian's chromium is not installed")

ARTIFACTS = Path(__file__).parent / "artifacts"
ROWS = 1_000_000
VIEW_ROWS = 16  # rows the grid shows at once (VIEW_ROWS in data_browser.js)
ROW = ".wb-data-browser .wb-grid tbody tr"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from workbench.data.generator import generate_transactions, write_transactions

    root = tmp_path_factory.mktemp("wd_ui")
    df = generate_transactions(ROWS, seed=3, n_users=25_000, n_merchants=5_000)
    write_transactions(df, root / "data" / "tx_1m", rows_per_file=250_000)
    return root


@pytest.fixture(scope="module")
def lab(project: Path) -> Iterator[_lab.Lab]:
    server = _lab.start_lab(project)
    try:
        yield server
    finally:
        _lab.stop_lab(server)


def js_text(value: Any) -> str:
    """A value as the grid prints it (formatCell in data_browser.js)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(float(f"{value:.12g}"))
    if isinstance(value, dt.datetime):  # DuckDB gives microseconds, in UTC (the session's zone)
        fraction = f".{value.microsecond:06d}" if value.microsecond else ""
        return value.strftime("%Y-%m-%dT%H:%M:%S") + fraction + ("Z" if value.tzinfo else "")
    return str(value)


def expected_rows(project: Path, offset: int, limit: int = VIEW_ROWS, where: str = "TRUE",
                  order: str = "") -> tuple[list[list[str]], int]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    scan = "read_parquet($files, filename = true, file_row_number = true)"
    files = sorted(str(p) for p in (project / "data" / "tx_1m").glob("*.parquet"))
    keys = ", ".join([*([order] if order else []), "filename", "file_row_number"])
    rows = con.execute(f"SELECT * EXCLUDE (filename, file_row_number) FROM {scan} WHERE {where} ORDER BY {keys} "
                       f"LIMIT {limit} OFFSET {offset}", {"files": files}).fetchall()
    total = con.execute(f"SELECT count(*) FROM {scan} WHERE {where}", {"files": files}).fetchone()
    con.close()
    assert total is not None
    return [[str(offset + i + 1), *(js_text(v) for v in row)] for i, row in enumerate(rows)], int(total[0])


def grid(page: Any) -> list[list[str]]:
    return page.eval_on_selector_all(ROW, "rows => rows.map(r => [...r.children].map(td => td.textContent))")


def wait_for_rows(page: Any, want: list[list[str]], timeout_s: float = 60.0) -> None:
    """Wait until the grid shows ``want`` (no placeholders left); fails with the difference."""
    deadline = time.monotonic() + timeout_s
    while True:
        shown = grid(page)
        if shown == want or time.monotonic() > deadline:
            break
        page.wait_for_timeout(50)  # the browser's event loop, not a sleep standing in for a condition
    assert shown == want


def test_browse_page_sort_filter_1m_rows(lab: _lab.Lab, project: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "data_browser_failure.png").unlink(missing_ok=True)
    _lab.write_notebook(project / "browse.ipynb", [
        "from workbench.config import Settings\n"
        "from workbench.widgets.data_browser import DataBrowser\n"
        f"DataBrowser(path='data/tx_1m', settings=Settings(project_dir={str(project)!r}))"])
    timings: dict[str, Any] = {}

    def pages_received() -> int:
        return int(page.get_attribute(".wb-data-browser", "data-pages") or "0") \
            if page.query_selector(".wb-data-browser") else 0

    def timed(name: str, action: Any, want: list[list[str]]) -> None:
        before = pages_received()
        started = time.perf_counter()
        action()
        wait_for_rows(page, want)
        fetched = pages_received() - before
        timings[name] = {"action_to_drawn_s": round(time.perf_counter() - started, 3), "pages_fetched": fetched,
                         "request_to_decoded_ms": float(page.get_attribute(".wb-data-browser", "data-last-page-ms")
                                                        or "nan") if fetched else None}

    with playwright_api.sync_playwright() as p:
        browser = _lab.launch_chromium(p)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        try:
            page.goto(lab.notebook_url("browse.ipynb"))
            first, total = expected_rows(project, 0)
            assert total == ROWS
            timed("first_page", lambda: _lab.run_first_cell(page), first)
            header = page.eval_on_selector_all(".wb-grid thead th[data-column]",
                                               "ths => ths.map(th => th.dataset.column)")
            assert header[:3] == ["transaction_id", "user_id", "merchant_id"]
            assert f"{ROWS:,}" in page.inner_text(".wb-title")
            page.screenshot(path=str(ARTIFACTS / "data_browser_first_page.png"))

            timed("next_page", lambda: page.click(".wb-next"), expected_rows(project, VIEW_ROWS)[0])
            timed("last_page", lambda: page.click(".wb-last"), expected_rows(project, ROWS - VIEW_ROWS)[0])

            def jump() -> None:
                page.fill(".wb-row-input", "500001")
                page.press(".wb-row-input", "Enter")
            timed("jump_to_middle", jump, expected_rows(project, 500_000)[0])

            # Drag the scrollbar to a third of the way: 1M rows are 24M px, the grid scales its scroll range.
            page.eval_on_selector(".wb-scroll", "el => { el.scrollTop = (el.scrollHeight - el.clientHeight) / 3; }")
            page.wait_for_function(f"() => {{ const r = document.querySelector('{ROW}:first-child'); "
                                   "return r && Math.abs(Number(r.dataset.row) - 333328) < 2000; }")
            shown = int(page.get_attribute(f"{ROW}:first-child", "data-row") or "-1")
            wait_for_rows(page, expected_rows(project, shown)[0])

            timed("sort_amount_asc", lambda: page.click(".wb-grid th[data-column='amount']"),
                  expected_rows(project, 0, order="amount ASC NULLS LAST")[0])
            assert "▲" in page.inner_text(".wb-grid th[data-column='amount']")
            timed("sort_amount_desc", lambda: page.click(".wb-grid th[data-column='amount']"),
                  expected_rows(project, 0, order="amount DESC NULLS LAST")[0])
            page.screenshot(path=str(ARTIFACTS / "data_browser_sorted.png"))
            timed("sorted_middle", jump, expected_rows(project, 500_000, order="amount DESC NULLS LAST")[0])

            def add_filter() -> None:
                page.select_option(".wb-filter-col", "category")
                page.select_option(".wb-filter-op", "==")
                page.fill(".wb-filter-value", "travel")
                page.click(".wb-add-filter")
            filtered, n_travel = expected_rows(project, 0, where="category = 'travel'", order="amount DESC NULLS LAST")
            timed("filter_category", add_filter, filtered)
            assert 0 < n_travel < ROWS
            assert f"of {n_travel:,}" in page.inner_text(".wb-range")
            assert "category == \"travel\"" in page.inner_text(".wb-chips")
            page.screenshot(path=str(ARTIFACTS / "data_browser_filtered.png"))

            # A value of the wrong kind never leaves the browser; a path outside the roots is refused.
            page.select_option(".wb-filter-col", "amount")
            page.select_option(".wb-filter-op", ">")
            page.fill(".wb-filter-value", "lots")
            page.click(".wb-add-filter")
            page.wait_for_selector(".wb-error:has-text('is not a number')")
            page.fill(".wb-path", "/etc")
            page.click(".wb-open-path")
            page.wait_for_selector(".wb-error:has-text('outside the folders')")
            assert "Traceback" not in page.inner_text(".wb-data-browser")
            wait_for_rows(page, filtered)  # the open dataset is still there
            page.screenshot(path=str(ARTIFACTS / "data_browser_error.png"))

            page.click(".wb-tab-validation")
            page.click(".wb-run-validate")
            page.wait_for_selector(".wb-panel .wb-ok, .wb-panel .wb-bad", timeout=120_000)
            assert "1,000,000 rows" in page.inner_text(".wb-panel")
            page.click(".wb-tab-profile")
            page.click(".wb-run-profile")
            page.wait_for_selector(".wb-profile-col[data-column='amount'] svg.wb-hist rect", timeout=180_000)
            page.screenshot(path=str(ARTIFACTS / "data_browser_profile.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "data_browser_failure.png"))
            raise
        finally:
            (ARTIFACTS / "data_browser_timings.json").write_text(json.dumps(timings, indent=1))
            browser.close()
    assert timings["first_page"]["pages_fetched"] == 1 and timings["next_page"]["pages_fetched"] == 0  # cached
    assert all(t["pages_fetched"] <= 2 for t in timings.values())  # one request per view, no request storm
