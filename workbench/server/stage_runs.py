"""Stage runs started from the UI: one stage notebook under papermill in a background thread, polled by id.

The run itself is :func:`workbench.pipeline.run_pipeline` with ``start == until == stage`` (so handed-on
outputs come from the earlier stages' latest records, exactly as ``workbench run --from``). The Jupyter
server's event loop never waits on it: runs go to a small thread pool, and the state a poll reads is a
snapshot taken under a lock. When a stage fails, the executed copy is read back and the first cell holding
an error output is reported (index, source, error name, value), so the sidebar can show where it broke.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import nbformat

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound, StageFailed, WorkbenchError
from workbench.lineage import STAGES
from workbench.pipeline import NOTEBOOKS, run_pipeline

MAX_KEPT_RUNS = 200
MAX_PROGRESS_LINES = 50


@dataclass(frozen=True)
class FailedCell:
    index: int
    source: str
    ename: str
    evalue: str
    traceback: str


@dataclass(frozen=True)
class StageRun:
    run_id: str
    stage: str
    project: str  # the project folder relative to the server root ('' for the server's project)
    status: str  # queued | running | succeeded | failed
    started_at: float
    parameters: dict[str, Any] = field(default_factory=dict)
    finished_at: float = 0.0
    notebook: str = ""  # the executed copy, relative to the server root when it lies inside it
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    failed_cell: FailedCell | None = None
    progress: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["progress"] = list(self.progress)
        return out


_PAPERMILL_TAGS = {"injected-parameters", "papermill-error-cell-tag"}


def failed_cell(path: Path) -> FailedCell | None:
    """The first cell of an executed notebook with an error output (its index counted as in the source
    notebook, without the cells papermill added), or None."""
    try:
        nb = nbformat.read(str(path), as_version=4)
    except (OSError, ValueError):
        return None
    index = -1
    for cell in nb.cells:
        if set(cell.get("metadata", {}).get("tags", [])) & _PAPERMILL_TAGS:
            continue  # cells papermill added: the index is the one in the user's notebook
        index += 1
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "error":
                trace = "\n".join(output.get("traceback", []))
                return FailedCell(index, str(cell.source)[:4000], str(output.get("ename", "")),
                                  str(output.get("evalue", ""))[:2000], trace[-4000:])
    return None


class StageRunner:
    """Starts stage runs on a thread pool and keeps their state for polling."""

    def __init__(self, root: Path, max_workers: int = 2) -> None:
        self.root = root.resolve()
        # daemon threads, not a ThreadPoolExecutor: the interpreter joins an executor's threads at exit, so
        # stopping the Jupyter server would wait for a stage that runs for an hour
        self._slots = threading.BoundedSemaphore(max_workers)
        self._closed = False
        self._lock = threading.Lock()
        self._runs: dict[str, StageRun] = {}

    def start(self, settings: Settings, stage: str, parameters: Mapping[str, Any] | None = None,
              project: str = "", run: Callable[..., Any] = run_pipeline) -> StageRun:
        if stage not in STAGES:
            raise InvalidInput(f"unknown stage {stage!r}; stages are {list(STAGES)}")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise InvalidInput("parameters must be an object of notebook parameter names to values")
        if not (settings.project_dir / "notebooks" / NOTEBOOKS[stage]).is_file():
            raise NotFound(f"{settings.project_dir / 'notebooks' / NOTEBOOKS[stage]} does not exist: create the "
                           "project with 'New lifecycle project' first")
        run_id = f"ui-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        state = StageRun(run_id, stage, project, "queued", time.time(), dict(parameters or {}))
        with self._lock:
            self._runs[run_id] = state
            self._forget_old()
        threading.Thread(target=self._execute_in_slot, args=(settings, state, run), daemon=True,
                         name=f"workbench-stage-{run_id}").start()
        return state

    def _execute_in_slot(self, settings: Settings, state: StageRun, run: Callable[..., Any]) -> None:
        with self._slots:  # at most max_workers stages at once; the others wait as "queued"
            if self._closed:
                self._update(state.run_id, status="failed", finished_at=time.time(),
                             error="the Jupyter server stopped before this run started")
                return
            self._execute(settings, state, run)

    def _update(self, run_id: str, **changes: Any) -> None:
        with self._lock:
            self._runs[run_id] = replace(self._runs[run_id], **changes)

    def _note(self, run_id: str, line: str) -> None:
        with self._lock:
            current = self._runs[run_id]
            self._runs[run_id] = replace(current, progress=(*current.progress, line)[-MAX_PROGRESS_LINES:])

    def _shown(self, path: str) -> str:
        target = Path(path).resolve()
        return target.relative_to(self.root).as_posix() if self.root in target.parents else str(target)

    def _visible_copy(self, settings: Settings, state: StageRun, executed: Path) -> str:
        """The executed copy where JupyterLab can open it: ``<project>/executed/<run id>-<notebook>``.

        The run's own copy stays under the state folder (``.workbench/runs/``) with its record, but Jupyter's
        contents API serves no hidden path (``allow_hidden`` is off, rightly: it guards files such as
        ``.env``), so the sidebar could not open it: it answered 404. Returns the path to show.
        """
        if not executed.is_file():
            return self._shown(str(executed))
        folder = settings.project_dir / "executed"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{state.run_id}-{NOTEBOOKS[state.stage]}"
        shutil.copyfile(executed, target)
        return self._shown(str(target))

    def _execute(self, settings: Settings, state: StageRun, run: Callable[..., Any]) -> None:
        self._update(state.run_id, status="running")
        executed = settings.runs_dir / state.run_id / NOTEBOOKS[state.stage]
        try:
            report = run(settings, start=state.stage, until=state.stage,
                         parameters={state.stage: state.parameters} if state.parameters else None,
                         run_id=state.run_id, progress=lambda line: self._note(state.run_id, line))
        except StageFailed as exc:
            self._update(state.run_id, status="failed", finished_at=time.time(), error=str(exc),
                         notebook=self._visible_copy(settings, state, executed), failed_cell=failed_cell(executed))
            return
        except WorkbenchError as exc:
            self._update(state.run_id, status="failed", finished_at=time.time(), error=str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a thread must report every failure to the poller
            self._update(state.run_id, status="failed", finished_at=time.time(),
                         error=f"{type(exc).__name__}: {exc}")
            return
        outputs = report.stages[-1].outputs if report.stages else {}
        self._update(state.run_id, status="succeeded", finished_at=time.time(), outputs=dict(outputs),
                     notebook=self._visible_copy(settings, state, executed))

    def get(self, run_id: str) -> StageRun:
        with self._lock:
            found = self._runs.get(run_id)
        if found is None:
            raise NotFound(f"no stage run {run_id!r} in this server (runs are kept while the server runs)")
        return found

    def list(self) -> list[StageRun]:
        with self._lock:
            return sorted(self._runs.values(), key=lambda r: r.started_at, reverse=True)

    def running(self) -> dict[str, StageRun]:
        """The newest active run of each stage."""
        active: dict[str, StageRun] = {}
        for state in reversed(self.list()):
            if state.status in ("queued", "running"):
                active[state.stage] = state
        return active

    def _forget_old(self) -> None:
        done = sorted((r for r in self._runs.values() if r.status in ("succeeded", "failed")),
                      key=lambda r: r.started_at)
        for old in done[:max(0, len(self._runs) - MAX_KEPT_RUNS)]:
            del self._runs[old.run_id]

    def shutdown(self) -> None:
        """Start no queued run any more (running ones finish in their own process)."""
        self._closed = True
