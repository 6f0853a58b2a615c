"""Run comparison at scale: ``workbench.registry.compare_runs`` vs ``mlflow.search_runs`` on 10,000 runs.

Starts its own MLflow server (port 25200, state under benchmarks/_data/mlflow-runs-bench), fills one
experiment with N runs of 20 params and 10 metrics each (``log_batch`` per run, in threads; skipped when
a previous invocation already filled it), then times both functions returning every run as a pandas frame,
and breaks the time down: the server's answer to the REST call (timed with a plain HTTP POST to
``/api/2.0/mlflow/runs/search``, the same request MlflowClient sends), JSON → protobuf → ``Run`` parsing in
the client, and frame building.

    .venv/bin/python benchmarks/bench_runs.py [--runs 10000] [--repeat 3] [--keep] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mlflow  # noqa: E402
import psutil  # noqa: E402
import requests  # noqa: E402
from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from workbench.config import Settings  # noqa: E402
from workbench.registry import compare_runs  # noqa: E402
from workbench.registry.runs import iter_runs, runs_frame  # noqa: E402
from workbench.services import ServiceManager  # noqa: E402

STATE = ROOT / "benchmarks" / "_data" / "mlflow-runs-bench"
EXPERIMENT = "bench-runs"
N_PARAMS, N_METRICS = 20, 10


def populate(client: MlflowClient, n_runs: int, threads: int) -> tuple[str, str]:
    """Create ``n_runs`` finished runs (20 params, 10 metrics, 3 tags); return (experiment id, name).

    A marker file written at the end lets later invocations reuse the filled experiment; an interrupted
    fill is abandoned and a fresh experiment is started.
    """
    marker = STATE / f"populated-{n_runs}.json"
    if marker.is_file():
        filled = json.loads(marker.read_text())["experiment_id"]
        try:
            found = client.get_experiment(filled)
            if found.lifecycle_stage == "active":
                print(f"reusing experiment {found.name} ({n_runs} runs from an earlier invocation)")
                return found.experiment_id, found.name
        except mlflow.exceptions.MlflowException:
            pass
    name = EXPERIMENT if client.get_experiment_by_name(EXPERIMENT) is None else f"{EXPERIMENT}-{int(time.time())}"
    experiment_id = client.create_experiment(name)

    def one(i: int) -> None:
        now = int(time.time() * 1000)
        run = client.create_run(experiment_id, run_name=f"run-{i:05d}", start_time=now,
                                tags={"workbench.dataset_version": f"ds-{i % 7}",
                                      "workbench.feature_service": "fraud_features_v1",
                                      "workbench.kind": "training"})
        params = [Param(f"p{j:02d}", str((i * 31 + j) % 97 / 10)) for j in range(N_PARAMS)]
        metrics = [Metric(f"m{j:02d}", ((i * 17 + j * 13) % 1000) / 1000, now, 4) for j in range(N_METRICS - 1)]
        metrics.append(Metric("roc_auc", (i * 7919 % 10007) / 10007, now, 4))
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id, "FINISHED", end_time=now + 1000 + i % 5000)

    began = time.perf_counter()
    done = 0
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(one, range(n_runs)):
            done += 1
            if done % 1000 == 0:
                rate = done / (time.perf_counter() - began)
                print(f"  {done} runs ({rate:.0f} runs/s)", flush=True)
    print(f"created {n_runs} runs in {time.perf_counter() - began:.1f} s with {threads} threads")
    marker.write_text(json.dumps({"experiment_id": experiment_id, "name": name, "runs": n_runs}))
    return experiment_id, name


@dataclass
class Timing:
    """Wall time, and CPU seconds of this process and of the MLflow server's processes, per try."""

    wall: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    result: Any = None

    def row(self, label: str) -> str:
        med = statistics.median
        return (f"  {label:<44} best {min(self.wall):6.2f} s  median {med(self.wall):6.2f} s  "
                f"client CPU {med(self.client_cpu):5.2f} s  server CPU {med(self.server_cpu):5.2f} s  "
                f"tries {[round(t, 1) for t in self.wall]}")


def server_cpu_seconds() -> float:
    """CPU seconds used so far by the benchmark server (its recorded PID and every child: the workers)."""
    pid = json.loads((STATE / "services" / "mlflow.json").read_text())["pid"]
    total = 0.0
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


