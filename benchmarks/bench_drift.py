"""Drift statistics: workbench.monitoring.drift_report against Evidently's DataDriftPreset.

Same data (1M rows x 20 numeric features by default, some drifted, saved as Parquet under
benchmarks/_data/), same four tests per column (PSI, KS, Jensen-Shannon, Wasserstein). Evidently runs in
its own virtual environment (it is not a dependency of the workbench), in a subprocess that times
``Report.run`` alone and reports its total wall time too. Prints both times, the ratio, and the largest
difference of each statistic, with the definitional differences explained in benchmarks/README.md.

    .venv/bin/python benchmarks/bench_drift.py                 # creates the Evidently venv if missing
    .venv/bin/python benchmarks/bench_drift.py --rows 100000   # quicker
    .venv/bin/python benchmarks/bench_drift.py --skip-evidently

The Evidently venv lives in benchmarks/_data/evidently_venv (git-ignored); it is created with
``python3 -m venv`` and ``pip install evidently==0.7.23 pandas==2.3.3`` (Evidently 0.7.23 fails to
import with pandas 3).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"
EVIDENTLY_VENV = DATA / "evidently_venv"
EVIDENTLY_PINS = ["evidently==0.7.23", "pandas==2.3.3", "pyarrow"]
METHODS = ("psi", "ks", "jensenshannon", "wasserstein")


# Data --------------------------------------------------------------------------------------------

def make_data(rows: int, features: int, folder: Path, seed: int = 42) -> tuple[Path, Path, list[str]]:
    """Reference and current Parquet files; the first five features drift in the current one."""
    import numpy as np
    import pandas as pd

    names = [f"f{i:02d}" for i in range(features)]
    ref_path, cur_path = folder / "reference.parquet", folder / "current.parquet"
    if ref_path.exists() and cur_path.exists():
        return ref_path, cur_path, names
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def column(i: int, drifted: bool) -> np.ndarray:
        kind = i % 8
        if kind == 0:  # normal; drift: mean +0.5 sd
            return rng.normal(0.5 if drifted else 0.0, 1.0, rows)
        if kind == 1:  # normal; drift: scale x1.5
            return rng.normal(0.0, 1.5 if drifted else 1.0, rows)
        if kind == 2:  # lognormal amounts; drift: small shift, below the thresholds
            return rng.lognormal(3.05 if drifted else 3.0, 0.5, rows)
        if kind == 3:  # bimodal; drift: the mixture weight moves
            share = 0.5 if drifted else 0.3
            return np.where(rng.random(rows) < share, rng.normal(5, 1, rows), rng.normal(0, 1, rows))
        if kind == 4:  # counts (many ties); drift: rate 30 -> 33
            return rng.poisson(33 if drifted else 30, rows).astype(float)
        if kind == 5:
            return rng.uniform(0, 10, rows)
        if kind == 6:
            return rng.exponential(2.0, rows)
        return rng.standard_t(5, rows)

    ref = pd.DataFrame({n: column(i, False) for i, n in enumerate(names)})
    ref.to_parquet(ref_path, index=False)
    del ref
    cur = pd.DataFrame({n: column(i, i < 5) for i, n in enumerate(names)})
    cur.to_parquet(cur_path, index=False)
    return ref_path, cur_path, names


# Evidently side (runs inside the Evidently venv; imports nothing from workbench) -----------------

def evidently_worker(folder: Path, out: Path) -> None:
    started = time.perf_counter()
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    imported = time.perf_counter()
    ref = pd.read_parquet(folder / "reference.parquet")
    cur = pd.read_parquet(folder / "current.parquet")
    loaded = time.perf_counter()
    report = Report([DataDriftPreset(method=m, columns=list(ref.columns)) for m in METHODS])
    t0, c0 = time.perf_counter(), time.process_time()
    snapshot = report.run(current_data=cur, reference_data=ref)
    compute_s, compute_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    values: dict[str, dict[str, float]] = {m: {} for m in METHODS}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift") or "column" in config:
            method = str(config.get("method"))
            if method in values and config.get("column"):
                values[method][config["column"]] = float(metric["value"])
    out.write_text(json.dumps({
        "compute_s": compute_s, "compute_cpu_s": compute_cpu_s,
        "import_s": imported - started, "load_s": loaded - imported,
        "values": values, "version": __import__("evidently").__version__,
    }))


def ensure_evidently_venv() -> Path:
    python = EVIDENTLY_VENV / "bin" / "python"
    if python.exists():
        return python
    print(f"creating {EVIDENTLY_VENV} (once) ...", flush=True)
    subprocess.run(["python3", "-m", "venv", str(EVIDENTLY_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *EVIDENTLY_PINS], check=True)
    return python


def run_evidently(folder: Path, reuse: bool) -> dict:
    out = folder / "evidently_result.json"
    if reuse and out.exists():
        print(f"(reusing Evidently's result from {out})")
        return json.loads(out.read_text())
    python = ensure_evidently_venv()
    t0 = time.perf_counter()
    subprocess.run([str(python), __file__, "--evidently-worker", str(folder), str(out)], check=True)
    result = json.loads(out.read_text())
    result["total_s"] = time.perf_counter() - t0
    out.write_text(json.dumps(result))
    return result


# Our side ----------------------------------------------------------------------------------------

def evidently_fill_zeroes(fractions: list[float]) -> list[float]:
    """Evidently's empty-bin rule, to show the PSI difference is only that: 1e-4, or min non-zero / 1e6."""
    nonzero = [f for f in fractions if f > 0]
    fill = min(nonzero) / 1e6 if min(nonzero) <= 1e-4 else 1e-4
    return [f if f > 0 else fill for f in fractions]


