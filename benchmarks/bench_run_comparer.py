"""Run comparer at 10,000 runs: time from opening to a drawn comparison, cold and warm, vs mlflow.search_runs.

Starts its own MLflow server (port 25500, state under benchmarks/_data/mlflow-comparer-bench unless
``--state``), fills one experiment with N runs of 20 params and 10 metrics (one ``log_batch`` per run, in
threads; reused by later invocations), then times, interleaved:

- ``mlflow.search_runs`` of every run as a frame (what a notebook does today), the baseline;
- **cold**: ``RunComparer(experiment)`` with an empty run cache: a full sync from the server, then the
  table's first page, the controls and the parallel-coordinates FigureWidget built;
- **warm**: the same with the cache filled: it draws from the cache and syncs in the background (the
  background sync is timed on its own);
- **warm, fresh process**: a new Python process that imports the widget and opens it (imports included);
- select the top 5 runs and draw curves + diff (metric histories fetched once, then cached).

"Drawn" means the widget state is built and ready to leave the kernel: rows, controls and figures. The
bytes counted are what those widgets send: the page's labels and the figures' JSON (Plotly's binary
array encoding). Rendering in the browser is checked by the UI tests, not here.

    .venv/bin/python benchmarks/bench_run_comparer.py [--runs 10000] [--repeat 3] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mlflow  # noqa: E402
from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from workbench.config import Settings  # noqa: E402
from workbench.registry.run_cache import cache_dir  # noqa: E402
from workbench.services import ServiceManager  # noqa: E402

EXPERIMENT = "wr-bench-comparer"
N_PARAMS, N_METRICS = 20, 10
PORT = 25500


def populate(client: MlflowClient, state: Path, n_runs: int, threads: int, *,
             into: tuple[str, str, int] | None = None) -> tuple[str, str]:
    """``n_runs`` finished runs (20 params, 10 metrics, 3 tags), one log_batch each; reused when filled.

    ``into`` = (experiment id, name, runs it holds) tops up an existing experiment to ``n_runs``.
    """
    marker = state / f"populated-{n_runs}.json"
    if marker.is_file() and into is None:
        found = client.get_experiment(json.loads(marker.read_text())["experiment_id"])
        if found is not None and found.lifecycle_stage == "active":
            print(f"reusing experiment {found.name} ({n_runs} runs)")
            return found.experiment_id, found.name
    if into is not None:
        experiment_id, name, first = into
    else:
        name = EXPERIMENT if client.get_experiment_by_name(EXPERIMENT) is None else f"{EXPERIMENT}-{int(time.time())}"
        experiment_id, first = client.create_experiment(name), 0

    def one(i: int) -> None:
        now = int(time.time() * 1000)
        run = client.create_run(experiment_id, run_name=f"run-{i:05d}", start_time=now,
                                tags={"workbench.dataset_version": f"ds-{i % 7}", "workbench.kind": "training",
                                      "workbench.feature_service": "fraud_features_v1"})
        params = [Param(f"p{j:02d}", str((i * 31 + j) % 97 / 10)) for j in range(N_PARAMS - 2)]
        params += [Param("optimizer", ["adam", "sgd", "adamw"][i % 3]), Param("hidden", f"[{64 * (1 + i % 4)}]")]
        metrics = [Metric(f"m{j:02d}", ((i * 17 + j * 13) % 1000) / 1000, now, 4) for j in range(N_METRICS - 1)]
        metrics += [Metric("roc_auc", (i * 7919 % 10007) / 10007, now + s, s) for s in range(5)]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id, "FINISHED", end_time=now + 1000 + i % 5000)

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for done, _ in enumerate(pool.map(one, range(first, n_runs)), first + 1):
            if done % 1000 == 0:
                print(f"  {done} runs ({done / (time.perf_counter() - began):.0f} runs/s)", flush=True)
    print(f"created {n_runs} runs in {time.perf_counter() - began:.1f} s with {threads} threads")
    marker.write_text(json.dumps({"experiment_id": experiment_id, "name": name, "runs": n_runs}))
    return experiment_id, name


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    result = fn()
    return time.perf_counter() - began, result


def drop_cache(settings: Settings) -> None:
    folder = cache_dir(settings)
    if folder.is_dir():
        for path in folder.iterdir():
            path.unlink()


FRESH = """
import sys, time
began = time.perf_counter()
sys.path.insert(0, {root!r})
from workbench.config import Settings
from workbench.widgets.run_comparer import RunComparer
imported = time.perf_counter() - began
settings = Settings(project_dir={root!r}, state_dir={state!r}, mlflow_port={port})
opened = time.perf_counter()
comparer = RunComparer({name!r}, settings=settings, sync="never")
assert comparer.error == "", comparer.error
print(imported, time.perf_counter() - opened, time.perf_counter() - began)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--state", type=Path, default=ROOT / "benchmarks" / "_data" / "mlflow-comparer-bench")
    parser.add_argument("--keep", action="store_true", help="leave the benchmark's MLflow server running")
    parser.add_argument("--existing", default="", help="measure this experiment as it is (no filling); "
                        "--runs is then taken from it")
    parser.add_argument("--fill-to", type=int, default=0, help="with --existing: first add runs up to this many")
    args = parser.parse_args()

    state = args.state.resolve()
    state.mkdir(parents=True, exist_ok=True)
    settings = Settings(project_dir=ROOT, state_dir=state, mlflow_port=PORT, service_timeout_s=300.0)
    manager = ServiceManager(settings)
    os.environ["UVICORN_TIMEOUT_WORKER_HEALTHCHECK"] = "120"
    os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    began = time.perf_counter()
    manager.up(("mlflow",))
    print(f"MLflow server at {settings.mlflow_uri} up in {time.perf_counter() - began:.1f} s")
    os.environ.update(settings.engine_env())
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    mlflow.set_tracking_uri(settings.mlflow_uri)
    try:
        client = MlflowClient(settings.mlflow_uri)
        if args.existing:
            found = client.get_experiment_by_name(args.existing)
            assert found is not None, f"no experiment {args.existing!r}"
            experiment_id, name = found.experiment_id, found.name
            held = len(mlflow.search_runs(experiment_ids=[experiment_id], max_results=50_000, output_format="list"))
            if args.fill_to > held:
                print(f"{name} holds {held} runs: adding {args.fill_to - held}")
                populate(client, state, args.fill_to, args.threads, into=(experiment_id, name, held))
                held = args.fill_to
            args.runs = held
            print(f"measuring {name} as it is: {args.runs} runs")
        else:
            experiment_id, name = populate(client, state, args.runs, args.threads)
        from workbench.widgets.run_comparer import RunComparer

        mlflow.search_runs(experiment_ids=[experiment_id], max_results=10)  # warm: imports, connections
        results: dict[str, list[float]] = {"mlflow.search_runs": [], "cold open (full sync + draw)": [],
                                           "warm open (cache + draw)": [], "background sync (nothing new)": []}
        sent: dict[str, int] = {}
        for attempt in range(args.repeat):
            seconds, frame = timed(lambda: mlflow.search_runs(experiment_ids=[experiment_id],
                                                              max_results=args.runs))
            assert len(frame) == args.runs, len(frame)
            results["mlflow.search_runs"].append(seconds)
            if attempt < max(1, args.repeat - 1):  # cold is the slow one: one try fewer
                drop_cache(settings)
                seconds, cold = timed(lambda: RunComparer(name, settings=settings, sync="background"))
                assert cold.error == "" and cold.model is not None and len(cold.model.frame) == args.runs
                results["cold open (full sync + draw)"].append(seconds)
                sent["cold open"] = cold.bytes_sent
            seconds, warm = timed(lambda: RunComparer(name, settings=settings, sync="background"))
            assert warm.error == "" and warm.model is not None and len(warm.model.frame) == args.runs
            results["warm open (cache + draw)"].append(seconds)
            sent["warm open"] = warm.bytes_sent
            warm.wait_for_sync(600)
            assert warm.last_sync is not None and warm.last_sync.added == 0, warm.error
            results["background sync (nothing new)"].append(warm.last_sync.seconds)
            print(f"  try {attempt + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in results.items() if v),
                  flush=True)

        model = warm.model
        assert model is not None
        before = warm.bytes_sent
        first, _ = timed(lambda: (model.select_top(5), warm.draw_comparison()))
        again, _ = timed(warm.draw_comparison)
        sent["select top 5 + compare"] = warm.bytes_sent - before
        filt, count = timed(lambda: model.set_filter("roc_auc > 0.9 and optimizer = adam"))
        sort, _ = timed(lambda: (model.set_sort("params.p03", ascending=True), warm.redraw(figures=False)))

        fresh = subprocess.run([sys.executable, "-c", FRESH.format(root=str(ROOT), state=str(state), port=PORT,
                                                                    name=name)],
                               capture_output=True, text=True, env={**os.environ}, check=True)
        imported, opened, total = (float(v) for v in fresh.stdout.split()[-3:])

        print(f"\n{args.runs} runs x ({N_PARAMS} params, {N_METRICS} metrics, 3 tags), own server on port {PORT}:")
        for label, values in results.items():
            print(f"  {label:<34} best {min(values):6.2f} s  median {statistics.median(values):6.2f} s  "
                  f"tries {[round(v, 2) for v in values]}")
        print(f"  {'warm open, fresh process':<34} {total:6.2f} s (imports {imported:.2f} s, "
              f"open + draw {opened:.2f} s)")
        print(f"  {'select top 5 + compare':<34} {first:6.2f} s first (histories fetched), {again:.2f} s cached")
        print(f"  {'filter (2 clauses)':<34} {filt * 1000:6.1f} ms ({count} runs match)")
        print(f"  {'sort by a param + redraw page':<34} {sort * 1000:6.1f} ms")
        cold_best = min(results["cold open (full sync + draw)"])
        base = min(results["mlflow.search_runs"])
        print(f"  ratio mlflow.search_runs / cold open: {base / cold_best:.2f}x (target >= 1); "
              f"warm open {min(results['warm open (cache + draw)']):.2f} s (target < 3 s)")
        print("  bytes to the browser: " + ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in sent.items()))
    finally:
        if not args.keep:
            manager.down(("mlflow",))
            print("benchmark MLflow server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
