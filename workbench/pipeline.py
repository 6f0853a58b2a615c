"""Batch runs of the stage notebooks with papermill.

Each stage's recorded outputs become parameters of the stages after it (only those a notebook declares
in its ``parameters`` cell). A run stops at the first failing stage, writes a report, and can be resumed
from any stage: the earlier stages' outputs are read back from their lineage records.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import papermill as pm

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound, StageFailed
from workbench.lineage import STAGES, StageRecord, latest_record

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
) -> PipelineReport:
    """Execute the stage notebooks in order; raise StageFailed at the first failure (report written).

    ``parameters`` maps a stage name to parameters for its notebook (they win over handed-on outputs).
    ``resume_run`` reads the outputs of the stages before ``start`` from that batch run's records
    (else from each stage's latest record).
    """
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
        declared = pm.inspect_notebook(str(source))
        given = {k: v for k, v in handed.items() if k in declared}
        given.update(parameters.get(stage, {}))
        unknown = sorted(set(parameters.get(stage, {})) - set(declared))
        if unknown:
            raise InvalidInput(f"{NOTEBOOKS[stage]} has no parameter(s) {unknown}; it declares {sorted(declared)}")
        if "pipeline_run_id" in declared:
            given["pipeline_run_id"] = run_id
        result = StageResult(stage, str(target), "failed", parameters=given)
        report.stages.append(result)
        progress(f"[{stage}] {NOTEBOOKS[stage]} -> {target}")
        started = time.perf_counter()
        try:
            pm.execute_notebook(str(source), str(target), parameters=given, cwd=str(source.parent),
                                kernel_name="python3", progress_bar=False, log_output=log_output,
                                request_save_on_cell_execute=True)
        except Exception as exc:  # papermill raises its own error for a failing cell, others for the kernel
            result.seconds = time.perf_counter() - started
            result.error = _describe(exc)
            _write_report(report)
            raise StageFailed(f"stage {stage!r} failed after {result.seconds:.0f} s: {result.error}\n"
                              f"executed notebook: {target}\nresume with: workbench run --from {stage} "
                              f"--resume {run_id}") from exc
        result.seconds = time.perf_counter() - started
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


def _describe(exc: BaseException) -> str:
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    return f"{ename}: {evalue}".strip()[:2000]