def run_ours(ref_path: Path, cur_path: Path, repeat: int) -> dict:
    sys.path.insert(0, str(HERE.parent))
    import numpy as np
    import pandas as pd

    from workbench.monitoring import DriftReference, drift_report
    from workbench.monitoring.drift import psi_from_fractions

    t0 = time.perf_counter()
    ref = pd.read_parquet(ref_path)
    cur = pd.read_parquet(cur_path)
    load_s = time.perf_counter() - t0
    # Evidently's binning: equal-width bins over both samples, numpy's "sturges" count.
    sturges = len(np.histogram_bin_edges(np.concatenate([ref.iloc[:, 0].to_numpy(), cur.iloc[:, 0].to_numpy()]),
                                         bins="sturges")) - 1

    def best(fn):  # type: ignore[no-untyped-def]
        """(wall s, CPU s of all threads) of the fastest of ``repeat`` runs, and its result."""
        runs = []
        for _ in range(repeat):
            t, c = time.perf_counter(), time.process_time()
            result = fn()
            runs.append((time.perf_counter() - t, time.process_time() - c, result))
        wall, cpu, result = min(runs, key=lambda r: r[0])
        return (wall, cpu), result

    default_s, default_report = best(lambda: drift_report(ref, cur))
    uniform_s, uniform_report = best(lambda: drift_report(ref, cur, bins=sturges, binning="uniform"))
    prepare_s, prepared = best(lambda: DriftReference.from_frame(ref))
    window_s, _ = best(lambda: drift_report(prepared, cur))
    psi_evidently_eps = {
        r.feature: psi_from_fractions(evidently_fill_zeroes(list(r.reference_fractions)),
                                      evidently_fill_zeroes(list(r.current_fractions)))
        for r in uniform_report.features}
    return {"load_s": load_s, "default_s": default_s, "uniform_s": uniform_s, "prepare_s": prepare_s,
            "window_s": window_s, "sturges_bins": sturges, "default": default_report,
            "uniform": uniform_report, "psi_evidently_eps": psi_evidently_eps}


