"""Paging a 10M-row Parquet dataset: workbench.data.read_page against pandas.

The anchor is what a notebook does without the workbench:
``pd.read_parquet(path).sort_values(col).iloc[a:b]``. Each measurement runs in a fresh Python process
(the same imports, done before the clock starts), so time, CPU time and peak memory (the child's own
VmHWM) belong to that one call. CPU time is reported too because on a shared machine wall time swings
with the load while CPU time hardly does. Each case runs ``--repeat`` times; the median time and the largest
peak RSS are reported.

    .venv/bin/python benchmarks/bench_paging.py            # 10M rows, generated once under _data/
    .venv/bin/python benchmarks/bench_paging.py --rows 1000000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "benchmarks" / "_data"
CHUNK = 1_000_000
SORT_COL = "amount"
LIMIT = 100


def dataset_path(rows: int) -> Path:
    return DATA_DIR / f"transactions_{rows // 1_000_000}m" if rows % 1_000_000 == 0 \
        else DATA_DIR / f"transactions_{rows}"


def ensure_dataset(rows: int, regenerate: bool = False) -> Path:
    """Generate the dataset in 1M-row chunks (memory stays ~1 GB), or reuse it if it is complete."""
    import pandas as pd

    from workbench.data.generator import generate_transactions, write_transactions

    path = dataset_path(rows)
    marker = path / "_complete.json"  # underscore files are ignored by readers
    layout = {"rows": rows, "chunk": CHUNK, "writer": "write_transactions", "version": 3}
    if marker.exists() and not regenerate and json.loads(marker.read_text()) == layout:
        return path
    if path.exists():
        for f in path.iterdir():
            f.unlink()
    path.mkdir(parents=True, exist_ok=True)
    n_users, n_merchants = max(50, rows // 40), max(20, rows // 200)
    t0 = time.perf_counter()
    for i, start in enumerate(range(0, rows, CHUNK)):
        n = min(CHUNK, rows - start)
        # Each chunk is three days of the same population, so the whole is one month of traffic.
        day = (pd.Timestamp("2026-01-01") + pd.Timedelta(days=3 * i)).date()
        df = generate_transactions(n, seed=i, n_users=n_users, n_merchants=n_merchants, start=str(day), days=3)
        df["transaction_id"] += start
        write_transactions(df, path / f"part-{i:05d}.parquet", overwrite=True)
        print(f"  generated rows {start:,}..{start + n:,} ({time.perf_counter() - t0:.0f} s)", flush=True)
    marker.write_text(json.dumps(layout))
    return path


# ---- children: one measurement each -------------------------------------------------------------
def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    """This process's own peak RSS. ru_maxrss would also count the parent's pages at fork time."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(case: str, path: str, offset: int) -> None:
    import pandas as pd

    from workbench.data.paging import read_page

    imports_mb = _peak_rss_mb()
    t0, c0 = time.perf_counter(), _cpu_seconds()
    if case.startswith("ours"):
        page = read_page(path, offset=offset, limit=LIMIT, sort_by=SORT_COL)
        rows, total = page.rows, page.total_rows
    else:
        rows = pd.read_parquet(path).sort_values(SORT_COL).iloc[offset:offset + LIMIT]
        total = -1
    elapsed, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    peak = _peak_rss_mb()
    warm = float("nan")
    if case.startswith("ours"):  # what the next click costs in the same kernel
        t1 = time.perf_counter()
        read_page(path, offset=offset, limit=LIMIT, sort_by=SORT_COL)
        warm = time.perf_counter() - t1
    print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "warm_seconds": warm, "total": total,
                      "peak_rss_mb": peak, "imports_rss_mb": imports_mb,
                      "amounts": [float(a) for a in rows[SORT_COL]]}))