def measure(timing: Timing, fn: Callable[[], Any]) -> None:
    server, client, began = server_cpu_seconds(), time.process_time(), time.perf_counter()
    timing.result = fn()
    timing.wall.append(time.perf_counter() - began)
    timing.client_cpu.append(time.process_time() - client)
    timing.server_cpu.append(server_cpu_seconds() - server)


def rounds(variants: dict[str, Callable[[], Any]], repeat: int) -> dict[str, Timing]:
    """Interleave the variants (a, b, c, a, b, c, ...) so a burst of load elsewhere hits them alike."""
    timings = {label: Timing() for label in variants}
    for _ in range(repeat):
        for label, fn in variants.items():
            measure(timings[label], fn)
    return timings


def breakdown(settings: Settings, client: MlflowClient, experiment_id: str, n_runs: int, page_size: int) -> None:
    """Where the time of one comparison goes: server, transfer, client parsing, frame building."""
    body = {"experiment_ids": [experiment_id], "max_results": page_size}
    url = f"{settings.mlflow_uri}/api/2.0/mlflow/runs/search"
    began = time.perf_counter()
    pages, total_bytes, token = 0, 0, None
    while True:
        response = requests.post(url, json={**body, **({"page_token": token} if token else {})}, timeout=600)
        response.raise_for_status()
        total_bytes += len(response.content)
        pages += 1
        token = response.json().get("next_page_token")
        if not token:
            break
    http_s = time.perf_counter() - began
    print(f"  REST only (server query + JSON encode + transfer + json.loads): {http_s:.2f} s, {pages} page(s) "
          f"of <= {page_size}, {total_bytes / 1e6:.1f} MB")
    began = time.perf_counter()
    runs = list(iter_runs(client, [experiment_id], order_by=(), max_results=None, page_size=page_size))
    search_s = time.perf_counter() - began
    began = time.perf_counter()
    runs_frame(runs)
    frame_s = time.perf_counter() - began
    print(f"  MlflowClient.search_runs pages -> Run objects: {search_s:.2f} s "
          f"(client-side protobuf parsing ~{search_s - http_s:.2f} s)")
    print(f"  runs_frame (one pass, {len(runs)} runs): {frame_s:.3f} s")


