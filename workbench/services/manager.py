"""Start, check and stop the local engines (MLflow tracking server, Ray head) under `.workbench/`.

`up` is idempotent: a service we already run and that answers is left alone. `down` stops exactly what
`up` started, found by the PIDs it recorded, never by a machine-wide `ray stop`. In the cluster profile
nothing is started; `status` checks that the configured services answer.
"""

from __future__ import annotations

import functools
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from workbench.config import Settings
from workbench.errors import ServiceUnavailable
from workbench.services.haproxy import write_launcher
from workbench.services.processes import (
    ProcessRecord,
    log_tail,
    port_is_free,
    spawn,
    stop_strays,
    stop_tree,
    wait_until,
)

SERVICES = ("mlflow", "ray")


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    url: str
    healthy: bool
    managed: bool  # started by `workbench up` (local profile) rather than pointed at
    pid: int | None
    log: str
    detail: str = ""

    def __str__(self) -> str:
        state = "up" if self.healthy else "DOWN"
        who = f"pid {self.pid}" if self.pid else ("external" if not self.managed else "not running")
        return f"{self.name:<7} {state:<5} {self.url:<28} {who}" + (f"  ({self.detail})" if self.detail else "")


def _http_ok(url: str, timeout_s: float) -> bool:
    try:
        return requests.get(url, timeout=timeout_s).status_code == 200
    except requests.RequestException:
        return False


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _bin(name: str) -> str:
    """The console script next to this interpreter (the project venv), else on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


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


class ServiceManager:
    """The local engines as real processes; one instance per Settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # health ------------------------------------------------------------------------------------
    def mlflow_healthy(self) -> bool:
        return _http_ok(f"{self.settings.mlflow_uri}/health", self.settings.request_timeout_s)

    def ray_healthy(self) -> bool:
        """The dashboard answers *and* a node is ALIVE: the dashboard alone answers before the raylet has
        registered, and `ray start` can still fail after that on a busy machine."""
        try:
            reply = requests.get(f"{self.settings.ray_address}/api/v0/nodes",
                                 timeout=self.settings.request_timeout_s)
            nodes = reply.json()["data"]["result"]["result"] if reply.status_code == 200 else []
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return False
        return any(node.get("state") == "ALIVE" for node in nodes)

    def _healthy(self, name: str) -> bool:
        return self.mlflow_healthy() if name == "mlflow" else self.ray_healthy()

    def _url(self, name: str) -> str:
        return self.settings.mlflow_uri if name == "mlflow" else self.settings.ray_address

    # status ------------------------------------------------------------------------------------
    def status(self) -> list[ServiceStatus]:
        out = []
        for name in SERVICES:
            record = ProcessRecord.load(self.settings.services_dir, name)
            proc = record.process() if record else None
            managed = self.settings.profile == "local"
            healthy = self._healthy(name)
            detail = ""
            if not healthy:
                detail = ("run `workbench up`" if managed
                          else f"check that the cluster's {name} answers at {self._url(name)}")
            out.append(ServiceStatus(name, self._url(name), healthy, managed, proc.pid if proc else None,
                                     record.log if record else "", detail))
        return out

    # up ----------------------------------------------------------------------------------------
    def up(self, services: tuple[str, ...] = SERVICES) -> list[ServiceStatus]:
        """Start what is missing (local profile) and wait until each answers."""
        if self.settings.profile != "local":
            bad = [s for s in self.status() if not s.healthy]
            if bad:
                raise ServiceUnavailable("; ".join(f"{s.name} at {s.url} is not answering" for s in bad)
                                         + " (cluster profile: workbench starts nothing, check the addresses"
                                           " in workbench.toml)")
            return self.status()
        self.settings.check_socket_paths()
        starting: list[tuple[str, tuple[psutil.Process, Path]]] = []
        try:
            for name in services:
                if not self._running(name):
                    starting.append((name, self._start(name)))
        except ServiceUnavailable:
            self.down(tuple(name for name, _ in starting))
            raise
        try:
            for name, (proc, log) in starting:
                try:
                    wait_until(functools.partial(self._healthy, name), self.settings.service_timeout_s, proc,
                               name, log)
                except ServiceUnavailable:
                    if name != "ray" or _alive(proc):
                        raise
                    # `ray start` gives its raylet a fixed 30 s to register; on a loaded machine that can
                    # run out once. One more try, then the error with the log.
                    self.down((name,))
                    proc, log = self._start(name)
                    wait_until(functools.partial(self._healthy, name), self.settings.service_timeout_s, proc,
                               name, log)
        except ServiceUnavailable:
            self.down(tuple(name for name, _ in starting))  # leave nothing half-started behind
            raise
        return self.status()

    def _running(self, name: str) -> bool:
        record = ProcessRecord.load(self.settings.services_dir, name)
        return bool(record and record.process() and self._healthy(name))

    def _start(self, name: str) -> tuple[psutil.Process, Path]:
        s = self.settings
        stale = ProcessRecord.load(s.services_dir, name)
        if stale and (proc := stale.process()):
            stop_tree(proc)  # ours but not answering: restart it cleanly
        haproxy_ports = [s.haproxy_stats_port, s.haproxy_metrics_port] if s.serve_ingress == "haproxy" else []
        ports = ([s.mlflow_port] if name == "mlflow"
                 else [s.ray_port, s.ray_port + 1, s.ray_dashboard_port + 1, s.ray_metrics_port, s.serve_port,
                       *haproxy_ports, s.ray_dashboard_port])
        for port in ports:
            if not port_is_free(s.host, port):
                raise ServiceUnavailable(
                    f"cannot start {name}: port {port} on {s.host} is already taken by another process. "
                    f"Stop that process or choose another port (WORKBENCH_{self._port_var(name, port)} "
                    "or workbench.toml).")
        log = s.services_dir / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as out:  # keep earlier attempts: the first failure is often the telling one
            out.write(f"\n=== workbench up: starting {name} at {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n")
        if name == "mlflow":
            command = self._mlflow_command()
            url = s.mlflow_uri
        else:
            command = self._ray_command()
            url = s.ray_address
        env = s.engine_env()
        if name == "ray":
            # the raylet waits only 15 s for its dashboard agent by default; a busy 2-core machine needs more
            env["RAY_agent_register_timeout_ms"] = "90000"
            # and the dashboard's modules 60 s to start, which a loaded machine (CI beside a build) overruns
            env["RAY_DASHBOARD_STARTUP_TIMEOUT_S"] = str(int(max(60.0, s.service_timeout_s)))
            env.update(s.serve_ingress_env())
            # the secrets reach jobs and Serve replicas as the head's environment, which Ray workers inherit,
            # so that no job runtime_env or Serve config (both shown by the dashboard) has to carry them
            env.update(s.secret_env())
            if s.serve_ingress == "haproxy":
                write_launcher(s)
        if name == "mlflow":
            # the server's GenAI job runner starts ~7 extra processes (~1.5 GB) we do not use
            env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
            # uvicorn kills a worker that misses a 5 s ping; one serialising thousands of runs on a busy
            # machine does, and the client's request is then retried from scratch
            env["UVICORN_TIMEOUT_WORKER_HEALTHCHECK"] = "120"
        proc = spawn(name, command, log, env, s.state_dir)
        ProcessRecord(name, proc.pid, proc.create_time(), ports[-1], url, str(log), command).save(
            s.services_dir)
        return proc, log

    def _port_var(self, name: str, port: int) -> str:
        s = self.settings
        if name == "mlflow":
            return "MLFLOW_PORT"
        if port == s.ray_metrics_port:
            return "RAY_METRICS_PORT"
        if port == s.serve_port:
            return "SERVE_PORT"
        if s.serve_ingress == "haproxy" and port in (s.haproxy_stats_port, s.haproxy_metrics_port):
            return "HAPROXY_STATS_PORT" if port == s.haproxy_stats_port else "HAPROXY_METRICS_PORT"
        return "RAY_PORT" if port in (s.ray_port, s.ray_port + 1) else "RAY_DASHBOARD_PORT"

    def _mlflow_command(self) -> list[str]:
        s = self.settings
        s.mlflow_dir.mkdir(parents=True, exist_ok=True)
        (s.mlflow_dir / "artifacts").mkdir(exist_ok=True)
        return [
            _bin("mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{s.mlflow_dir / 'mlflow.db'}",
            "--default-artifact-root", str(s.mlflow_dir / "artifacts"),
            "--host", s.host, "--port", str(s.mlflow_port), "--workers", "2",
        ]

    def _ray_command(self) -> list[str]:
        s = self.settings
        link_ray_dir(s)
        return [
            _bin("ray"), "start", "--head", "--block",
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

    # down --------------------------------------------------------------------------------------
    def down(self, services: tuple[str, ...] = SERVICES) -> list[str]:
        """Stop the processes `up` recorded; return the names stopped."""
        stopped = []
        for name in services:
            record = ProcessRecord.load(self.settings.services_dir, name)
            if record is None:
                continue
            proc = record.process()
            if proc is not None:
                stop_tree(proc)
                stopped.append(name)
            if name == "ray":
                # HAProxy (the "haproxy" Serve ingress) can outlive the Ray worker that spawned it
                stop_strays(self.settings.haproxy_dir)
            (self.settings.services_dir / f"{name}.json").unlink(missing_ok=True)
        return stopped

    def logs(self, name: str, lines: int = 50) -> str:
        record = ProcessRecord.load(self.settings.services_dir, name)
        return log_tail(record.log, lines) if record else ""

    def wait_healthy(self, timeout_s: float | None = None) -> None:
        deadline = time.monotonic() + (timeout_s or self.settings.service_timeout_s)
        while time.monotonic() < deadline:
            if all(s.healthy for s in self.status()):
                return
            time.sleep(0.5)
        raise ServiceUnavailable("services did not become healthy; run `workbench status`")