def measure(case: str, path: Path, offset: int) -> dict:
    """Run one measurement in a fresh Python process; it reports its own time, CPU and peak RSS."""
    proc = subprocess.run([sys.executable, __file__, "--child", case, "--path", str(path), "--offset",
                           str(offset)], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"{case} failed:\n{proc.stderr}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--path")
    parser.add_argument("--offset", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.path, args.offset)
        return

    sys.path.insert(0, str(ROOT))
    print(f"dataset: {args.rows:,} rows")
    path = ensure_dataset(args.rows, args.regenerate)
    size_mb = sum(f.stat().st_size for f in path.glob("*.parquet")) / 1e6
    print(f"  {path} ({size_mb:.0f} MB Parquet, {len(list(path.glob('*.parquet')))} files)")
    middle = args.rows // 2
    results: dict[str, list[dict]] = {}
    for case, offset in [("ours_first", 0), ("pandas_first", 0), ("ours_middle", middle),
                         ("pandas_middle", middle)]:
        results[case] = []
        for _ in range(args.repeat):
            r = measure(case, path, offset)
            results[case].append(r)
            print(f"  {case:14s} {r['seconds']:7.3f} s (CPU {r['cpu_seconds']:6.2f} s)  peak RSS "
                  f"{r['peak_rss_mb']:6.0f} MB (after imports {r['imports_rss_mb']:4.0f} MB)", flush=True)
    for page in ("first", "middle"):
        ours, theirs = results[f"ours_{page}"][0]["amounts"], results[f"pandas_{page}"][0]["amounts"]
        if ours != theirs:
            raise SystemExit(f"{page} page differs from pandas: {ours[:5]} vs {theirs[:5]}")

    def t(case: str) -> float:
        return statistics.median(r["seconds"] for r in results[case])

    def m(case: str) -> float:
        return max(r["peak_rss_mb"] for r in results[case])

    def c(case: str) -> float:
        return statistics.median(r["cpu_seconds"] for r in results[case])

    warm = {p: statistics.median(r["warm_seconds"] for r in results[f"ours_{p}"]) for p in ("first", "middle")}
    rows = [
        ("first page, time", f"{t('ours_first'):.3f} s", f"{t('pandas_first'):.2f} s",
         f"{t('pandas_first') / t('ours_first'):.0f}x"),
        ("first page, CPU time", f"{c('ours_first'):.3f} s", f"{c('pandas_first'):.2f} s",
         f"{c('pandas_first') / c('ours_first'):.0f}x"),
        ("first page, peak RSS", f"{m('ours_first'):.0f} MB", f"{m('pandas_first'):.0f} MB",
         f"{m('pandas_first') / m('ours_first'):.1f}x"),
        ("middle page, time", f"{t('ours_middle'):.3f} s", f"{t('pandas_middle'):.2f} s",
         f"{t('pandas_middle') / t('ours_middle'):.0f}x"),
        ("middle page, CPU time", f"{c('ours_middle'):.3f} s", f"{c('pandas_middle'):.2f} s",
         f"{c('pandas_middle') / c('ours_middle'):.0f}x"),
        ("middle page, peak RSS", f"{m('ours_middle'):.0f} MB", f"{m('pandas_middle'):.0f} MB",
         f"{m('pandas_middle') / m('ours_middle'):.1f}x"),
        ("next call, same process", f"{warm['first']:.3f} / {warm['middle']:.3f} s", "-", "-"),
    ]
    load = os.getloadavg()[0]
    print(f"\nsorted by {SORT_COL}, {LIMIT} rows per page, offset 0 and {middle:,}; median of {args.repeat} "
          f"fresh processes (peak RSS: the largest); {os.cpu_count()} cores, load average now {load:.1f}")
    print(f"| {'measure':24s} | {'read_page':>16s} | {'pandas':>10s} | {'ratio':>6s} |")
    print(f"|{'-' * 26}|{'-' * 18}|{'-' * 12}|{'-' * 8}|")
    for name, a, b, r in rows:
        print(f"| {name:24s} | {a:>16s} | {b:>10s} | {r:>6s} |")
    out = DATA_DIR / "bench_paging.json"
    out.write_text(json.dumps({k: [{kk: vv for kk, vv in r.items() if kk != "amounts"} for r in v]
                               for k, v in results.items()}, indent=1))
    print(f"\nraw results: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
