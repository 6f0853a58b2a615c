"""Stage records and the chain between them.

Every stage notebook ends with :func:`record_stage`, which writes what the stage produced (its outputs),
what it consumed (its inputs), the notebook, its parameters and the git commit. The batch runner hands one
stage's outputs to the next as parameters, and :func:`trace` walks the records back from any artefact to
the dataset version it came from.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound

STAGES = ("data", "features", "train", "registry", "deploy", "monitor")
PATHS = ("tabular", "llm")
"""The lifecycles that record stages. Each keeps its own records, so the LLM notebooks' `registry` or
`deploy` never becomes the latest record the tabular notebooks (or `workbench run`) read, and back."""


@dataclass(frozen=True)
class StageRecord:
    """What one execution of a stage produced, and where it came from."""

    stage: str
    outputs: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    notebook: str = ""
    git_commit: str = ""
    git_dirty: bool = False
    pipeline_run_id: str = ""
    record_id: str = ""
    created_at: str = ""
    path: str = "tabular"  # which lifecycle (PATHS) recorded it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageRecord:
        return cls(**data)


def git_state(folder: Path) -> tuple[str, bool]:
    """(commit, dirty) of the repository holding ``folder``; ("", False) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
        return commit, dirty
    except (OSError, subprocess.SubprocessError):
        return "", False


def _plain(value: Any) -> Any:
    """JSON for the few non-JSON types stages hand on: paths, timestamps, numpy scalars."""
    if isinstance(value, (Path, datetime)):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _jsonable(value: Any, where: str) -> Any:
    try:
        return json.loads(json.dumps(value, default=_plain))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{where} must be JSON-serialisable: {exc}") from exc


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)  # readers never see half a record


def record_stage(
    settings: Settings,
    stage: str,
    outputs: dict[str, Any],
    *,
    inputs: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    notebook: str = "",
    pipeline_run_id: str = "",
    path: str = "tabular",
) -> StageRecord:
    """Write the record of a finished stage; also as the stage's latest, and into its batch run folder."""
    if stage not in STAGES:
        raise InvalidInput(f"unknown stage {stage!r}; stages are {STAGES}")
    _check_path(path)
    commit, dirty = git_state(settings.project_dir)
    now = datetime.now(UTC)
    record = StageRecord(
        stage=stage,
        outputs=_jsonable(outputs, "outputs"),
        inputs=_jsonable(inputs or {}, "inputs"),
        parameters=_jsonable(parameters or {}, "parameters"),
        notebook=notebook,
        git_commit=commit,
        git_dirty=dirty,
        pipeline_run_id=pipeline_run_id,
        record_id=f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
        created_at=now.isoformat(),
        path=path,
    )
    folder = _stage_dir(settings.lineage_dir, stage, path)
    _write_json(folder / f"{record.record_id}.json", record.to_dict())
    _write_json(folder / "latest.json", record.to_dict())
    if pipeline_run_id:
        run_folder = _stage_dir(settings.runs_dir / pipeline_run_id / "lineage", "", path)
        _write_json(run_folder / f"{stage}.json", record.to_dict())
    return record


def _check_path(path: str) -> None:
    if path not in PATHS:
        raise InvalidInput(f"unknown lineage path {path!r}; paths are {PATHS}")


def _stage_dir(root: Path, stage: str, path: str) -> Path:
    """The tabular path keeps the original layout (<root>/<stage>); others get <root>/<path>/<stage>."""
    base = root if path == "tabular" else root / path
    return base / stage if stage else base


def latest_record(settings: Settings, stage: str, pipeline_run_id: str = "", path: str = "tabular") -> StageRecord:
    """The newest record of ``stage`` on lifecycle ``path`` (within a batch run when ``pipeline_run_id`` is
    given)."""
    _check_path(path)
    on = "" if path == "tabular" else f" on the {path} path"
    if pipeline_run_id:
        file = _stage_dir(settings.runs_dir / pipeline_run_id / "lineage", "", path) / f"{stage}.json"
        hint = f"batch run {pipeline_run_id} has no record of stage {stage!r}{on}"
    else:
        file = _stage_dir(settings.lineage_dir, stage, path) / "latest.json"
        hint = f"stage {stage!r}{on} has never recorded its outputs; run its notebook first"
    if not file.is_file():
        raise NotFound(hint)
    return StageRecord.from_dict(json.loads(file.read_text()))


def records(settings: Settings, stage: str, path: str = "tabular") -> list[StageRecord]:
    """All records of a stage on lifecycle ``path``, oldest first."""
    _check_path(path)
    folder = _stage_dir(settings.lineage_dir, stage, path)
    if not folder.is_dir():
        return []
    found = [StageRecord.from_dict(json.loads(p.read_text()))
             for p in sorted(folder.glob("*.json")) if p.name != "latest.json"]
    return sorted(found, key=lambda r: r.created_at)


def trace(settings: Settings, record: StageRecord) -> list[StageRecord]:
    """The chain from ``record`` back to the earliest stage: each step is the newest earlier record whose
    outputs match one of the inputs of the step after it."""
    chain = [record]
    current = record
    index = STAGES.index(record.stage)
    for stage in reversed(STAGES[:index]):
        wanted = {k: v for k, v in current.inputs.items() if v not in (None, "")}
        match = None
        for candidate in reversed(records(settings, stage, record.path)):
            if any(candidate.outputs.get(k) == v for k, v in wanted.items()):
                match = candidate
                break
        if match is None:
            continue
        chain.append(match)
        current = match
    return chain