def profile(settings: Settings, name: str) -> None:
    """cProfile one compare_runs call and sum the cumulative time of the steps that matter."""
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    compare_runs(settings, experiment=name, max_results=None, order_by=())
    profiler.disable()
    total = time.perf_counter() - began
    stats = pstats.Stats(profiler, stream=io.StringIO())
    steps = {  # (file suffix, function) -> label
        ("mlflow/utils/rest_utils.py", "http_request"): "HTTP request: server work + transfer (waiting)",
        ("json/__init__.py", "loads"): "json.loads of the response",
        ("google/protobuf/json_format.py", "ParseDict"): "JSON dict -> protobuf (json_format.ParseDict)",
        ("mlflow/entities/run.py", "from_proto"): "protobuf -> mlflow Run entities",
        ("workbench/registry/runs.py", "runs_frame"): "runs_frame: Run entities -> DataFrame",
    }
    sums = dict.fromkeys(steps.values(), 0.0)
    for (filename, _, function), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        for (suffix, wanted), label in steps.items():
            if function == wanted and filename.endswith(suffix):
                sums[label] += cumulative
    print(f"  cProfile of one compare_runs call ({total:.2f} s under the profiler):")
    for label, seconds in sums.items():
        print(f"    {label:<50} {seconds:6.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--page-size", type=int, default=0, help="compare_runs page size (0: its default)")
    parser.add_argument("--fetch-threads", type=int, default=4, help="threads for compare_runs(threads=...)")
    parser.add_argument("--worker-healthcheck-s", type=int, default=120,
                        help="uvicorn's worker health-check timeout for the benchmark server (uvicorn's default: 5)")
    parser.add_argument("--restart", action="store_true", help="restart the benchmark server (new settings)")
    parser.add_argument("--keep", action="store_true", help="leave the benchmark's MLflow server running")
    parser.add_argument("--profile", action="store_true", help="cProfile one compare_runs call")
    args = parser.parse_args()

    settings = Settings(project_dir=ROOT, state_dir=STATE, mlflow_port=25200,
                        service_timeout_s=300.0)
    manager = ServiceManager(settings)
    # uvicorn kills a server worker that misses a 5 s health ping; a worker busy serialising thousands of
    # runs on a loaded 2-core machine misses it, and the client's retries then dominate the timings
    os.environ["UVICORN_TIMEOUT_WORKER_HEALTHCHECK"] = str(args.worker_healthcheck_s)
    if args.restart:
        manager.down(("mlflow",))
    began = time.perf_counter()
    manager.up(("mlflow",))
    print(f"MLflow server at {settings.mlflow_uri} up in {time.perf_counter() - began:.1f} s")
    os.environ.update(settings.engine_env())
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # set_terminated prints a link per run
    mlflow.set_tracking_uri(settings.mlflow_uri)
    try:
        client = MlflowClient(settings.mlflow_uri)
        experiment_id, name = populate(client, args.runs, args.threads)
        extra = {"page_size": args.page_size} if args.page_size else {}

        every = {"experiment": name, "max_results": None, **extra}
        variants: dict[str, Callable[[], Any]] = {
            "compare_runs": lambda: compare_runs(settings, order_by=(), **every),
            f"compare_runs threads={args.fetch_threads}": lambda: compare_runs(
                settings, order_by=(), threads=args.fetch_threads, **every),
            "mlflow.search_runs": lambda: mlflow.search_runs(experiment_ids=[experiment_id], max_results=args.runs),
            "mlflow.search_runs(output_format='list')": lambda: mlflow.search_runs(
                experiment_ids=[experiment_id], max_results=args.runs, output_format="list"),
            "compare_runs by roc_auc DESC (client sort)": lambda: compare_runs(settings, **every),
        }
        for fn in variants.values():  # warm: imports, connection pools, the server's page cache
            fn()
            break
        timings = rounds(variants, args.repeat)
        ours, theirs = timings["compare_runs"], timings["mlflow.search_runs"]
        assert len(ours.result) == args.runs == len(theirs.result), (len(ours.result), len(theirs.result))
        assert ours.result["run_id"].tolist() == theirs.result["run_id"].tolist()
        parallel = timings[f"compare_runs threads={args.fetch_threads}"]
        assert parallel.result["run_id"].tolist() == ours.result["run_id"].tolist()
        print(f"\n{args.runs} runs x ({N_PARAMS} params, {N_METRICS} metrics, 3 tags), all as one frame; "
              f"{args.repeat} interleaved tries each:")
        for label, timing in timings.items():
            print(timing.row(label))
        print(f"  shapes: compare_runs {ours.result.shape}, mlflow.search_runs {theirs.result.shape}")
        for label in ("compare_runs", f"compare_runs threads={args.fetch_threads}"):
            wall = min(theirs.wall) / min(timings[label].wall)
            cpu = statistics.median(theirs.client_cpu) / statistics.median(timings[label].client_cpu)
            print(f"  ratio mlflow.search_runs / {label}: best wall {wall:.2f}x, client CPU {cpu:.2f}x")

        once = rounds({
            "mlflow.search_runs by roc_auc DESC (MLflow sorts)": lambda: mlflow.search_runs(
                experiment_ids=[experiment_id], max_results=args.runs, order_by=["metrics.roc_auc DESC"]),
            "compare_runs top 20 by roc_auc (MLflow sorts)": lambda: compare_runs(settings, experiment=name,
                                                                                 max_results=20),
            "compare_runs top 20, unordered filter": lambda: compare_runs(
                settings, experiment=name, max_results=20, order_by=(), filter_string="metrics.roc_auc > 0.5"),
            "compare_runs 200 runs + best_of roc_auc": lambda: compare_runs(
                settings, experiment=name, max_results=200, order_by=(), best_of={"roc_auc": "max"}),
        }, 1)
        client_sorted = timings["compare_runs by roc_auc DESC (client sort)"].result["run_id"].tolist()
        server_sorted = once["mlflow.search_runs by roc_auc DESC (MLflow sorts)"].result["run_id"].tolist()
        assert client_sorted == server_sorted, "the client sort must give MLflow's order"
        print("\nonce each:")
        for label, timing in once.items():
            print(timing.row(label))
        print("\nwhere the time goes (one pass each):")
        breakdown(settings, client, experiment_id, args.runs, args.page_size or 10_000)
        if args.profile:
            profile(settings, name)
    finally:
        if not args.keep:
            manager.down(("mlflow",))
            print("benchmark MLflow server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
