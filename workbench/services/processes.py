"""Processes we start ourselves: launched in their own session, recorded by PID, stopped by PID tree."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from workbench.errors import ServiceUnavailable


@dataclass
class ProcessRecord:
    """What `up` wrote down so that `down` stops exactly what it started."""

    name: str
    pid: int
    create_time: float
    port: int
    url: str
    log: str
    command: list[str]
    # psutil derives a start time from the boot time, which moves when the wall clock is stepped (NTP, a
    # resumed laptop): the start measured from boot does not, so records compare that as well.
    boot_time: float = field(default_factory=psutil.boot_time)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{self.name}.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, folder / f"{self.name}.json")

    @classmethod
    def load(cls, folder: Path, name: str) -> ProcessRecord | None:
        path = folder / f"{name}.json"
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            return None  # a damaged record is treated as "not started by us"

    def process(self) -> psutil.Process | None:
        """The live process, only if it is still the one we started (PIDs get reused)."""
        try:
            proc = psutil.Process(self.pid)
            started = proc.create_time()
            same = abs(started - self.create_time) <= 1.0 or (
                self.boot_time > 0
                and abs((started - psutil.boot_time()) - (self.create_time - self.boot_time)) <= 1.0)
            if not same or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def log_tail(path: str | Path, lines: int = 30) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


INHERITED_VARIABLES = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "TZ", "TMPDIR", "TEMP", "TMP",
                       "VIRTUAL_ENV", "LD_LIBRARY_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
                       "CUDA_VISIBLE_DEVICES", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
"""Variables a started engine takes from the caller as they are: what any program needs to run here."""
INHERITED_PREFIXES = ("LC_", "WORKBENCH_", "MLFLOW_", "RAY_", "OPENBLAS_", "OMP_", "MKL_", "AWS_", "NVIDIA_")
"""Prefixes of variables the user sets on purpose for the engines (settings, credentials, thread counts; the
OpenBLAS variables keep old OpenBLAS builds from crashing on some processors)."""
SESSION_VARIABLES = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")
"""MLflow's per-session choices (``mlflow.set_experiment`` writes ``MLFLOW_EXPERIMENT_ID``): a long-lived
engine started from a notebook must not hand one notebook's experiment or run to every job it runs later."""


def engine_environment(extra: dict[str, str], base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process the workbench starts: what it needs from the caller, plus ``extra``.

    Never the caller's whole environment: a library imported into a notebook kernel may have set variables
    for itself (Feast sets ``PROMETHEUS_MULTIPROC_DIR`` to a temp dir it deletes at exit, which then breaks
    every ``/metrics`` call of a vLLM server started from that kernel).
    """
    source = dict(os.environ if base is None else base)
    env = {k: v for k, v in source.items()
           if (k in INHERITED_VARIABLES or k.startswith(INHERITED_PREFIXES)) and k not in SESSION_VARIABLES}
    env.update(extra)
    return env


def spawn(name: str, command: Sequence[str], log: Path, env: dict[str, str], cwd: Path) -> psutil.Process:
    """Start a command in a new session (so a Ctrl-C in the notebook does not kill it), with the
    environment :func:`engine_environment` chooses plus ``env``. A missing program is a ServiceUnavailable
    naming it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        try:
            popen = subprocess.Popen(  # noqa: S603 - a fixed argument list, never a shell string
                list(command), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=engine_environment(env), cwd=cwd, start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise ServiceUnavailable(
                f"cannot start {name}: the program {command[0]!r} is not installed or not on PATH. Run `make setup` "
                "(it installs MLflow, Ray and the rest into .venv) and use the workbench from that environment"
                + (" (vLLM: `make llm`)" if "vllm" in name else "") + ".") from exc
    return psutil.Process(popen.pid)


def wait_until(check: Callable[[], bool], timeout_s: float, proc: psutil.Process | None, name: str,
               log: Path) -> None:
    """Poll ``check`` until true; fail early with the log tail if the process dies first."""
    deadline = time.monotonic() + timeout_s
    delay = 0.2
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and (not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE):
            raise ServiceUnavailable(
                f"{name} exited while starting; read its log {log}:\n{log_tail(log)}")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)
    raise ServiceUnavailable(
        f"{name} did not become healthy within {timeout_s:.0f} s; read its log {log}:\n{log_tail(log)}")


def stop_strays(folder: Path) -> list[int]:
    """Stop processes whose command line names a path under ``folder``: helpers an engine spawned that
    outlived it (HAProxy under Ray Serve). Returns their PIDs."""
    marker = str(folder) + os.sep
    me = psutil.Process()
    spared = {me.pid, *(p.pid for p in me.parents())}
    strays = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if proc.pid not in spared and any(marker in part for part in proc.info["cmdline"] or ()):
                strays.append(proc)
        except psutil.Error:
            continue
    for proc in strays:
        stop_tree(proc, grace_s=5)
    return [proc.pid for proc in strays]


def stop_tree(proc: psutil.Process, grace_s: float = 15.0) -> None:
    """Terminate a process and all its descendants; kill what does not exit within ``grace_s``."""
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return
    try:
        proc.terminate()  # let the parent (e.g. `ray start --block`) shut its own children down
        proc.wait(grace_s)
    except psutil.Error:
        pass
    survivors = []
    for child in family:
        try:
            if child.is_running():
                child.terminate()
                survivors.append(child)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(survivors, timeout=5)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)


def listening_addresses(proc: psutil.Process) -> set[tuple[str, int]]:
    """The (address, port) pairs on which ``proc`` and its descendants listen, read from the sockets
    themselves (not from command lines, which say what was asked for, not what was bound)."""
    found: set[tuple[str, int]] = set()
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return found
    for member in family:
        try:
            connections = member.net_connections(kind="inet")
        except psutil.Error:
            continue
        found.update((c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN)
    return found


def processes_listening_on(port: int) -> set[int]:
    """PIDs of this user's processes that hold a listening TCP socket on ``port`` (any address).

    Other users' sockets have no visible owner and are left out; an empty set means "none visible"."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return set()
    return {c.pid for c in connections
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid is not None}


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 and IPv4-mapped loopback (``::ffff:127.0.0.1``, how Ray's gRPC servers bind)."""
    import ipaddress

    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_loopback)