def compare(ours: dict, evidently: dict, names: list[str]) -> dict[str, tuple[float, str]]:
    """Max |ours - Evidently| per statistic, on Evidently's definitions."""
    rep = ours["uniform"]
    ev = evidently["values"]
    to_nats = math.sqrt(math.log(2))  # our JS is base 2, Evidently's base e
    pairs = {
        "psi (same bins)": [(rep[n].psi, ev["psi"][n]) for n in names],
        "psi (same bins + Evidently's empty-bin fill)": [(ours["psi_evidently_eps"][n], ev["psi"][n]) for n in names],
        "ks p-value": [(rep[n].ks_pvalue, ev["ks"][n]) for n in names],
        "js distance (base e)": [(rep[n].js_distance * to_nats, ev["jensenshannon"][n]) for n in names],
        "wasserstein / ref std": [(rep[n].wasserstein_norm, ev["wasserstein"][n]) for n in names],
    }
    out = {}
    for stat, values in pairs.items():
        diffs = [abs(a - b) for a, b in values]
        worst = max(range(len(diffs)), key=diffs.__getitem__)
        out[stat] = (diffs[worst], names[worst])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="our runs per variant (best time kept)")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--reuse-evidently", action="store_true", help="reuse the last Evidently result for this size")
    parser.add_argument("--evidently-worker", nargs=2, metavar=("FOLDER", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.evidently_worker:
        evidently_worker(Path(args.evidently_worker[0]), Path(args.evidently_worker[1]))
        return

    folder = DATA / f"drift_{args.rows}x{args.features}"
    t0 = time.perf_counter()
    ref_path, cur_path, names = make_data(args.rows, args.features, folder)
    print(f"data: {folder} ({args.rows:,} rows x {args.features} features per side; "
          f"ready in {time.perf_counter() - t0:.1f}s); cpus: {os.cpu_count()}")

    ours = run_ours(ref_path, cur_path, args.repeat)

    def fmt(t: tuple[float, float]) -> str:
        return f"{t[0]:8.2f} s wall {t[1]:8.2f} s CPU"

    print(f"\nworkbench drift_report (best of {args.repeat}; Parquet load {ours['load_s']:.2f}s not included)")
    print(f"  default bins (deciles of the reference)        {fmt(ours['default_s'])}")
    print(f"  Evidently's bins ({ours['sturges_bins']} equal-width, 'sturges')    {fmt(ours['uniform_s'])}")
    print(f"  DriftReference.from_frame (once per reference) {fmt(ours['prepare_s'])}")
    print(f"  then drift_report(prepared, current)           {fmt(ours['window_s'])}")
    frame = ours["default"].to_frame()
    print("\n" + frame[["feature", "psi", "ks_statistic", "ks_pvalue", "js_distance", "wasserstein_norm",
                        "status"]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.skip_evidently:
        return

    evidently = run_evidently(folder, args.reuse_evidently)
    ev = (evidently["compute_s"], evidently["compute_cpu_s"])
    print(f"\nEvidently {evidently['version']}: one Report of DataDriftPreset(method=m) for m in {METHODS}")
    print(f"  Report.run                                     {fmt(ev)}")
    print(f"  whole subprocess (imports {evidently['import_s']:.1f}s, Parquet load {evidently['load_s']:.1f}s) "
          f"{evidently['total_s']:8.2f} s wall")
    print("\nspeed-up, Evidently Report.run / ours (wall; CPU):")
    for label, key in (("same bins as Evidently", "uniform_s"), ("our default bins", "default_s"),
                       ("prepared reference", "window_s")):
        print(f"  {label:24s} {ev[0] / ours[key][0]:6.1f}x; {ev[1] / ours[key][1]:6.1f}x")
    print("\nmax |ours - Evidently| per statistic (on Evidently's definitions):")
    for stat, (diff, feature) in compare(ours, evidently, names).items():
        print(f"  {stat:48s} {diff:.3g}  ({feature})")


if __name__ == "__main__":
    main()
