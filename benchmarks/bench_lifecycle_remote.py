"""The six-stage lifecycle under the remote cluster profile against the local profile, stage by stage (issue 12).

Both runs are ``workbench run`` (``run_pipeline``) on the same stage notebooks with the same parameters (the
deliveries regression example, XGBoost), one after the other in this process:

- **local**: a project whose services this script starts on its own ports (MLflow on SQLite, a Ray head),
  data and prediction log on the project's disk;
- **cluster**: a project whose ``workbench.toml`` selects ``profile = "cluster"`` against services that are
  remote in every way that matters (``tests/remote_stack.py``: SeaweedFS as the bucket, an MLflow server
  keeping artifacts there behind its proxy, a Ray head with its own state dir and working dir); datasets,
  frames, checkpoints and the prediction log go through ``s3://``, the job and the Serve replica get the
  workbench shipped in ``runtime_env``.

Everything runs under ``benchmarks/_data/lifecycle`` (removed first) on ports 25800-25899 and 27800-29899;
services are stopped at the end. It prints seconds per stage for both profiles and their ratio.

    .venv/bin/python benchmarks/bench_lifecycle_remote.py [--rows 2000] [--estimators 40] [--requests 60]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from remote_stack import cluster_toml, remote_stack  # noqa: E402

from workbench.config import Settings, load_settings  # noqa: E402
from workbench.pipeline import PipelineReport, run_pipeline  # noqa: E402
from workbench.services import ServiceManager  # noqa: E402
from workbench.serving import delete_deployment  # noqa: E402

WORK = ROOT / "benchmarks" / "_data" / "lifecycle"
CLUSTER_PORTS = {"s3_port": 25820, "mlflow_port": 25830, "ray_port": 26800, "ray_dashboard_port": 28800,
                 "ray_metrics_port": 29820, "serve_port": 27820, "haproxy_stats_port": 28830,
                 "haproxy_metrics_port": 29830}
LOCAL_PORTS = {"mlflow_port": 25850, "ray_port": 26850, "ray_dashboard_port": 28850, "ray_metrics_port": 29850,
               "serve_port": 27850, "haproxy_stats_port": 28860, "haproxy_metrics_port": 29860}


def _project(name: str, toml: str) -> Path:
    project = WORK / name
    shutil.copytree(ROOT / "notebooks", project / "notebooks", ignore=shutil.ignore_patterns("llm", ".ipynb_*"))
    (project / "workbench.toml").write_text(toml)
    return project


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """The kernels papermill starts inherit this process's environment: set a profile's, restore after."""
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith(("WORKBENCH_", "MLFLOW_"))]:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _parameters(args: argparse.Namespace, name: str) -> dict[str, dict[str, Any]]:
    return {"data": {"example": "deliveries", "n_rows": args.rows, "seed": 5},
            "train": {"trainer": "xgboost", "n_estimators": args.estimators},
            "registry": {"model_name": f"bench-{name}-{uuid.uuid4().hex[:6]}"},
            "deploy": {"deployment_name": f"bench-{name}", "smoke_requests": 20, "num_cpus": 0},
            "monitor": {"normal_requests": args.requests, "drifted_requests": args.requests}}


def _run(settings: Settings, args: argparse.Namespace, name: str) -> PipelineReport:
    started = time.perf_counter()
    try:
        report = run_pipeline(settings, parameters=_parameters(args, name),
                              progress=lambda line: print(f"  {name}: {line[:140]}", flush=True))
    finally:
        delete_deployment(settings, f"bench-{name}")
    print(f"{name}: {time.perf_counter() - started:.0f} s in all", flush=True)
    return report


def _local(args: argparse.Namespace) -> PipelineReport:
    toml = "".join(f"{k} = {v}\n" for k, v in LOCAL_PORTS.items()) + 'experiment = "bench-lifecycle-local"\n'
    project = _project("local", toml)
    settings = load_settings(project)
    manager = ServiceManager(settings)
    t0 = time.perf_counter()
    manager.up()
    print(f"local services up in {time.perf_counter() - t0:.0f} s", flush=True)
    try:
        with _environment({"WORKBENCH_PROJECT_DIR": str(project), **settings.engine_env()}):
            return _run(load_settings(project), args, "local")
    finally:
        manager.down()


def _cluster(args: argparse.Namespace) -> PipelineReport:
    t0 = time.perf_counter()
    with remote_stack(WORK / "cluster-side", WORK / "notebook-side", CLUSTER_PORTS, "bench-lifecycle") as remote:
        print(f"remote services up in {time.perf_counter() - t0:.0f} s", flush=True)
        project = _project("cluster", cluster_toml(remote.cluster, "bench-lifecycle-cluster"))
        key, secret = remote.notebook.s3_keys()
        env = {"WORKBENCH_PROJECT_DIR": str(project), "WORKBENCH_S3_ACCESS_KEY_ID": key,
               "WORKBENCH_S3_SECRET_ACCESS_KEY": secret, "MLFLOW_TRACKING_URI": remote.cluster.mlflow_uri,
               "MLFLOW_REGISTRY_URI": remote.cluster.mlflow_uri}
        with _environment(env):
            return _run(load_settings(project), args, "cluster")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--estimators", type=int, default=40)
    parser.add_argument("--requests", type=int, default=60, help="normal and drifted requests of 06")
    parser.add_argument("--only", choices=["local", "cluster"], help="run one profile")
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    reports: dict[str, PipelineReport] = {}
    for name, runner in (("local", _local), ("cluster", _cluster)):
        if args.only in (None, name):
            reports[name] = runner(args)

    stages = [s.stage for s in next(iter(reports.values())).stages]
    seconds = {name: {s.stage: s.seconds for s in r.stages} for name, r in reports.items()}
    print(f"\n{'stage':<10}" + "".join(f"{n:>10}" for n in reports) + ("     ratio" if len(reports) == 2 else ""))
    for stage in stages + ["total"]:
        row = {n: (sum(v.values()) if stage == "total" else v[stage]) for n, v in seconds.items()}
        line = f"{stage:<10}" + "".join(f"{row[n]:>9.1f}s" for n in reports)
        if len(reports) == 2:
            line += f"{row['cluster'] / row['local']:>9.2f}x"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
