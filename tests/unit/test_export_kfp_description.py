"""`workbench export kfp`: the description the kfp compiler gets (no kfp here: it lives in .venv-kfp;
tests/integration/test_export_kfp.py compiles it there and reads the IR back)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from workbench.errors import InvalidInput, ServiceUnavailable
from workbench.export import kfp_pipeline
from workbench.export.pipelines import ExportOptions, SecretRef, plan_pipeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def description() -> dict[str, Any]:
    options = ExportOptions(image="ghcr.io/org/workbench:1.0", retries=1, timeout_s={"train": 900},
                            secrets={"AWS_SECRET_ACCESS_KEY": SecretRef("s3", "secret")})
    return kfp_pipeline.describe(plan_pipeline(ROOT / "notebooks"), options, Path("/tmp/x.yaml"))


def test_one_step_per_stage_wired_like_workbench_run(description: dict[str, Any]) -> None:
    steps = {s["name"]: s for s in description["steps"]}
    assert list(steps) == ["data", "features", "train", "registry", "deploy", "monitor"]
    assert steps["deploy"]["arguments"] == {"model_uri": {"step": "registry", "output": "model_uri"}}
    assert steps["registry"]["arguments"] == {"run_id": {"step": "train", "output": "run_id"}}
    assert steps["train"]["outputs"] == ["run_id"]
    assert steps["train"]["timeout_s"] == 900 and steps["data"]["timeout_s"] == 4 * 3600
    assert json.loads(json.dumps(description)) == description  # what the subprocess reads


def test_the_argv_carries_placeholders_and_papermill(description: dict[str, Any]) -> None:
    features = next(s for s in description["steps"] if s["name"] == "features")
    argv = features["command"]
    cut = argv.index("--")
    assert argv[cut + 1:cut + 3] == ["papermill", "/workbench/notebooks/02_features.ipynb"]
    assert {"concat": ["dataset_version: ", {"input": "dataset_version"}]} in argv
    assert {"concat": ["feature_service=", {"output": "feature_service"}]} in argv
    assert argv[argv.index("-r") + 1:argv.index("-r") + 3] == ["pipeline_run_id", {"input": kfp_pipeline.RUN_INPUT}]


def test_secrets_are_references(description: dict[str, Any]) -> None:
    for step in description["steps"]:
        assert step["secrets"] == {"AWS_SECRET_ACCESS_KEY": {"name": "s3", "key": "secret"}}
        assert "AWS_SECRET_ACCESS_KEY" not in step["env"]


def test_negative_cases(tmp_path: Path) -> None:
    plans = plan_pipeline(ROOT / "notebooks")
    with pytest.raises(InvalidInput, match="Kubernetes Secret"):
        kfp_pipeline.describe(plans, ExportOptions(env={"HF_TOKEN": "hf_x"}), tmp_path / "p.yaml")
    with pytest.raises(InvalidInput, match="image reference"):
        kfp_pipeline.describe(plans, ExportOptions(image="UPPER/case"), tmp_path / "p.yaml")
    with pytest.raises(InvalidInput, match="unknown stage"):
        plan_pipeline(ROOT / "notebooks", stages=["datas"])
    with pytest.raises(ServiceUnavailable, match="make kfp"):
        kfp_pipeline.compile_pipeline(plans, ExportOptions(), tmp_path / "p.yaml", tmp_path / "no" / "python")
