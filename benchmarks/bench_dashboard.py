"""Dashboard: time to turn 1M prediction points per series into the figures the browser gets, and the
points sent.

A synthetic week of per-request latencies (1M rows by default, with spikes a downsampler must keep) goes
through what a dashboard refresh does with it: MinMaxLTTB downsampling (``tsdownsample``) of the
per-request series, percentiles per window, the latency and throughput figures, and their JSON as it
crosses to the browser. Prints the time per step, the points per series sent, the JSON bytes, and whether
the global maximum (the worst spike) survived. Target: under 1 s, at most a few thousand points per series.

    .venv/bin/python benchmarks/bench_dashboard.py             # 1M points per series
    .venv/bin/python benchmarks/bench_dashboard.py --rows 5000000
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
import plotly.io as pio

from workbench.monitoring import dashboard_figures as dfig
from workbench.monitoring.deployment import LogWindow
from workbench.monitoring.performance import latency_over_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--points", type=int, default=dfig.MAX_POINTS)
    parser.add_argument("--window", default="10min")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    seconds = np.sort(rng.uniform(0, 7 * 86400, args.rows))
    latency = rng.gamma(2.0, 4.0, args.rows) + 5 * np.sin(seconds / 86400 * 2 * np.pi)
    spikes = rng.choice(args.rows, 20, replace=False)
    latency[spikes] += 500.0
    requests = pd.DataFrame({"timestamp": start + pd.to_timedelta(seconds, unit="s"), "latency_ms": latency})

    t0 = time.perf_counter()
    over = latency_over_time(requests, args.window)
    t1 = time.perf_counter()
    window = LogWindow(requests, len(requests), len(requests), 0, ("1",))
    snap = dfig.DashboardSnapshot("bench", pd.Timestamp.now(tz="UTC"), window, None, requests, over, float("nan"),
                                  None, None, pd.DataFrame(columns=["window_start", "feature", "kind", "psi", "n"]),
                                  pd.DataFrame(), (), (), 0.0)
    # Plotly loads its templates and validators on first use (~seconds, once per process): a live dashboard
    # pays it once at start, so time a refresh after that, and report the first one as cold.
    tiny = dfig.DashboardSnapshot("warm", snap.taken_at, window, None, requests.head(10), over.head(3), float("nan"),
                                  None, None, snap.drift_over_time, pd.DataFrame(), (), (), 0.0)
    c0 = time.perf_counter()
    pio.to_json(dfig.latency_figure(tiny), validate=False) + pio.to_json(dfig.throughput_figure(tiny), validate=False)
    cold_extra = time.perf_counter() - c0
    t2 = time.perf_counter()
    latency_fig = dfig.latency_figure(snap, args.points)
    throughput_fig = dfig.throughput_figure(snap, args.points)
    t3 = time.perf_counter()
    payload = pio.to_json(latency_fig, validate=False) + pio.to_json(throughput_fig, validate=False)
    t4 = time.perf_counter()
    per_request = latency_fig.data[0]
    kept_max = float(np.max(per_request.y)) == float(latency.max())
    kept_spikes = int(np.isin(np.asarray(per_request.y), latency[spikes]).sum())
    result = {
        "rows_per_series": args.rows,
        "percentiles_per_window_s": round(t1 - t0, 3),
        "downsample_and_figures_s": round(t3 - t2, 3),
        "to_json_s": round(t4 - t3, 3),
        "render_total_s": round(t4 - t2, 3),
        "with_percentiles_total_s": round(t4 - t0, 3),
        "first_figure_in_process_extra_s": round(cold_extra, 3),
        "points_sent_per_series": {"latency": dfig.points_sent(latency_fig),
                                   "throughput": dfig.points_sent(throughput_fig)},
        "points_in": args.rows,
        "json_bytes": len(payload),
        "global_max_kept": kept_max,
        "spikes_kept_of_20": kept_spikes,
    }
    print(json.dumps(result, indent=2))
    ok = result["render_total_s"] < 1.0 and max(max(v) for v in result["points_sent_per_series"].values()) <= 5000
    print("target (under 1 s, at most a few thousand points per series):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
