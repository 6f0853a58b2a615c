"""The data browser on 10M rows: time per page, bytes per page, kernel memory.

Kernel side (always): a fresh Python process plays the kernel. It imports the widget, records its RSS
(the baseline), opens ``DataBrowser`` on the 10M-row dataset of ``bench_paging.py`` and sends it the
page requests the browser sends, through the same handler; each is timed from the request to the
message ready to leave (Arrow IPC encoded, ``send`` called). Reported: median and worst time over
``--repeat`` rounds, bytes of each page's buffer, and the process's peak RSS above the baseline.

Browser side (``--browser``): JupyterLab and Debian's Chromium (as in tests/ui); a notebook shows the
browser on the same data, the script clicks through the same views and times each from the click to
the rows drawn in the DOM; the widget itself reports request-to-decoded time. The kernel's memory is
read from /proc of the kernel process.

    .venv/bin/python benchmarks/bench_data_browser.py                  # 10M rows, kernel side
    .venv/bin/python benchmarks/bench_data_browser.py --browser        # and in Chromium
    .venv/bin/python benchmarks/bench_data_browser.py --rows 1000000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "ui"))

LIMIT = 100
TARGETS = {"first_page_s": 0.3, "any_page_s": 1.0, "memory_mb": 300}


def cases(rows: int) -> list[tuple[str, dict[str, Any]]]:
    """The views measured, as the browser requests them."""
    amount = [{"column": "amount", "desc": False}]
    travel = [{"column": "category", "op": "==", "value": "travel"}]
    return [
        ("first page", {"offset": 0}),
        ("middle page", {"offset": rows // 2}),
        ("last page", {"offset": rows - LIMIT}),
        ("sorted by amount, first page", {"offset": 0, "sort": amount}),
        ("sorted by amount desc, first page", {"offset": 0, "sort": [{"column": "amount", "desc": True}]}),
        ("sorted by amount, middle page", {"offset": rows // 2, "sort": amount}),
        ("filtered category == travel, first page", {"offset": 0, "filters": travel}),
        ("filtered, sorted by amount, page 100", {"offset": 100 * LIMIT, "filters": travel, "sort": amount}),
    ]


def _rss_kb(field: str, pid: str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


# ---- kernel side: runs in a child process -----------------------------------------------------------
def kernel_child(path: str, rows: int, repeat: int) -> dict[str, Any]:
    from workbench.config import Settings
    from workbench.widgets.data_browser import DataBrowser

    baseline_kb = _rss_kb("VmRSS")
    sent: list[tuple[float, dict[str, Any], list[bytes] | None]] = []
    started = time.perf_counter()
    widget = DataBrowser(path=path, settings=Settings(project_dir=ROOT), background=False)
    open_s = time.perf_counter() - started
    if widget.error:
        raise SystemExit(widget.error)
    widget.send = lambda content, buffers=None: sent.append((time.perf_counter(), content, buffers))  # type: ignore
    results: list[dict[str, Any]] = []
    for name, request in cases(rows):
        times, cpu, sizes = [], [], set()
        for i in range(repeat):
            c0, t0 = time.process_time(), time.perf_counter()
            widget.handle_request({"type": "page", "id": i, "limit": LIMIT, **request}).result()
            done, content, buffers = sent[-1]
            cpu.append(time.process_time() - c0)
            if content["type"] != "page":
                raise SystemExit(f"{name}: {content}")
            times.append(done - t0)
            sizes.add(content["bytes"])
        results.append({"case": name, "median_s": statistics.median(times), "max_s": max(times),
                        "cpu_s": statistics.median(cpu),
                        "first_s": times[0], "bytes": max(sizes), "rows": content["n_rows"],
                        "total_rows": content["total_rows"]})
    peak_kb = _rss_kb("VmHWM")
    return {"open_s": open_s, "baseline_mb": baseline_kb / 1024, "peak_mb": peak_kb / 1024,
            "above_baseline_mb": (peak_kb - baseline_kb) / 1024, "cases": results}


def run_kernel_side(path: Path, rows: int, repeat: int, sample_cache: bool = True) -> dict[str, Any]:
    off = "" if sample_cache else "from workbench.data import paging; paging._SAMPLES_KEPT = 0; "
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import bench_data_browser as b; "
            f"{off}print('RESULT ' + json.dumps(b.kernel_child({str(path)!r}, {rows}, {repeat})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"kernel-side child failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return dict(json.loads(lines[-1][len("RESULT "):]))


# ---- browser side ---------------------------------------------------------------------------------
def run_browser_side(path: Path, rows: int) -> dict[str, Any]:
    import ui_lab
    from playwright.sync_api import sync_playwright

    row_sel = ".wb-data-browser .wb-grid tbody tr"
    with tempfile.TemporaryDirectory(prefix="wd-bench-lab-") as tmp:
        root = Path(tmp)
        info = root / "kernel.json"
        ui_lab.write_notebook(root / "bench.ipynb", [
            "import json, os, pathlib\n"
            "from workbench.config import Settings\n"
            "from workbench.widgets.data_browser import DataBrowser\n"
            "rss = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS:')][0]\n"
            f"pathlib.Path({str(info)!r}).write_text(json.dumps({{'pid': os.getpid(), 'rss_kb': rss}}))\n"
            f"DataBrowser(path={str(path)!r}, settings=Settings(project_dir={str(ROOT)!r}))"])
        lab = ui_lab.start_lab(root)
        results: list[dict[str, Any]] = []
        try:
            with sync_playwright() as p:
                browser = ui_lab.launch_chromium(p)
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(lab.notebook_url("bench.ipynb"))

                def pages() -> int:
                    el = page.query_selector(".wb-data-browser")
                    return int(el.get_attribute("data-pages") or "0") if el else 0

                def measure(name: str, action: Any, first_row: int) -> None:
                    before = pages()
                    t0 = time.perf_counter()
                    action()
                    page.wait_for_function(
                        """([sel, first, before]) => { const root = document.querySelector('.wb-data-browser');
                             const rows = [...document.querySelectorAll(sel)];
                             return root && Number(root.dataset.pages || 0) > before && rows.length
                               && rows[0].dataset.row === String(first)
                               && !rows.some(r => r.classList.contains('wb-loading')); }""",
                        arg=[row_sel, first_row, before], timeout=120_000)
                    results.append({"case": name, "action_to_drawn_s": time.perf_counter() - t0,
                                    "request_to_decoded_ms": float(page.get_attribute(".wb-data-browser",
                                                                                      "data-last-page-ms") or "nan"),
                                    "pages_fetched": pages() - before})

                def jump(row: int) -> Any:
                    def go() -> None:
                        page.fill(".wb-row-input", str(row + 1))
                        page.press(".wb-row-input", "Enter")
                    return go

                def add_filter() -> None:
                    page.select_option(".wb-filter-col", "category")
                    page.select_option(".wb-filter-op", "==")
                    page.fill(".wb-filter-value", "travel")
                    page.click(".wb-add-filter")

                shots = ROOT / "tests" / "ui" / "artifacts"
                shots.mkdir(parents=True, exist_ok=True)
                try:
                    measure("first page (cell run to rows drawn, includes kernel start)",
                            lambda: ui_lab.run_first_cell(page), 0)
                    measure("middle page", jump(rows // 2), rows // 2)
                    measure("last page", lambda: page.click(".wb-last"), rows - 16)
                    measure("sorted by amount, first page",
                            lambda: page.click(".wb-grid th[data-column='amount']"), 0)
                    measure("sorted by amount, middle page", jump(rows // 2), rows // 2)
                    measure("filtered category == travel, first page", add_filter, 0)
                finally:
                    page.screenshot(path=str(shots / "bench_data_browser_10m.png"))
                    browser.close()
            kernel = json.loads(info.read_text())
            hwm = _rss_kb("VmHWM", str(kernel["pid"]))
            rss = _rss_kb("VmRSS", str(kernel["pid"]))
        finally:
            ui_lab.stop_lab(lab)
    return {"cases": results, "kernel_baseline_mb": kernel["rss_kb"] / 1024, "kernel_peak_mb": hwm / 1024,
            "kernel_now_mb": rss / 1024, "kernel_above_baseline_mb": (hwm - kernel["rss_kb"]) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--browser", action="store_true", help="also measure in JupyterLab + Chromium")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--no-sample-cache", action="store_true",
                        help="sample every deep sorted page again (the behaviour before the sorted-sample cache)")
    args = parser.parse_args()

    import bench_paging

    path = bench_paging.ensure_dataset(args.rows)
    print(f"dataset: {path} ({args.rows:,} rows)")
    kernel = run_kernel_side(path, args.rows, args.repeat, sample_cache=not args.no_sample_cache)
    print(f"\nkernel side, {args.repeat} rounds, {LIMIT}-row pages; open {kernel['open_s']:.3f} s")
    print(f"{'case':<44}{'median':>9}{'worst':>9}{'1st':>9}{'CPU':>9}{'bytes':>9}")
    for c in kernel["cases"]:
        print(f"{c['case']:<44}{c['median_s']:>8.3f}s{c['max_s']:>8.3f}s{c['first_s']:>8.3f}s{c['cpu_s']:>8.3f}s"
              f"{c['bytes']:>9,}")
    print(f"machine load average at the end: {Path('/proc/loadavg').read_text().split()[0]}")
    print(f"memory: baseline {kernel['baseline_mb']:.0f} MB, peak {kernel['peak_mb']:.0f} MB, "
          f"above baseline {kernel['above_baseline_mb']:.0f} MB")
    first = kernel["cases"][0]["median_s"]
    worst = max(c["max_s"] for c in kernel["cases"])
    print(f"targets: first page {first:.3f} s (< {TARGETS['first_page_s']}), worst page {worst:.3f} s "
          f"(< {TARGETS['any_page_s']}), memory {kernel['above_baseline_mb']:.0f} MB (< {TARGETS['memory_mb']})")
    out: dict[str, Any] = {"rows": args.rows, "kernel": kernel}
    if args.browser:
        browser = run_browser_side(path, args.rows)
        out["browser"] = browser
        print("\nbrowser side (JupyterLab + Chromium)")
        print(f"{'case':<62}{'drawn':>9}{'req→dec':>10}")
        for c in browser["cases"]:
            print(f"{c['case']:<62}{c['action_to_drawn_s']:>8.3f}s{c['request_to_decoded_ms']:>8.0f}ms")
        print(f"kernel memory: baseline {browser['kernel_baseline_mb']:.0f} MB, peak {browser['kernel_peak_mb']:.0f} MB"
              f", above baseline {browser['kernel_above_baseline_mb']:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
