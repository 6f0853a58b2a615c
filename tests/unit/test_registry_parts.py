"""Unit tests of the registry's pure parts: URI parsing, the run table, comparisons, lineage lookups, cards."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param, Run, RunData, RunInfo, RunTag

from workbench.config import Settings
from workbench.errors import InvalidInput
from workbench.lineage import record_stage
from workbench.registry import Comparison, LineageCard, find_train_record, parse_model_uri, runs_frame
from workbench.registry.card import UNKNOWN
from workbench.registry.promote import _order_key, _scores
from workbench.registry.runs import _check_best_of
from workbench.registry.versions import check_alias

RUN_A = "a" * 32
RUN_B = "b" * 32


def _run(run_id: str, *, params: dict[str, str], metrics: dict[str, float], tags: dict[str, str],
         start: int = 1_000_000, end: int | None = 1_004_500, status: str = "FINISHED") -> Run:
    info = RunInfo(run_id=run_id, experiment_id="7", user_id="u", status=status, start_time=start, end_time=end,
                   lifecycle_stage="active", run_name=f"name-{run_id[:2]}")
    data = RunData(metrics=[Metric(k, v, 0, 3) for k, v in metrics.items()],
                   params=[Param(k, v) for k, v in params.items()],
                   tags=[RunTag(k, v) for k, v in tags.items()])
    return Run(info, data)


@pytest.mark.parametrize(("uri", "kind", "field", "value"), [
    ("models:/fraud-detector@champion", "alias", "alias", "champion"),
    ("models:/fraud-detector/3", "version", "version", "3"),
    ("models:/fraud-detector/latest", "latest", "name", "fraud-detector"),
    ("models:/m-" + "0" * 32, "logged_model", "model_id", "m-" + "0" * 32),
    (f"runs:/{RUN_A}/model", "run", "run_id", RUN_A),
])
def test_parse_model_uri_accepts_the_documented_forms(uri: str, kind: str, field: str, value: str) -> None:
    ref = parse_model_uri(uri)
    assert ref.kind == kind
    assert getattr(ref, field) == value


@pytest.mark.parametrize("uri", ["", "fraud-detector", "models:/", "models:/fraud-detector", "models:/x/0",
                                 "models:/x/abc", "models:/x@", "models:/x@bad alias", "runs:/short/model",
                                 f"runs:/{RUN_A}", "s3://bucket/model", "models:/@champion"])
def test_parse_model_uri_rejects_bad_uris(uri: str) -> None:
    with pytest.raises(InvalidInput):
        parse_model_uri(uri)


@pytest.mark.parametrize("alias", ["latest", "v3", "bad alias", "", "has/slash"])
def test_bad_aliases(alias: str) -> None:
    with pytest.raises(InvalidInput):
        check_alias(alias)


def test_runs_frame_is_tidy_and_typed() -> None:
    runs = [
        _run(RUN_A, params={"lr": "0.01", "hidden_sizes": "[64, 32]"}, metrics={"roc_auc": 0.9, "loss": 0.2},
             tags={"workbench.dataset_version": "ds1", "workbench.feature_service": "fs",
                   "mlflow.parentRunId": RUN_B}),
        _run(RUN_B, params={"lr": "0.1", "extra": "x"}, metrics={"roc_auc": 0.8}, tags={"dataset_version": "ds2"},
             end=None, status="RUNNING"),
    ]
    frame = runs_frame(runs)
    assert list(frame["run_id"]) == [RUN_A, RUN_B]  # input order kept: MLflow's ordering
    assert frame["params.lr"].tolist() == [0.01, 0.1]  # numeric params become numbers
    assert frame["params.hidden_sizes"].tolist() == ["[64, 32]", None]
    assert frame["params.extra"].tolist() == [None, "x"]
    assert frame["metrics.roc_auc"].tolist() == [0.9, 0.8]
    assert math.isnan(frame["metrics.loss"].iloc[1])
    assert frame["dataset_version"].tolist() == ["ds1", "ds2"]  # workbench.* tag first, plain key as fallback
    assert frame["feature_service"].tolist() == ["fs", None]
    assert frame["parent_run_id"].tolist() == [RUN_B, None]
    assert frame["duration_s"].iloc[0] == pytest.approx(4.5)
    assert math.isnan(frame["duration_s"].iloc[1])
    assert str(frame["start_time"].dt.tz) == "UTC"

    narrow = runs_frame(runs, metrics=["roc_auc", "pr_auc"], params=["lr"], numeric_params=False)
    assert [c for c in narrow.columns if c.startswith(("params.", "metrics."))] == [
        "params.lr", "metrics.pr_auc", "metrics.roc_auc"]
    assert narrow["params.lr"].tolist() == ["0.01", "0.1"]
    assert narrow["metrics.pr_auc"].isna().all()


def test_runs_frame_of_nothing_has_the_columns() -> None:
    frame = runs_frame([])
    assert len(frame) == 0
    assert {"run_id", "status", "dataset_version", "feature_service", "parent_run_id"} <= set(frame.columns)


def test_best_of_is_checked() -> None:
    assert _check_best_of({"roc_auc": "max", "val_loss": "min"}) == {"roc_auc": "max", "val_loss": "min"}
    with pytest.raises(InvalidInput, match="'max' or 'min'"):
        _check_best_of({"roc_auc": "highest"})  # type: ignore[dict-item]


def test_metric_keys_are_quoted_for_order_by() -> None:
    assert _order_key("roc_auc") == "metrics.roc_auc"
    assert _order_key("val loss") == "metrics.`val loss`"
    with pytest.raises(InvalidInput):
        _order_key("")


def test_scores_from_any_pyfunc_output() -> None:
    assert _scores(np.array([0.1, 0.9])).tolist() == [0.1, 0.9]
    assert _scores(pd.Series([0.2, 0.8])).tolist() == [0.2, 0.8]
    assert _scores(pd.DataFrame({"p0": [0.7, 0.4], "p1": [0.3, 0.6]})).tolist() == [0.3, 0.6]
    assert _scores(np.array([[0.7, 0.3], [0.4, 0.6]])).tolist() == [0.3, 0.6]


def test_comparison_direction() -> None:
    worse = Comparison("holdout roc_auc", "max", RUN_A, 0.6, "1", RUN_B, 0.9)
    assert worse.candidate_is_worse
    assert "0.6000" in worse.describe() and "0.9000" in worse.describe()
    assert not Comparison("recorded val_loss", "min", RUN_A, 0.2, "1", RUN_B, 0.3).candidate_is_worse
    assert Comparison("recorded val_loss", "min", RUN_A, 0.4, "1", RUN_B, 0.3).candidate_is_worse
    assert not Comparison("recorded roc_auc", "max", RUN_A, 0.4, "1", RUN_B, None).candidate_is_worse


def test_find_train_record_by_run_id(tmp_path: Path) -> None:
    s = Settings(project_dir=tmp_path)
    assert find_train_record(s, RUN_A) is None
    first = record_stage(s, "train", {"run_id": RUN_A}, notebook="03_train.ipynb")
    record_stage(s, "train", {"run_id": RUN_B})
    sweep = record_stage(s, "train", {"run_id": "c" * 32, "trial_run_ids": [RUN_B, "d" * 32]})
    found = find_train_record(s, RUN_A)
    assert found is not None and found.record_id == first.record_id
    found = find_train_record(s, "d" * 32)
    assert found is not None and found.record_id == sweep.record_id


def test_card_markdown_says_unknown_for_missing_links() -> None:
    data = {
        "model": {"name": "m", "version": "2", "aliases": ["champion"], "created_at": None, "source": "models:/m-x"},
        "run": {"run_id": RUN_A, "run_name": "r", "experiment": "e", "status": "FINISHED", "start_time": "t0",
                "end_time": "t1", "url": "http://x", "params": {"lr": "0.1"}, "metrics": {"roc_auc": 0.9}},
        "code": {"git_commit": UNKNOWN, "source": None, "git_dirty": None},
        "training_stage": None,
        "feature_service": {"value": UNKNOWN, "sources": []},
        "dataset_version": {"value": "ds1", "sources": ["run tag workbench.dataset_version"]},
        "chain": [],
        "gaps": ["feature service: neither the run's tags nor a lineage record name it"],
    }
    card = LineageCard(data, tuple(data["gaps"]))  # type: ignore[arg-type]
    text = card.to_markdown()
    assert "# Lineage card: m version 2" in text
    assert f"run `{RUN_A}`" in text and "notebook `unknown`" in text and "dataset version `ds1`" in text
    assert "| roc_auc | 0.9 |" in text and "| lr | 0.1 |" in text
    assert "unknown: no lineage record of the training stage" in text
    assert "- feature service: neither" in text
    assert card.dataset_version == "ds1" and card.feature_service == UNKNOWN
    assert "Gaps: 1" in card.summary()


def test_merge_key_reproduces_mlflow_order() -> None:
    from workbench.registry.runs import _merge_key

    runs = [
        _run("1" * 32, params={}, metrics={"roc_auc": 0.8}, tags={}, start=10),
        _run("2" * 32, params={}, metrics={"roc_auc": float("nan")}, tags={}, start=20),
        _run("3" * 32, params={}, metrics={}, tags={}, start=30),
        _run("4" * 32, params={}, metrics={"roc_auc": 0.9}, tags={}, start=5),
        _run("5" * 32, params={}, metrics={"roc_auc": 0.8}, tags={}, start=40),  # tie: newer first
    ]
    desc = sorted(runs, key=_merge_key(["metrics.roc_auc DESC"]))
    assert [r.info.run_id[0] for r in desc] == ["4", "5", "1", "2", "3"]  # NaN, then missing, last
    asc = sorted(runs, key=_merge_key(["metrics.`roc_auc`"]))
    assert [r.info.run_id[0] for r in asc] == ["5", "1", "4", "2", "3"]
    default = sorted(runs, key=_merge_key([]))
    assert [r.info.run_id[0] for r in default] == ["5", "3", "2", "1", "4"]  # start_time DESC
    assert _merge_key(["params.lr DESC"]) is None  # string orderings stay with MLflow alone
