"""Batch runs of the stage notebooks with papermill.

Each stage's recorded outputs become parameters of the stages after it (only those a notebook declares
in its ``parameters`` cell). A run stops at the first failing stage, writes a report, and can be resumed
from any stage: the earlier stages' outputs are read back from their lineage records.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import papermill as pm
import psutil

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound, StageFailed
from workbench.lineage import STAGES, StageRecord, latest_record

DEFAULT_STAGE_TIMEOUT_S = 4 * 3600.0
"""Generous: a stage of a big demo trains for minutes; only a hang runs for hours."""

NOTEBOOKS: dict[str, str] = {
    "data": "01_data.ipynb",
    "features": "02_features.ipynb",
    "train": "03_train.ipynb",
    "registry": "04_registry.ipynb",
    "deploy": "05_deploy.ipynb",
    "monitor": "06_monitor.ipynb",
}


@dataclass
class StageResult:
    stage: str
    notebook: str
    status: str  # succeeded | failed | skipped
    seconds: float = 0.0
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class PipelineReport:
    run_id: str
    run_dir: str
    stages: list[StageResult]

    @property
    def ok(self) -> bool:
        return all(s.status != "failed" for s in self.stages)

    def summary(self) -> str:
        lines = [f"run {self.run_id} ({self.run_dir})"]
        for s in self.stages:
            lines.append(f"  {s.stage:<9} {s.status:<9} {s.seconds:6.1f}s  {s.notebook}"
                         + (f"\n    {s.error}" if s.error else ""))
        return "\n".join(lines)


def available_stages(settings: Settings) -> list[str]:
    """The stages whose notebook exists in this project, in lifecycle order."""
    folder = settings.project_dir / "notebooks"
    return [s for s in STAGES if (folder / NOTEBOOKS[s]).is_file()]


def _select(stages: Sequence[str], start: str | None, until: str | None) -> list[str]:
    for name in (start, until):
        if name is not None and name not in stages:
            raise InvalidInput(f"unknown stage {name!r}; this project has {list(stages)}")
    first = stages.index(start) if start else 0
    last = stages.index(until) if until else len(stages) - 1
    if last < first:
        raise InvalidInput(f"--until {until!r} comes before --from {start!r}")
    return list(stages[first:last + 1])


def hand_over(declared: Iterable[str], handed: Mapping[str, Any], given: Mapping[str, Any],
              run_id: Any, notebook: str = "") -> dict[str, Any]:
    """The parameters a stage notebook gets: the handed-on outputs it declares, then the user's (they win),
    then the batch run's id when it declares ``pipeline_run_id``. A user parameter it does not declare is
    InvalidInput. The one rule of ``workbench run`` and of the exported pipelines."""
    names = set(declared)
    unknown = sorted(set(given) - names)
    if unknown:
        raise InvalidInput(f"{notebook or 'the notebook'} has no parameter(s) {unknown}; it declares {sorted(names)}")
    out = {k: v for k, v in handed.items() if k in names}
    out.update(given)
    if "pipeline_run_id" in names:
        out["pipeline_run_id"] = run_id
    return out


def _write_report(report: PipelineReport) -> None:
    path = Path(report.run_dir) / "report.json"
    path.write_text(json.dumps(asdict(report), indent=2, default=str))


def run_pipeline(
    settings: Settings,
    *,
    start: str | None = None,
    until: str | None = None,
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    resume_run: str | None = None,
    run_id: str | None = None,
    progress: Callable[[str], None] = print,
    log_output: bool = False,
    stage_timeout_s: float = DEFAULT_STAGE_TIMEOUT_S,
) -> PipelineReport:
    """Execute the stage notebooks in order; raise StageFailed at the first failure (report written).

    ``parameters`` maps a stage name to parameters for its notebook (they win over handed-on outputs).
    ``resume_run`` reads the outputs of the stages before ``start`` from that batch run's records
    (else from each stage's latest record). A stage still running after ``stage_timeout_s`` is stopped
    (its kernel too), reported as failed with what it had done, and can be resumed like any failure.
    """
    if not stage_timeout_s > 0:
        raise InvalidInput(f"stage_timeout_s must be a positive number of seconds, got {stage_timeout_s!r}")
    stages = available_stages(settings)
    if not stages:
        raise NotFound(f"no stage notebooks in {settings.project_dir / 'notebooks'}")
    selected = _select(stages, start, until)
    parameters = dict(parameters or {})
    for name in parameters:
        if name not in STAGES:
            raise InvalidInput(f"parameters given for unknown stage {name!r}; stages are {list(STAGES)}")
    run_id = run_id or f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    run_dir = settings.runs_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)

    handed: dict[str, Any] = {}
    for earlier in stages[:stages.index(selected[0])]:
        try:
            previous = latest_record(settings, earlier, resume_run or "")
        except NotFound as exc:
            raise NotFound(f"cannot start at {selected[0]!r}: {exc}") from exc
        handed.update(previous.outputs)

    report = PipelineReport(run_id, str(run_dir), [])
    for stage in selected:
        source = settings.project_dir / "notebooks" / NOTEBOOKS[stage]
        target = run_dir / NOTEBOOKS[stage]
        given = hand_over(pm.inspect_notebook(str(source)), handed, parameters.get(stage, {}), run_id,
                          NOTEBOOKS[stage])
        result = StageResult(stage, str(target), "failed", parameters=given)
        report.stages.append(result)
        progress(f"[{stage}] {NOTEBOOKS[stage]} -> {target}")
        started = time.perf_counter()
        error = _execute_with_timeout(source, target, given, log_output, stage_timeout_s)
        if error:
            result.seconds = time.perf_counter() - started
            result.error = error
            _write_report(report)
            raise StageFailed(f"stage {stage!r} failed after {result.seconds:.0f} s: {result.error}\n"
                              f"executed notebook: {target}\nresume with: workbench run --from {stage} "
                              f"--resume {run_id}")
        result.seconds = time.perf_counter() - started
        _drop_widget_state(target)
        try:
            record: StageRecord = latest_record(settings, stage, run_id)
        except NotFound as exc:
            result.error = f"{NOTEBOOKS[stage]} finished without recording its outputs (workbench.lineage)"
            _write_report(report)
            raise StageFailed(result.error) from exc
        result.status = "succeeded"
        result.outputs = record.outputs
        handed.update(record.outputs)
        progress(f"[{stage}] done in {result.seconds:.0f} s: {record.outputs}")
        _write_report(report)
    return report


def _execute(source: str, target: str, parameters: dict[str, Any], log_output: bool,
             errors: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Child process: papermill on one notebook; puts "" or the error's description on ``errors``."""
    try:
        pm.execute_notebook(source, target, parameters=parameters, cwd=str(Path(source).parent),
                            kernel_name="python3", progress_bar=False, log_output=log_output,
                            request_save_on_cell_execute=True)
        errors.put("")
    except BaseException as exc:  # papermill raises its own error for a failing cell, others for the kernel
        errors.put(_describe(exc))


def _execute_with_timeout(source: Path, target: Path, parameters: dict[str, Any], log_output: bool,
                          timeout_s: float) -> str:
    """Run a stage notebook in a child process (its kernel below it) so a stage that hangs can be stopped
    whole at its deadline. Returns "" on success, else what went wrong."""
    from workbench.services.processes import stop_tree

    context = multiprocessing.get_context("spawn")  # no copy of this process's threads or clients
    errors = context.Queue()
    child = context.Process(target=_execute, args=(str(source), str(target), parameters, log_output, errors),
                            daemon=False)
    child.start()
    child.join(timeout_s)
    if child.is_alive():
        try:
            stop_tree(psutil.Process(child.pid))
        except psutil.Error:
            pass
        child.join(30)
        return (f"TimeoutError: the stage was still running after its time limit of {timeout_s:.0f} s and was "
                "stopped (raise it with --stage-timeout, or stage_timeout_s); the executed copy holds the "
                "cells that finished")
    try:
        return str(errors.get(timeout=5))
    except queue.Empty:
        return f"the stage's process ended with exit code {child.exitcode} before reporting (killed?)"


def _drop_widget_state(path: Path) -> None:
    """The executed copy is a report: without the widget state papermill saves, an HTML export shows each
    widget's own static snapshot (its text/html), instead of asking a CDN for a widget manager that,
    offline, draws nothing."""
    import nbformat

    try:
        notebook = nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return
    if notebook.metadata.pop("widgets", None) is not None:
        nbformat.write(notebook, path)


def _describe(exc: BaseException) -> str:
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    return f"{ename}: {evalue}".strip()[:2000]
