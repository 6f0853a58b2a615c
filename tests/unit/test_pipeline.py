"""The batch runner on tiny stage notebooks: hand-over of outputs, stop at failure, resume."""

import json
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound, StageFailed
from workbench.pipeline import run_pipeline

RECORD = """
from workbench.config import load_settings
from workbench.lineage import record_stage
record_stage(load_settings(), {stage!r}, {outputs}, inputs={inputs}, pipeline_run_id=pipeline_run_id)
"""


def _notebook(path: Path, params: str, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture()
def project(tmp_path: Path) -> Settings:
    (tmp_path / "workbench.toml").write_text("experiment = 'pipeline-test'\n")
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "01_data.ipynb", "n_rows = 1\npipeline_run_id = ''",
              RECORD.format(stage="data", outputs='{"dataset_version": f"v{n_rows}"}', inputs="{}"))
    _notebook(nbs / "02_features.ipynb", "dataset_version = ''\npipeline_run_id = ''",
              "assert dataset_version.startswith('v'), dataset_version\n"
              + RECORD.format(stage="features", outputs='{"frame": dataset_version + "-frame"}',
                              inputs='{"dataset_version": dataset_version}'))
    _notebook(nbs / "03_train.ipynb", "frame = ''\nfail = True\npipeline_run_id = ''",
              "if fail:\n    raise ValueError('bad frame ' + frame)\n"
              + RECORD.format(stage="train", outputs='{"run_id": "r-" + frame}', inputs='{"frame": frame}'))
    return Settings(project_dir=tmp_path)


def test_outputs_are_handed_on_and_failure_stops_with_report(project: Settings) -> None:
    with pytest.raises(StageFailed, match="stage 'train' failed.*ValueError: bad frame v7-frame") as info:
        run_pipeline(project, parameters={"data": {"n_rows": 7}}, run_id="run1", progress=lambda _: None)
    assert "--resume run1" in str(info.value)
    run_dir = project.runs_dir / "run1"
    report = json.loads((run_dir / "report.json").read_text())
    assert [(s["stage"], s["status"]) for s in report["stages"]] == [
        ("data", "succeeded"), ("features", "succeeded"), ("train", "failed")]
    assert report["stages"][1]["parameters"]["dataset_version"] == "v7"
    executed = nbformat.read(run_dir / "02_features.ipynb", as_version=4)
    assert any("dataset_version = \"v7\"" in c.source for c in executed.cells)
    source = nbformat.read(project.project_dir / "notebooks" / "02_features.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in source.cells if c.cell_type == "code")


def test_resume_from_a_stage_takes_earlier_outputs_from_the_run(project: Settings) -> None:
    with pytest.raises(StageFailed):
        run_pipeline(project, parameters={"data": {"n_rows": 3}}, run_id="first", progress=lambda _: None)
    report = run_pipeline(project, start="train", resume_run="first", parameters={"train": {"fail": False}},
                          progress=lambda _: None)
    assert report.ok
    assert [s.stage for s in report.stages] == ["train"]
    assert report.stages[0].outputs == {"run_id": "r-v3-frame"}


def test_bad_requests(project: Settings) -> None:
    with pytest.raises(InvalidInput, match="unknown stage"):
        run_pipeline(project, start="nope")
    with pytest.raises(InvalidInput, match="has no parameter"):
        run_pipeline(project, until="data", parameters={"data": {"rows": 1}})
    with pytest.raises(NotFound, match="cannot start at 'train'"):
        run_pipeline(project, start="train")


def test_a_hanging_stage_is_stopped_by_its_timeout_and_the_run_resumes(project: Settings) -> None:
    nbs = project.project_dir / "notebooks"
    _notebook(nbs / "02_features.ipynb", "dataset_version = ''\nhang = True\npipeline_run_id = ''",
              "import os, pathlib, time\n"
              "pathlib.Path('kernel.pid').write_text(str(os.getpid()))\n"
              "while hang:\n    time.sleep(0.2)\n"
              + RECORD.format(stage="features", outputs='{"frame": dataset_version + "-frame"}',
                              inputs='{"dataset_version": dataset_version}'))
    run_pipeline(project, until="data", run_id="hung", progress=lambda _: None)
    started = time.monotonic()
    with pytest.raises(StageFailed, match="stage 'features' failed.*time limit of 25 s") as info:
        run_pipeline(project, start="features", until="features", resume_run="hung", run_id="hung",
                     stage_timeout_s=25, progress=lambda _: None)
    assert time.monotonic() - started < 200
    assert "--resume hung" in str(info.value)
    kernel = int((nbs / "kernel.pid").read_text())
    deadline = time.monotonic() + 30
    while psutil.pid_exists(kernel) and psutil.Process(kernel).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the hung stage's kernel still runs"
        time.sleep(0.2)
    report = json.loads((project.runs_dir / "hung" / "report.json").read_text())
    assert [(s["stage"], s["status"]) for s in report["stages"]] == [("features", "failed")]
    resumed = run_pipeline(project, start="features", until="features", resume_run="hung",
                           parameters={"features": {"hang": False}}, progress=lambda _: None)
    assert resumed.ok and resumed.stages[0].outputs == {"frame": "v1-frame"}
