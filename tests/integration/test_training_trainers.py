"""Each trainer, each task kind, as real Ray jobs logging into a real MLflow server (issue 8, parts 4-5).

The data has column names with spaces, dots and non-ASCII letters, a categorical string column and
nulls. Every job is submitted by one module fixture so their start-up costs overlap; each test waits
for its own. What the run reports is checked against values computed here: the validation rows from
the public split, predictions from the XGBoost booster artifact and from an in-process fit on the same
split, and metrics recomputed with scikit-learn.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import xgboost
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from workbench.config import Settings
from workbench.training import TrainingJob, TrainingSpec, submit_training_job
from workbench.training.frame import load_training_data, split_indices
from workbench.training.frame import shard as split_shard
from workbench.training.loop import train_model
from workbench.training.xgb import fit_booster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

JOB_TIMEOUT_S = 1200.0
EXPERIMENT = "tr-training-tasks"
AMOUNT, CITY, SCORE, NOISE, COUNT = "amount (€)", "Stadt.Name", "crédit score", "bruit ü", "Anzahl (n)"
FEATURES = [AMOUNT, CITY, SCORE, NOISE, COUNT]
ROWS = 600


def messy_frame(n: int, seed: int, task: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.normal(size=n)
    city = rng.choice(["Köln", "Paris", "São Paulo", "Oslo"], size=n)
    score = rng.normal(size=n)
    effect = pd.Series(city).map({"Köln": 1.5, "Paris": -1.0, "São Paulo": 0.5, "Oslo": -1.5}).to_numpy()
    count = rng.integers(0, 20, size=n)  # int64 as Parquet keeps it: the model takes it as is
    signal = 1.5 * amount + effect + 0.3 * score + 0.1 * (count - 10)
    frame = pd.DataFrame({AMOUNT: amount, CITY: city, SCORE: score, NOISE: rng.normal(size=n), COUNT: count})
    frame.loc[rng.random(n) < 0.1, AMOUNT] = np.nan
    frame.loc[rng.random(n) < 0.05, CITY] = None
    if task == "binary":
        frame["label"] = np.where(rng.random(n) < 1 / (1 + np.exp(-2 * signal)), "fraud", "ok")
    elif task == "multiclass":
        frame["label"] = np.select([signal < -0.7, signal < 0.7], ["low", "mid"], "high")
    else:
        frame["label"] = 3.0 * signal + rng.normal(scale=0.3, size=n) + 10.0
    return frame


@dataclass
class Submitted:
    settings: Settings
    frames: dict[str, Path]
    jobs: dict[str, TrainingJob]


@pytest.fixture(scope="module")
def submitted(services: Settings) -> Iterator[Submitted]:
    folder = services.state_dir / "training-tests" / f"tr-{uuid.uuid4().hex[:10]}"
    folder.mkdir(parents=True)
    frames = {}
    for seed, task in enumerate(("binary", "multiclass", "regression")):
        frames[task] = folder / f"{task}.parquet"
        messy_frame(ROWS, seed + 10, task).to_parquet(frames[task])
    numeric = folder / "numeric.parquet"
    messy_frame(ROWS, 20, "binary").drop(columns=[CITY]).fillna(0.0).to_parquet(numeric)
    frames["numeric"] = numeric
    assets = Path(__file__).resolve().parents[1] / "assets"
    common: dict[str, Any] = {"feature_columns": FEATURES, "label_column": "label", "cpus_per_worker": 0.5,
                              "checkpoint_dir": str(folder / "checkpoints"), "experiment": EXPERIMENT, "seed": 5,
                              "tags": {"suite": "test_training_tasks"}}
    mlp = {"trainer": "mlp", "epochs": 2, "hidden_sizes": [16], "batch_size": 64, "lr": 1e-2}
    xgb = {"trainer": "xgboost", "n_estimators": 15, "max_depth": 3}
    specs = {
        "xgboost-binary": TrainingSpec(frame_path=str(frames["binary"]), task="binary", **xgb, **common),
        "xgboost-binary-2-workers": TrainingSpec(frame_path=str(frames["binary"]), task="binary", num_workers=2,
                                                 **xgb, **common),
        "xgboost-regression": TrainingSpec(frame_path=str(frames["regression"]), task="regression", **xgb, **common),
        "xgboost-multiclass-sweep": TrainingSpec(
            frame_path=str(frames["multiclass"]), task="multiclass", **xgb, **common,
            sweep={"search_space": {"max_depth": {"choice": [2, 3]}, "learning_rate": {"uniform": [0.05, 0.5]}},
                   "num_samples": 2}),
        "mlp-binary": TrainingSpec(frame_path=str(frames["binary"]), task="binary", **mlp, **common),
        "mlp-multiclass": TrainingSpec(frame_path=str(frames["multiclass"]), task="multiclass", **mlp, **common),
        "mlp-regression": TrainingSpec(frame_path=str(frames["regression"]), task="regression", **mlp, **common),
        "custom": TrainingSpec(frame_path=str(numeric), feature_columns=[AMOUNT, SCORE, NOISE], label_column="label",
                               trainer="custom", entrypoint="user_train.py", working_dir=str(assets),
                               args=["--C", "0.5"], cpus_per_worker=0.5, experiment=EXPERIMENT,
                               checkpoint_dir=str(folder / "checkpoints")),
    }
    jobs = {name: submit_training_job(services, spec.replace(run_name=f"tr-{name}")) for name, spec in specs.items()}
    yield Submitted(services, frames, jobs)
    shutil.rmtree(folder, ignore_errors=True)


# independent expectations -------------------------------------------------------------------------
def coded(frame: pd.DataFrame, task: str) -> tuple[np.ndarray, list[Any]]:
    """Targets as the task contract defines them: binary 1 for the positive (the larger value), multiclass
    the index in sorted classes, regression the value."""
    if task == "regression":
        return frame["label"].to_numpy(dtype=float), []
    classes = sorted(frame["label"].unique())
    if task == "binary":
        return (frame["label"] == classes[-1]).to_numpy(dtype=float), classes
    return frame["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(), classes


def validation_rows(frame: pd.DataFrame, task: str, y: np.ndarray, seed: int = 5) -> np.ndarray:
    strata = y.astype(int) if task != "regression" else np.zeros(len(y), dtype=int)
    return split_indices(strata, 0.2, seed)[1]


def expected_metrics(task: str, y: np.ndarray, output: np.ndarray, threshold: float | None) -> dict[str, float]:
    if task == "binary":
        flagged = output >= threshold
        return {"roc_auc": roc_auc_score(y, output), "pr_auc": average_precision_score(y, output),
                "log_loss": log_loss(y, output), "brier": brier_score_loss(y, output),
                "precision": precision_score(y, flagged), "recall": recall_score(y, flagged)}
    if task == "multiclass":
        predicted = output.argmax(axis=1)
        return {"accuracy": accuracy_score(y, predicted), "macro_f1": f1_score(y, predicted, average="macro"),
                "log_loss": log_loss(y, output / output.sum(axis=1, keepdims=True))}
    return {"rmse": float(np.sqrt(mean_squared_error(y, output))), "mae": mean_absolute_error(y, output),
            "r2": r2_score(y, output)}


@dataclass
class Checked:
    run: Any
    model_uri: str
    workbench: dict[str, Any]
    frame: pd.DataFrame
    val: np.ndarray
    y_val: np.ndarray
    output: np.ndarray


def check_run(sub: Submitted, name: str, task: str) -> Checked:
    """The job succeeded and its run carries a model with signature, metadata and task metrics that
    equal scikit-learn's on the validation rows."""
    job = sub.jobs[name]
    assert job.wait(timeout_s=JOB_TIMEOUT_S, progress=False) == "SUCCEEDED", job.logs()[-3000:]
    client = MlflowClient(sub.settings.mlflow_uri)
    run = client.get_run(job.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["workbench.task"] == task
    model_uri = run.data.tags["workbench.model_uri"]
    info = mlflow.models.get_model_info(model_uri)
    inputs = info.signature.inputs.to_dict()
    assert [c["name"] for c in inputs] == FEATURES
    assert {c["name"]: c["type"] for c in inputs} == {AMOUNT: "double", CITY: "string", SCORE: "double",
                                                      NOISE: "double", COUNT: "long"}
    assert {c["name"] for c in inputs if not c.get("required", True)} == {AMOUNT, CITY}  # nulls in training
    workbench = info.metadata["workbench"]
    frame = pd.read_parquet(sub.frames[task])
    y, classes = coded(frame, task)
    assert workbench["task"] == task and workbench["feature_columns"] == FEATURES
    assert workbench["classes"] == classes
    if task == "binary":
        assert workbench["positive"] == "ok"
    val = validation_rows(frame, task, y)
    model = mlflow.pyfunc.load_model(model_uri)
    assert str(frame[COUNT].dtype) == "int64"
    raw = model.predict(frame.iloc[val][FEATURES])  # the frame as read back, int64 counts and all
    if task == "multiclass":
        assert list(raw.columns) == [f"proba_{c}" for c in classes]
        output = raw.to_numpy(dtype=float)
    else:
        output = np.asarray(raw, dtype=float)
        assert output.shape == (len(val),)
    threshold = workbench["threshold"]
    logged = run.data.metrics
    for key, value in expected_metrics(task, y[val], output, threshold).items():
        assert logged[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    if task == "binary":
        assert logged["threshold"] == pytest.approx(threshold)
        f1 = f1_score(y[val], output >= threshold)
        assert f1 == pytest.approx(max(f1_score(y[val], output >= c) for c in np.unique(output)))
        curve = json.loads(Path(mlflow.artifacts.download_artifacts(
            run_id=job.run_id, artifact_path="workbench/reliability.json",
            tracking_uri=sub.settings.mlflow_uri)).read_text())
        assert sum(b["count"] for b in curve["bins"]) == len(val)
        assert curve["brier"] == pytest.approx(logged["brier"])
        names = {a.path for a in client.list_artifacts(job.run_id, "workbench")}
        assert "workbench/reliability.png" in names
    else:
        assert threshold is None
    # raw values with an unseen category and nulls go straight in
    odd = pd.DataFrame({AMOUNT: [None, 1.0], CITY: ["Atlantis", None], SCORE: [0.1, np.nan], NOISE: [0.0, 0.0],
                        COUNT: [3, 40]})
    assert len(model.predict(odd)) == 2
    return Checked(run, model_uri, workbench, frame, val, y[val], output)


# the tests --------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["binary", "regression"])
def test_xgboost_job_logs_the_booster_it_trained(submitted: Submitted, task: str) -> None:
    checked = check_run(submitted, f"xgboost-{task}", task)
    job = submitted.jobs[f"xgboost-{task}"]
    client = MlflowClient(submitted.settings.mlflow_uri)
    assert sorted(m.step for m in client.get_metric_history(job.run_id, "val_loss")) == list(range(15))
    # the booster artifact itself, on rows encoded here (numbers as is, NaN for nulls, the city as its
    # index in the model's category list, NaN when unknown)
    folder = Path(mlflow.artifacts.download_artifacts(checked.model_uri))
    booster = xgboost.Booster()
    booster.load_model(str(next(folder.rglob("booster.json"))))
    meta = json.loads(next(folder.rglob("meta.json")).read_text())
    cities = meta["preprocessor"]["categories"][CITY]
    rows = checked.frame.iloc[checked.val]
    encoded = np.column_stack([rows[AMOUNT].to_numpy(float),
                               [cities.index(c) if c in cities else np.nan for c in rows[CITY]],
                               rows[SCORE].to_numpy(float), rows[NOISE].to_numpy(float),
                               rows[COUNT].to_numpy(float)])
    assert np.allclose(booster.predict(xgboost.DMatrix(encoded, missing=np.nan)), checked.output, atol=1e-6)
    # and an in-process fit on the same split gives the same model
    spec = job.spec
    data = load_training_data(spec, mode="ordinal")
    local = fit_booster(spec, data).predict(xgboost.DMatrix(data.x_val, missing=np.nan))
    assert np.allclose(local, checked.output, atol=1e-5)


def test_xgboost_on_two_workers_trains_on_shards_and_equals_the_whole_data_fit(submitted: Submitted) -> None:
    """Ray Train's XGBoostTrainer: each worker boosts on half the train rows, XGBoost's collective combines
    their histograms, and the logged booster is the one a single process fits on all the rows, not on one
    shard (which differs by half a probability on some rows here)."""
    checked = check_run(submitted, "xgboost-binary-2-workers", "binary")
    job = submitted.jobs["xgboost-binary-2-workers"]
    logs = job.logs()
    assert "worker 0 of 2 trains on 240 of 480 train rows" in logs, logs[-3000:]
    assert "worker 1 of 2 trains on 240 of 480 train rows" in logs, logs[-3000:]
    data = load_training_data(job.spec, mode="ordinal")
    rows = xgboost.DMatrix(data.x_val, missing=np.nan)
    whole = fit_booster(job.spec, data).predict(rows)
    one_shard = fit_booster(job.spec, data, rows=split_shard(len(data.x_train), 0, 2)).predict(rows)
    assert np.allclose(checked.output, whole, atol=1e-5)
    assert np.abs(checked.output - one_shard).max() > 0.05


def test_xgboost_multiclass_sweep_logs_trials_and_the_best_model(submitted: Submitted) -> None:
    checked = check_run(submitted, "xgboost-multiclass-sweep", "multiclass")
    job = submitted.jobs["xgboost-multiclass-sweep"]
    client = MlflowClient(submitted.settings.mlflow_uri)
    children = client.search_runs([job.experiment_id], f"tags.`mlflow.parentRunId` = '{job.run_id}'")
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    best = next(c for c in children if c.info.run_id == checked.run.data.tags["workbench.best_child_run_id"])
    assert best.data.metrics["log_loss"] == min(c.data.metrics["log_loss"] for c in children)
    assert checked.run.data.metrics["best_log_loss"] == pytest.approx(best.data.metrics["log_loss"])
    assert float(checked.run.data.params["best_learning_rate"]) == pytest.approx(
        float(best.data.params["learning_rate"]))
    assert checked.run.data.metrics["accuracy"] > 0.6


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_mlp_job_per_task_equals_an_in_process_fit(submitted: Submitted, task: str) -> None:
    checked = check_run(submitted, f"mlp-{task}", task)
    spec = submitted.jobs[f"mlp-{task}"].spec
    torch.set_num_threads(1)  # as the worker (cpus_per_worker 0.5)
    data = load_training_data(spec)
    state = train_model(spec, data, lambda s, m: None)
    assert state is not None
    from workbench.training.loop import validation_probabilities

    assert np.allclose(validation_probabilities(state, data), checked.output, atol=1e-4)
    # it learned: well above chance (ROC-AUC 0.5, the majority class's share, R² 0)
    majority = float(np.bincount(checked.y_val.astype(int)).max() / len(checked.y_val)) if task == "multiclass" else 0
    quality = {"binary": ("roc_auc", 0.75), "multiclass": ("accuracy", majority + 0.1), "regression": ("r2", 0.5)}[task]
    assert checked.run.data.metrics[quality[0]] > quality[1]


def test_custom_entrypoint_logs_its_autologged_model_into_the_workbench_run(submitted: Submitted) -> None:
    job = submitted.jobs["custom"]
    assert job.wait(timeout_s=JOB_TIMEOUT_S, progress=False) == "SUCCEEDED", job.logs()[-3000:]
    client = MlflowClient(submitted.settings.mlflow_uri)
    run = client.get_run(job.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["C"] == "0.5"  # autolog, in the run the workbench created
    assert run.data.metrics["user_train_rows"] == ROWS
    assert run.data.tags["workbench.task"] == "binary" and run.data.tags["workbench.trainer"] == "custom"
    model_uri = run.data.tags["workbench.model_uri"]
    assert mlflow.models.get_model_info(model_uri).signature is not None
    frame = pd.read_parquet(submitted.frames["numeric"])
    columns = [AMOUNT, SCORE, NOISE]
    expected = LogisticRegression(C=0.5, max_iter=500).fit(frame[columns], frame["label"]).predict(frame[columns])
    assert (mlflow.pyfunc.load_model(model_uri).predict(frame[columns]) == expected).all()
    assert "user_train: fitted on 600 rows" in job.logs()
