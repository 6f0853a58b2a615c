"""WorkbenchManager without HTTP: templates, projects, stage summaries, stage runs, paths, bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound
from workbench.lineage import STAGES, record_stage
from workbench.pipeline import NOTEBOOKS
from workbench.server.manager import WorkbenchManager
from workbench.server.paths import resolve_under
from workbench.server.stage_runs import failed_cell

REPO_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def notebook(path: Path, cells: list[str], parameters: str = "x = 1") -> Path:
    all_cells = [{"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]}, "execution_count": None,
                  "outputs": [], "source": parameters}]
    all_cells += [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [],
                   "source": src} for i, src in enumerate(cells)]
    nb = {"nbformat": 4, "nbformat_minor": 5, "cells": all_cells,
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))
    return path


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    (folder / "work").mkdir(parents=True)
    return folder


@pytest.fixture()
def manager(root: Path) -> WorkbenchManager:
    return WorkbenchManager(Settings(project_dir=root), root, REPO_NOTEBOOKS)


def test_templates_are_the_six_stage_notebooks(manager: WorkbenchManager) -> None:
    listed = manager.list_templates()
    assert [t["stage"] for t in listed] == list(STAGES)
    assert [t["notebook"] for t in listed] == [NOTEBOOKS[s] for s in STAGES]


def test_copy_template_never_overwrites(manager: WorkbenchManager, root: Path) -> None:
    first = manager.copy_template("train", "work")["path"]
    (root / first).write_text("my edits")
    second = manager.copy_template("train", "work")["path"]
    third = manager.copy_template("train", "work")["path"]
    assert (first, second, third) == ("work/03_train.ipynb", "work/03_train-1.ipynb", "work/03_train-2.ipynb")
    assert (root / first).read_text() == "my edits"
    assert (root / second).read_bytes() == (REPO_NOTEBOOKS / "03_train.ipynb").read_bytes()


@pytest.mark.parametrize("folder", ["..", "../x", "work/../../x", "/etc", "work/../..", "a\x00b"])
def test_paths_outside_the_root_are_refused(manager: WorkbenchManager, folder: str) -> None:
    with pytest.raises(InvalidInput):
        manager.copy_template("data", folder)
    with pytest.raises(InvalidInput):
        manager.new_project("p", folder)


def test_a_link_out_of_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidInput, match="outside the server root"):
        resolve_under(root, "link")
    assert resolve_under(root, "work") == (root / "work").resolve()


def test_bad_stage_and_missing_folder(manager: WorkbenchManager) -> None:
    with pytest.raises(InvalidInput, match="unknown stage"):
        manager.copy_template("nope")
    with pytest.raises(NotFound):
        manager.copy_template("data", "missing")
    with pytest.raises(InvalidInput):
        manager.new_project("../evil")
    with pytest.raises(InvalidInput):
        manager.new_project("")


def test_new_project_copies_six_notebooks_and_a_config(manager: WorkbenchManager, root: Path) -> None:
    (root / "workbench.toml").write_text('experiment = "jx-exp"\n')
    first = manager.new_project("demo", "work")
    second = manager.new_project("demo", "work")
    assert first["path"] == "work/demo" and second["path"] == "work/demo-1"
    folder = root / "work" / "demo"
    assert sorted(p.name for p in (folder / "notebooks").iterdir()) == sorted(NOTEBOOKS.values())
    assert (folder / "workbench.toml").read_text() == 'experiment = "jx-exp"\n'
    assert manager.project_settings("work/demo").project_dir == folder.resolve()
    assert manager.project_settings("work/demo").experiment == "jx-exp"
    with pytest.raises(NotFound, match="not a workbench project"):
        manager.project_settings("work")


def test_stage_summaries_read_the_latest_records(manager: WorkbenchManager) -> None:
    record_stage(manager.settings, "data", {"dataset_name": "jx", "dataset_version": "sha256:abc", "n": float("nan")})
    summaries = manager.stage_summaries()
    assert [s["stage"] for s in summaries] == list(STAGES)
    data = summaries[0]
    assert data["status"] == "done"
    assert data["headline"] == {"dataset_name": "jx", "dataset_version": "sha256:abc"}
    assert data["outputs"]["n"] is None  # NaN is not JSON
    json.dumps(summaries)
    assert all(s["status"] == "never run" for s in summaries[1:])


def wait_done(manager: WorkbenchManager, run_id: str, timeout_s: float = 180.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = manager.stage_run(run_id)
        if state["status"] in ("succeeded", "failed"):
            return state
        time.sleep(0.2)
    raise AssertionError(f"stage run {run_id} still {manager.stage_run(run_id)['status']} after {timeout_s} s")


def test_a_failing_stage_run_reports_its_cell(root: Path) -> None:
    project = root / "proj"
    notebook(project / "notebooks" / NOTEBOOKS["data"],
             ["print('fine')", "value = x * 2\nraise ValueError(f'broken at {value}')"])
    manager = WorkbenchManager(Settings(project_dir=root), root, REPO_NOTEBOOKS)
    (project / "workbench.toml").write_text("")
    started = manager.start_stage_run("data", {"x": 21}, project="proj")
    assert started["status"] in ("queued", "running")
    state = wait_done(manager, started["run_id"])
    assert state["status"] == "failed", state
    cell = state["failed_cell"]
    assert isinstance(cell, dict)
    assert cell["index"] == 2  # as in the source notebook: papermill's own cells are not counted
    assert cell["ename"] == "ValueError" and cell["evalue"] == "broken at 42"
    assert "raise ValueError" in cell["source"]
    # shown where JupyterLab's contents API serves it (no hidden folder), the run's own copy kept beside its record
    assert state["notebook"] == f"proj/executed/{started['run_id']}-{NOTEBOOKS['data']}"
    assert failed_cell(root / str(state["notebook"])) is not None
    assert (project / ".workbench" / "runs" / str(started["run_id"]) / NOTEBOOKS["data"]).is_file()
    manager.shutdown()


def test_stage_run_bad_input(manager: WorkbenchManager) -> None:
    with pytest.raises(InvalidInput, match="unknown stage"):
        manager.start_stage_run("bogus")
    with pytest.raises(NotFound, match="does not exist"):
        manager.start_stage_run("data")  # the root holds no notebooks/
    with pytest.raises(NotFound):
        manager.stage_run("ui-nope")
    with pytest.raises(InvalidInput):
        manager.runs(limit="many")
    with pytest.raises(InvalidInput):
        manager.job_logs("bad id; rm -rf /")
    with pytest.raises(InvalidInput, match="unknown service"):
        manager.start_service("postgres")


def test_a_stage_run_hands_back_the_recorded_outputs(root: Path) -> None:
    project = root / "ok"
    record = (f"from workbench.config import Settings\nfrom workbench.lineage import record_stage\n"
              f"record_stage(Settings(project_dir={str(project)!r}), 'data', {{'dataset_version': f'v{{x * 3}}'}}, "
              "pipeline_run_id=pipeline_run_id)")
    notebook(project / "notebooks" / NOTEBOOKS["data"], [record], parameters="x = 1\npipeline_run_id = ''")
    (project / "workbench.toml").write_text("")
    manager = WorkbenchManager(Settings(project_dir=root), root, REPO_NOTEBOOKS)
    state = wait_done(manager, manager.start_stage_run("data", {"x": 5}, project="ok")["run_id"])
    assert state["status"] == "succeeded", state
    assert state["outputs"] == {"dataset_version": "v15"}
    assert state["error"] == "" and state["failed_cell"] is None
    summary = manager.stage_summaries("ok")[0]
    assert summary["status"] == "done" and summary["headline"] == {"dataset_version": "v15"}
    assert manager.stage_summaries()[0]["status"] == "never run"  # the server's own project is untouched
    manager.shutdown()
