"""Serving against KServe's runtime: our Ray Serve deployment against MLServer, on the v2 protocol.

KServe serves ``modelFormat: mlflow`` with MLServer and its MLflow runtime; this puts our deployment
(``workbench.serving.deploy``, the default HAProxy ingress) beside it on the same machine, serving the SAME
registered MLflow model version and receiving the SAME Open Inference Protocol (KServe v2) bodies
(``POST /v2/models/<name>/infer``, built with ``workbench.serving.client.v2_request``) from the same aiohttp
client as ``bench_serving.py`` (its ``measure``: a warm-up, then a fixed number of requests at concurrency
1, 8 and 32).

The model has no feature store, so that the comparison is like for like (MLServer has no Feast): a
scikit-learn ``GradientBoostingRegressor`` (100 trees, depth 3) on generated data with 10 numeric columns,
logged with ``mlflow.sklearn`` with a signature and registered. Every request carries all its inputs.
What each side does per request:
  - ours: parses the v2 body, validates every row against the signature, scores in ``@serve.batch``
    batches (up to 32 rows, 5 ms wait) on one of 2 replicas, appends each prediction to the prediction log
    (a durable file append) and answers;
  - MLServer 1.7.1 (``mlserver_mlflow.MLflowRuntime``, its defaults otherwise: no adaptive batching, access
    log on): decodes the body into a pandas frame, predicts, encodes the answer; nothing is logged.
Comparable CPU: 2 Serve replicas vs MLServer's ``parallel_workers`` = 2 (its inference pool: 2 worker
processes behind the server process). That pool does not start with the uvloop in MLServer's venv (0.23:
``asyncio.get_event_loop()`` in a worker's ``_ignore_signals`` raises "There is no current event loop"
and the workers restart in a loop); MLServer is therefore started through a 10-line launcher that gives
each worker an event loop first, as older uvloop did implicitly (nothing else changes). Should the pool
still not come up, the run falls back to ``parallel_workers`` = 0 (in-process) and says so.

    .venv/bin/python benchmarks/bench_serving_mlserver.py [--requests 2000] [--levels 1 8 32] [--rows 1]
        [--mlserver-workers 2]

Needs MLServer's venv (``make mlserver``). Own ports, own state (benchmarks/_data/serving_mlserver), all on
127.0.0.1; everything it starts is stopped on exit. Prints one table row per (server, concurrency) and the
ratios ours/MLServer.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import requests  # noqa: E402
from bench_serving import measure  # noqa: E402 - the same load generator as the mlflow comparison

from workbench.config import Settings  # noqa: E402
from workbench.services import ServiceManager  # noqa: E402
from workbench.serving import Resources, delete_deployment, deploy, endpoint_url, list_deployments  # noqa: E402
from workbench.serving.client import v2_request  # noqa: E402

STATE = ROOT / "benchmarks" / "_data" / "serving_mlserver"
MLSERVER_PORTS = {"http_port": 27800, "grpc_port": 27801, "metrics_port": 27802}
MLSERVER_BIN = ROOT / ".venv-mlserver" / "bin"
NAME = "bench-v2"  # the deployment's name and MLServer's model name: the same v2 path on both sides
COLUMNS = [f"x{i}" for i in range(10)]
OURS, THEIRS = "ray serve (workbench)", "mlserver (kserve)"

# Run by MLServer's own python. Its worker processes are spawned: each re-imports this file as __mp_main__,
# so the patch below applies in them too. With uvloop 0.23 the policy's get_event_loop() no longer creates
# a loop; the upstream method relied on that. The signal handlers it adds (no-ops) are the upstream ones.
LAUNCHER = '''
import asyncio
import sys

from mlserver.parallel import worker as _worker


def _ignore_signals(self):
    asyncio.set_event_loop(asyncio.new_event_loop())
    loop = asyncio.get_event_loop()
    for sign in _worker.IGNORED_SIGNALS:
        loop.add_signal_handler(sign, _worker._noop)


_worker.Worker._ignore_signals = _ignore_signals

if __name__ == "__main__":
    from mlserver.cli.main import main

    sys.argv = ["mlserver", "start", sys.argv[1]]
    main()
'''


def register_model(settings: Settings) -> tuple[str, Any, pd.DataFrame]:
    """Train, log (with signature) and register the tabular model; returns its ``models:/`` version URI, the
    fitted model (the oracle for the correctness check) and held-out rows to send."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(6000, len(COLUMNS))), columns=COLUMNS)
    y = 2 * x.x0 + np.sin(3 * x.x1) + x.x2 * x.x3 - 0.5 * x.x4 ** 2 + 0.1 * rng.normal(size=len(x))
    train, held_out = x.iloc[:5000], x.iloc[5000:].reset_index(drop=True)
    model = GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0).fit(train, y.iloc[:5000])
    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    mlflow.set_experiment(settings.experiment)
    registered = f"bench-mlserver-{uuid.uuid4().hex[:8]}"
    with mlflow.start_run(run_name="bench-serving-mlserver"):
        # mlflow 3.17 saves sklearn models with skops, which refuses tree ensembles unless their node type is
        # trusted explicitly (the model is our own, built a line above)
        info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(train, model.predict(train)),
                                        skops_trusted_types=["sklearn.tree._tree.Tree"])
    version = mlflow.register_model(info.model_uri, registered).version
    return f"models:/{registered}/{version}", model, held_out


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """MLServer and its workers share one process group (``start_new_session``): stop all of them."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def start_mlserver(model_dir: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """MLServer serving ``model_dir`` (the version's downloaded artifacts) as ``NAME`` with ``workers``
    inference workers (0: in-process); waits until the model is ready. Raises RuntimeError with the log's
    tail when it does not get there, or when its workers die and restart (the uvloop failure)."""
    root = STATE / f"mlserver-{workers}"
    folder = root / "models"
    (folder / NAME).mkdir(parents=True)
    (folder / NAME / "model-settings.json").write_text(json.dumps({
        "name": NAME, "implementation": "mlserver_mlflow.MLflowRuntime", "parameters": {"uri": str(model_dir)}}))
    (folder / "settings.json").write_text(json.dumps({"host": "127.0.0.1", **MLSERVER_PORTS,
                                                      "parallel_workers": workers}))
    (root / "launch_mlserver.py").write_text(LAUNCHER)
    log_path = root / "mlserver.log"
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        # cwd: MLServer puts its .metrics and .envs folders in the working directory
        proc = subprocess.Popen([str(MLSERVER_BIN / "python"), str(root / "launch_mlserver.py"), str(folder)],
                                cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{MLSERVER_PORTS['http_port']}/v2/models/{NAME}/ready"
    deadline = time.monotonic() + 240
    try:
        while True:
            text = log_path.read_text(errors="replace")
            if "stopped unexpectedly" in text:
                raise RuntimeError(f"MLServer's workers die and restart:\n{text[-2000:]}")
            if proc.poll() is not None:
                raise RuntimeError(f"MLServer exited ({proc.returncode}):\n{text[-2000:]}")
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"MLServer did not get {NAME} ready in 240 s:\n{text[-2000:]}")
            time.sleep(0.5)
        loaded = log_path.read_text(errors="replace").count(f"Loaded model '{NAME}' successfully")
        if workers and loaded < workers + 1:  # the server process loads it, then each worker does
            # the ready check can pass before the last worker has loaded: wait for every worker's line
            while loaded < workers + 1 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.5)
                loaded = log_path.read_text(errors="replace").count(f"Loaded model '{NAME}' successfully")
            if loaded < workers + 1:
                raise RuntimeError(f"only {loaded - 1} of MLServer's {workers} workers loaded {NAME}")
    except BaseException:
        _stop(proc)
        raise
    return proc, f"http://127.0.0.1:{MLSERVER_PORTS['http_port']}/v2/models/{NAME}/infer"


def check_same_answers(ours: str, theirs: str, bodies: list[dict[str, Any]], expected: list[np.ndarray]) -> None:
    """The same v2 request to both gives the same predictions (and the model's own, computed here)."""
    for body, want in zip(bodies, expected, strict=True):
        answers = []
        for url in (ours, theirs):
            response = requests.post(url, json=body, timeout=60)
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}: {response.text[-500:]}")
            outputs = response.json()["outputs"]
            if len(outputs) != 1:
                raise RuntimeError(f"{url} answered {len(outputs)} outputs, expected one: {outputs}")
            answers.append(np.asarray(outputs[0]["data"], dtype="float64").reshape(-1))
        np.testing.assert_allclose(answers[0], answers[1], rtol=1e-9, err_msg="ours vs MLServer")
        np.testing.assert_allclose(answers[0], want, rtol=1e-9, err_msg="ours vs the model in-process")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rows", type=int, default=1, help="rows per request (1: single-row requests)")
    parser.add_argument("--mlserver-workers", type=int, default=2, help="MLServer's parallel_workers")
    args = parser.parse_args()
    if not (MLSERVER_BIN / "mlserver").exists():
        sys.exit(f"MLServer is not installed in {MLSERVER_BIN.parent}: run `make mlserver` first")
    if args.rows < 1 or args.requests < 1:
        sys.exit("--rows and --requests must be >= 1")

    load_at_start = os.getloadavg()
    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir(parents=True)
    services_dir = Path(tempfile.gettempdir()) / "wb-bench-mlserver"  # Ray's socket paths must stay < 108 bytes
    shutil.rmtree(services_dir, ignore_errors=True)
    settings = Settings(project_dir=ROOT, state_dir=services_dir, experiment="bench-serving-mlserver",
                        mlflow_port=25700, ray_port=27079, ray_dashboard_port=28965, ray_metrics_port=29790,
                        serve_port=27700, haproxy_stats_port=29104, haproxy_metrics_port=29105)
    manager = ServiceManager(settings)
    manager.up()
    os.environ.update(settings.engine_env())
    mlserver = None
    try:
        import mlflow

        print("training and registering the model (generated data, 10 numeric columns) ...", flush=True)
        version_uri, model, held_out = register_model(settings)
        for stale in list_deployments(settings):
            delete_deployment(settings, stale.name)
        deploy(settings, version_uri, NAME, resources=Resources(replicas=2, num_cpus=0.5), progress=False)
        model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=version_uri,
                                                             dst_path=str(STATE / "artifacts")))
        workers = args.mlserver_workers
        try:
            mlserver, theirs = start_mlserver(model_dir, workers)
            mode = f"parallel_workers={workers}" + (" (launcher: an event loop per worker)" if workers else "")
        except RuntimeError as exc:
            if workers == 0:
                raise
            print(f"MLServer with parallel_workers={workers} did not work here ({str(exc).splitlines()[0]}); "
                  "falling back to parallel_workers=0 (in-process, 1 core)", flush=True)
            mlserver, theirs = start_mlserver(model_dir, 0)
            workers, mode = 0, f"parallel_workers=0 (fallback: {args.mlserver_workers} did not start)"
        ours = endpoint_url(settings, NAME, "v2")

        records = held_out[COLUMNS].astype("float64").to_dict("records")
        rng = np.random.default_rng(1)
        picks = rng.integers(0, len(records), size=(args.requests, args.rows))
        bodies = [v2_request([records[i] for i in pick]) for pick in picks]
        check = [v2_request(records[:16]), bodies[0]]
        check_same_answers(ours, theirs, check, [model.predict(held_out[COLUMNS].iloc[:16]),
                                                 model.predict(held_out[COLUMNS].iloc[picks[0]])])
        print(f"same v2 request, same predictions on both sides (rel 1e-9, 16 rows and {args.rows} row(s)): ok")

        print(f"\n{args.requests} requests of {args.rows} row(s) per level; ours: 2 replicas, haproxy ingress; "
              f"mlserver: {mode}; {os.cpu_count()} cores, load average {load_at_start[0]:.1f} at start")
        print(f"{'server':<22}{'conc':>5}{'req/s':>10}{'rows/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'fail':>6}")
        results: dict[tuple[str, int], dict[str, float]] = {}
        for level in args.levels:
            for server, url in ((OURS, ours), (THEIRS, theirs)):
                result = measure(url, bodies, level)
                results[(server, level)] = result
                print(f"{server:<22}{level:>5}{result['throughput_rps']:>10.1f}"
                      f"{result['throughput_rps'] * args.rows:>10.1f}{result['p50_ms']:>10.1f}"
                      f"{result['p99_ms']:>10.1f}{result['failures']:>6.0f}", flush=True)
        print("\nratios (ours / mlserver): throughput higher is better, p50 and p99 lower is better")
        for level in args.levels:
            a, b = results[(OURS, level)], results[(THEIRS, level)]
            print(f"  concurrency {level:>2}: throughput x{a['throughput_rps'] / b['throughput_rps']:.2f}, "
                  f"p50 x{a['p50_ms'] / b['p50_ms']:.2f}, p99 x{a['p99_ms'] / b['p99_ms']:.2f}")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        if any(r["failures"] for r in results.values()):
            sys.exit("some requests failed: the figures above are not comparable")
    finally:
        if mlserver is not None:
            _stop(mlserver)
        manager.down()


if __name__ == "__main__":
    main()
