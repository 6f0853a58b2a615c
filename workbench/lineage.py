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
    # record ids of the records this stage consumed; None in records written before parents were recorded
    parents: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageRecord:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


IDENTIFYING_SUFFIXES = ("_version", "_id", "_uri", "_path", "_hash")
"""Output keys that name one artefact (a content hash, a run id, a model URI). Names shared by many artefacts
(an experiment, a dataset name, a feature service) never link two records."""


def identifying(key: str) -> bool:
    return key.endswith(IDENTIFYING_SUFFIXES) and key != "pipeline_run_id"


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
    parents: list[str | StageRecord] | None = None,
) -> StageRecord:
    """Write the record of a finished stage; also as the stage's latest, and into its batch run folder.

    ``parents`` are the records (or their ids) the stage consumed. When not given, they are found once,
    here, from ``inputs``: for each earlier stage, the newest record whose outputs hold one of the inputs'
    identifying values (:data:`IDENTIFYING_SUFFIXES`) and contradict none of them. :func:`trace` then
    follows these ids only.
    """
    if stage not in STAGES:
        raise InvalidInput(f"unknown stage {stage!r}; stages are {STAGES}")
    _check_path(path)
    clean_inputs = _jsonable(inputs or {}, "inputs")
    if parents is None:
        parent_ids = _find_parents(settings, stage, clean_inputs, path)
    else:
        parent_ids = [p.record_id if isinstance(p, StageRecord) else str(p) for p in parents]
    commit, dirty = git_state(settings.project_dir)
    now = datetime.now(UTC)
    record = StageRecord(
        stage=stage,
        outputs=_jsonable(outputs, "outputs"),
        inputs=clean_inputs,
        parameters=_jsonable(parameters or {}, "parameters"),
        notebook=notebook,
        git_commit=commit,
        git_dirty=dirty,
        pipeline_run_id=pipeline_run_id,
        record_id=f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
        created_at=now.isoformat(),
        path=path,
        parents=parent_ids,
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


def _find_parents(settings: Settings, stage: str, inputs: dict[str, Any], path: str) -> list[str]:
    wanted = {k: v for k, v in inputs.items() if identifying(k) and v not in (None, "")}
    if not wanted:
        return []
    found: list[str] = []
    for earlier in reversed(STAGES[:STAGES.index(stage)]):
        for candidate in reversed(records(settings, earlier, path)):
            shared = {k for k in wanted if k in candidate.outputs}
            if shared and all(candidate.outputs[k] == wanted[k] for k in shared):
                found.append(candidate.record_id)
                break
    return found


def get_record(settings: Settings, record_id: str, path: str = "tabular") -> StageRecord:
    """The record with this id, on lifecycle ``path``."""
    _check_path(path)
    for stage in STAGES:
        file = _stage_dir(settings.lineage_dir, stage, path) / f"{record_id}.json"
        if file.is_file():
            return StageRecord.from_dict(json.loads(file.read_text()))
    raise NotFound(f"no lineage record {record_id!r} on the {path} path")


def trace(settings: Settings, record: StageRecord) -> list[StageRecord]:
    """The chain from ``record`` back to the earliest stage, following each record's ``parents`` ids (the
    nearest earlier stage first). A record written before parents were recorded is followed through the
    identifying-value match that :func:`record_stage` uses."""
    chain = [record]
    current = record
    while True:
        ids = current.parents if current.parents is not None else _find_parents(
            settings, current.stage, current.inputs, current.path)
        parents = []
        for record_id in ids:
            try:
                parents.append(get_record(settings, record_id, current.path))
            except NotFound:
                continue  # a deleted record ends that branch
        earlier = [p for p in parents if STAGES.index(p.stage) < STAGES.index(current.stage)]
        if not earlier:
            return chain
        current = max(earlier, key=lambda p: STAGES.index(p.stage))
        chain.append(current)
