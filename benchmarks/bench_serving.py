"""Serving throughput and latency: our Ray Serve deployment against ``mlflow models serve``.

Same registered model version, same machine, same client (aiohttp, a fixed number of single-row
requests at concurrency 1, 8 and 32). What each side does per request differs, and is stated:
  - ours: validates the payload, looks the user and merchant up in Feast's online store, scores in
    ``@serve.batch`` batches, appends the prediction to the prediction log, answers;
  - ``mlflow models serve`` (uvicorn, ``--env-manager local``): receives the 11 model inputs already
    computed (the client did the feature lookup) and scores one request at a time, logging nothing.
Both get the whole machine: 2 Serve replicas vs 2 uvicorn workers. ``--ingress`` picks how HTTP reaches
the replicas (``Settings.serve_ingress``): ``haproxy``, Ray's high-throughput mode (HAProxy in front,
replicas answer HTTP themselves), or ``proxy``, Serve's Python proxy actor (the default of ``Settings``).

    .venv/bin/python benchmarks/bench_serving.py [--requests 2000] [--levels 1 8 32] [--ingress haproxy|proxy]

Prints one table row per (server, concurrency) and the ratios ours/mlflow.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import aiohttp  # noqa: E402
import requests  # noqa: E402
from serving_fixtures import build_served_model  # noqa: E402

from workbench.config import Settings  # noqa: E402
from workbench.features import online_features  # noqa: E402
from workbench.services import ServiceManager  # noqa: E402
from workbench.serving import Resources, delete_deployment, deploy, endpoint_url, list_deployments  # noqa: E402

STATE = ROOT / "benchmarks" / "_data" / "serving"
PORTS = {"mlflow_port": 25200, "ray_port": 26579, "ray_dashboard_port": 28465, "ray_metrics_port": 29290,
         "serve_port": 27200, "haproxy_stats_port": 28604, "haproxy_metrics_port": 29301}
MLFLOW_SERVE_PORT = 27300
NAME = "bench"


async def _run(url: str, bodies: list[dict], concurrency: int) -> tuple[float, np.ndarray, int]:
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            nonlocal failures
            while not queue.empty():
                body = queue.get_nowait()
                began = time.perf_counter()
                async with session.post(url, json=body) as response:
                    await response.read()
                    if response.status != 200:
                        failures += 1
                latencies.append((time.perf_counter() - began) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return elapsed, np.array(latencies), failures


def measure(url: str, bodies: list[dict], concurrency: int) -> dict[str, float]:
    asyncio.run(_run(url, bodies[: max(50, concurrency * 4)], concurrency))  # warm-up
    elapsed, latencies, failures = asyncio.run(_run(url, bodies, concurrency))
    return {"throughput_rps": len(bodies) / elapsed, "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)), "failures": failures}


def start_mlflow_serve(settings: Settings, model_uri: str) -> subprocess.Popen[bytes]:
    bin_dir = str(Path(sys.executable).parent)  # mlflow execs `uvicorn` through bash: it must be on PATH
    env = {**os.environ, **settings.engine_env(), "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    log = open(STATE / "mlflow-serve.log", "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([str(Path(bin_dir) / "mlflow"), "models", "serve", "-m", model_uri,
                             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(MLFLOW_SERVE_PORT),
                             "--workers", "2"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{MLFLOW_SERVE_PORT}/ping", timeout=2).ok:
                return proc
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            break
        time.sleep(1)
    raise RuntimeError(f"mlflow models serve did not start; see {STATE / 'mlflow-serve.log'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--ingress", choices=["haproxy", "proxy"], default="haproxy")
    args = parser.parse_args()

    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir(parents=True)
    services_dir = Path(tempfile.gettempdir()) / "wb-bench-serving"  # Ray's socket paths must stay < 108 bytes
    shutil.rmtree(services_dir, ignore_errors=True)
    services = Settings(project_dir=ROOT, state_dir=services_dir, experiment="bench-serving",
                        serve_ingress=args.ingress, **PORTS)
    manager = ServiceManager(services)
    manager.up()
    os.environ.update(services.engine_env())
    mlflow_proc = None
    try:
        print("building the model (generated data, Feast, in-process training, registry) ...", flush=True)
        model = build_served_model(services, STATE / "model", n_rows=20_000, n_versions=1)
        settings = model.settings
        version_uri = model.version_uri(model.versions[0])
        for stale in list_deployments(settings):
            delete_deployment(settings, stale.name)
        deploy(settings, version_uri, NAME, resources=Resources(replicas=2, num_cpus=0.5), progress=False)
        mlflow_proc = start_mlflow_serve(settings, version_uri)

        rows = model.transactions.sample(args.requests, random_state=0, replace=True).reset_index(drop=True)
        ours = [{"instances": [{"user_id": int(r.user_id), "merchant_id": int(r.merchant_id),
                                "amount": float(r.amount), "timestamp": r.event_timestamp.isoformat()}]}
                for r in rows.itertuples()]
        features = online_features(settings, rows.user_id.tolist(), rows.merchant_id.tolist())
        when = pd.to_datetime(rows.event_timestamp, utc=True)
        features["amount"], features["hour_of_day"] = rows.amount, when.dt.hour
        features["is_night"] = (when.dt.hour < 6).astype(int)
        import mlflow

        columns = mlflow.pyfunc.load_model(version_uri).metadata.get_input_schema().input_names()
        theirs = [{"dataframe_split": {"columns": columns, "data": [row]}}
                  for row in features[columns].astype("float64").to_numpy().tolist()]

        print(f"\n{args.requests} single-row requests per level; 2 replicas ({args.ingress} ingress) vs 2 workers "
              f"on {os.cpu_count()} cores")
        print(f"{'server':<22}{'conc':>5}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'fail':>6}")
        results: dict[tuple[str, int], dict[str, float]] = {}
        for level in args.levels:
            for server, url, bodies in (("ray serve (workbench)", endpoint_url(settings, NAME), ours),
                                        ("mlflow models serve", f"http://127.0.0.1:{MLFLOW_SERVE_PORT}/invocations",
                                         theirs)):
                result = measure(url, bodies, level)
                results[(server, level)] = result
                print(f"{server:<22}{level:>5}{result['throughput_rps']:>10.1f}{result['p50_ms']:>10.1f}"
                      f"{result['p99_ms']:>10.1f}{result['failures']:>6.0f}", flush=True)
        print("\nratios (ours / mlflow): throughput higher is better, p99 lower is better")
        for level in args.levels:
            a, b = results[("ray serve (workbench)", level)], results[("mlflow models serve", level)]
            print(f"  concurrency {level:>2}: throughput x{a['throughput_rps'] / b['throughput_rps']:.2f}, "
                  f"p99 x{a['p99_ms'] / b['p99_ms']:.2f}")
    finally:
        if mlflow_proc is not None:
            os.killpg(mlflow_proc.pid, 15)
        manager.down()


if __name__ == "__main__":
    main()
