"""Paging a 10M-row dataset from the object store against the same files on local disk (issue 12).

Both sides run the product's own code in this one process: ``read_page`` on a dataset version registered from
local Parquet files, and on the same files registered from a bucket of a real S3 server (SeaweedFS, started
here on ports 25700-25707 under ``benchmarks/_data/bench-s3``, stopped at the end; ``--keep`` leaves it). The
files are bench_paging's 10M-row dataset (generated once under ``benchmarks/_data``). Cases: first, middle and
last page; sorted by amount (first and middle page); filtered. Each case runs ``--repeat`` times per side,
interleaved; the median wall time and the S3/local ratio are printed, plus the upload time.

    .venv/bin/python benchmarks/bench_object_store.py [--rows 10000000] [--repeat 3] [--keep]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_paging import ensure_dataset  # noqa: E402

from workbench.config import Settings  # noqa: E402
from workbench.data import DatasetCatalog, read_page  # noqa: E402
from workbench.services import ServiceManager  # noqa: E402
from workbench.storage import copy_into_bucket, list_objects  # noqa: E402

STATE = ROOT / "benchmarks" / "_data" / "bench-s3"
PORT = 25700


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="leave SeaweedFS running")
    args = parser.parse_args()

    local_dir = ensure_dataset(args.rows)
    settings = Settings(project_dir=ROOT, state_dir=STATE, storage="s3", s3_port=PORT, s3_prefix="bench")
    manager = ServiceManager(settings)
    started = time.perf_counter()
    manager.up(("objects",))
    print(f"SeaweedFS up in {time.perf_counter() - started:.1f} s at {settings.s3_endpoint}", flush=True)
    try:
        files = sorted(local_dir.glob("*.parquet"))
        uri = f"{settings.object_store_uri}/datasets/transactions-{args.rows}"
        t0 = time.perf_counter()
        copy_into_bucket(settings, [(str(f), f.name) for f in files], uri)
        size = sum(o.size for o in list_objects(settings, uri))
        print(f"upload (or found): {time.perf_counter() - t0:.1f} s, {size / 1e6:.0f} MB in {len(files)} objects")
        catalog = DatasetCatalog(settings)
        t0 = time.perf_counter()
        remote = catalog.register("bench-s3", uri)
        print(f"register from the bucket (hash of every byte): {time.perf_counter() - t0:.1f} s")
        local = catalog.register("bench-local", local_dir)
        assert remote.version == local.version, "the same bytes must be the same version"
        n = remote.n_rows
        cases = {
            "first page": {"offset": 0},
            "middle page": {"offset": n // 2},
            "last page": {"offset": n - 100},
            "sorted, first": {"offset": 0, "sort_by": "amount", "descending": True},
            "sorted, middle": {"offset": n // 2, "sort_by": "amount"},
            "filtered, first": {"offset": 0, "filters": [("amount", ">", 500.0)]},
        }
        times: dict[str, dict[str, list[float]]] = {c: {"local": [], "s3": []} for c in cases}
        for _ in range(args.repeat):
            for case, kwargs in cases.items():
                for side, version in (("local", local), ("s3", remote)):
                    t0 = time.perf_counter()
                    page = read_page(version, limit=100, **kwargs)  # type: ignore[arg-type]
                    times[case][side].append(time.perf_counter() - t0)
                    assert len(page.rows) == 100
        print(f"\n{n:,} rows, median of {args.repeat} (first call of each side in brackets)")
        print("| page | local disk | object store (SeaweedFS) | ratio |\n|---|---:|---:|---:|")
        for case in cases:
            lo, s3 = times[case]["local"], times[case]["s3"]
            print(f"| {case} | {statistics.median(lo):.3f} s ({lo[0]:.3f}) | {statistics.median(s3):.3f} s "
                  f"({s3[0]:.3f}) | {statistics.median(s3) / statistics.median(lo):.1f}x |")
    finally:
        if not args.keep:
            manager.down(("objects",))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
