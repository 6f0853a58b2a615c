"""Processes we start ourselves: launched in their own session, recorded by PID, stopped by PID tree."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
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
            if abs(proc.create_time() - self.create_time) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
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


def spawn(name: str, command: Sequence[str], log: Path, env: dict[str, str], cwd: Path) -> psutil.Process:
    """Start a command in a new session (so a Ctrl-C in the notebook does not kill it)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        popen = subprocess.Popen(  # noqa: S603 - a fixed argument list, never a shell string
            list(command), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **env}, cwd=cwd, start_new_session=True,
        )
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
