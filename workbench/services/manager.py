"""Start, check and stop the local engines (object store, MLflow tracking server, Ray head) under `.workbench/`.

`up` is idempotent: a service we already run and that answers is left alone. `down` stops exactly what
`up` started, found by the PIDs it recorded, never by a machine-wide `ray stop`. In the cluster profile
nothing is started; `status` checks that the configured services answer. What each engine is (ports,
command, health) lives in :mod:`workbench.services.engines`.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from workbench.config import Settings
from workbench.errors import ServiceUnavailable
from workbench.services.engines import Engine, engines, link_ray_dir, ray_healthy
from workbench.services.processes import (
    ProcessRecord,
    log_tail,
    port_is_free,
    spawn,
    stop_tree,
    wait_until,
)

__all__ = ["SERVICES", "ServiceManager", "ServiceStatus", "link_ray_dir"]

SERVICES = tuple(engines())
"""Every engine the local profile may run, in start order (the object store only with ``storage = "s3"``)."""


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


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class ServiceManager:
    """The local engines as real processes; one instance per Settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def engines(self, names: tuple[str, ...] = SERVICES) -> list[Engine]:
        """The registered engines among ``names`` that these settings use, in start order."""
        known = engines()
        return [known[n] for n in known if n in names and known[n].wanted(self.settings)]

    # health ------------------------------------------------------------------------------------
    def mlflow_healthy(self) -> bool:
        return engines()["mlflow"].healthy(self.settings)

    def ray_healthy(self) -> bool:
        return ray_healthy(self.settings)

    # status ------------------------------------------------------------------------------------
    def status(self) -> list[ServiceStatus]:
        out = []
        for engine in self.engines():
            name = engine.name
            record = ProcessRecord.load(self.settings.services_dir, name)
            proc = record.process() if record else None
            managed = self.settings.profile == "local" and engine.started_here(self.settings)
            url = engine.url(self.settings)
            healthy = engine.healthy(self.settings)
            detail = ""
            if not healthy:
                detail = ("run `workbench up`" if managed
                          else f"check that {name} answers at {url}")
            out.append(ServiceStatus(name, url, healthy, managed, proc.pid if proc else None,
                                     record.log if record else "", detail))
        return out

    # up ----------------------------------------------------------------------------------------
    def up(self, services: tuple[str, ...] = SERVICES) -> list[ServiceStatus]:
        """Start what is missing (local profile) and wait until each answers, in order (the object store
        before MLflow, which keeps its artifacts there)."""
        if self.settings.profile != "local":
            bad = [s for s in self.status() if not s.healthy]
            if bad:
                raise ServiceUnavailable("; ".join(f"{s.name} at {s.url} is not answering" for s in bad)
                                         + " (cluster profile: workbench starts nothing, check the addresses"
                                           " in workbench.toml)")
            return self.status()
        self.settings.check_socket_paths()
        starting: list[tuple[Engine, tuple[psutil.Process, Path]]] = []
        try:
            # all start at once (MLflow and Ray take 10-30 s each), then each is waited for in order
            for engine in self.engines(services):
                if not engine.started_here(self.settings):
                    if not engine.healthy(self.settings):  # a shared one (s3_endpoint_url): checked, not run
                        raise ServiceUnavailable(f"{engine.name} at {engine.url(self.settings)} is not answering "
                                                 "(or its bucket is not there): check its address and keys")
                elif not self._running(engine):
                    starting.append((engine, self._start(engine)))
            for engine, (proc, log) in starting:
                self._wait_started(engine, proc, log)
        except Exception:
            self.down(tuple(engine.name for engine, _ in starting))  # leave nothing half-started behind
            raise
        return self.status()

    def _wait_started(self, engine: Engine, proc: psutil.Process, log: Path) -> None:
        s = self.settings
        answers = engine.answers or engine.healthy
        try:
            wait_until(functools.partial(answers, s), s.service_timeout_s, proc, engine.name, log)
        except ServiceUnavailable:
            if not engine.retry_start_once or _alive(proc):
                raise
            # `ray start` gives its raylet a fixed 30 s to register; on a loaded machine that can run out
            # once. One more try, then the error with the log.
            self.down((engine.name,))
            proc, log = self._start(engine)
            wait_until(functools.partial(answers, s), s.service_timeout_s, proc, engine.name, log)
        if engine.ready is not None:
            engine.ready(s)

    def _running(self, engine: Engine) -> bool:
        record = ProcessRecord.load(self.settings.services_dir, engine.name)
        return bool(record and record.process() and engine.healthy(self.settings))

    def _start(self, engine: Engine) -> tuple[psutil.Process, Path]:
        s, name = self.settings, engine.name
        stale = ProcessRecord.load(s.services_dir, name)
        if stale and (proc := stale.process()):
            stop_tree(proc)  # ours but not answering: restart it cleanly
        ports = engine.ports(s)
        for port in ports:
            if not port_is_free(s.host, port):
                raise ServiceUnavailable(
                    f"cannot start {name}: port {port} on {s.host} is already taken by another process. "
                    f"Stop that process or choose another port (WORKBENCH_{engine.port_setting(s, port)} "
                    "or workbench.toml).")
        log = s.services_dir / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as out:  # keep earlier attempts: the first failure is often the telling one
            out.write(f"\n=== workbench up: starting {name} at {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n")
        command = engine.command(s)
        env = {**s.engine_env(), **engine.env(s)}
        proc = spawn(name, command, log, env, s.state_dir)
        # the record holds the command, never the environment: that is where the keys are
        ProcessRecord(name, proc.pid, proc.create_time(), ports[-1], engine.url(s), str(log), command).save(
            s.services_dir)
        return proc, log

    # down --------------------------------------------------------------------------------------
    def down(self, services: tuple[str, ...] = SERVICES) -> list[str]:
        """Stop the processes `up` recorded, the last started first; return the names stopped."""
        stopped = []
        known = engines()
        for name in reversed([n for n in known if n in services]):
            record = ProcessRecord.load(self.settings.services_dir, name)
            if record is None:
                continue
            proc = record.process()
            if proc is not None:
                stop_tree(proc)
                stopped.append(name)
            if known[name].after_stop is not None:
                known[name].after_stop(self.settings)  # type: ignore[misc]
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
