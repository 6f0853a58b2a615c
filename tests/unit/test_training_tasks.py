"""Trainers by task, without Ray: spec fields of issue 8, the model's own preprocessing, the MLP and XGBoost
fits per task kind, the logged pyfunc against the fitted model, and the metrics against scikit-learn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
)

from workbench.errors import InvalidInput
from workbench.training import TrainingSpec, get_trainer, register_trainer, trainer_names
from workbench.training._pyfunc_model import Preprocessor, category_key
from workbench.training.export import load_unlogged, write_model_artifacts
from workbench.training.frame import load_training_data, read_frame
from workbench.training.loop import train_model, validation_probabilities
from workbench.training.metrics import choose_threshold, reliability_curve, task_metrics
from workbench.training.trainers import Trainer
from workbench.training.xgb import BOOSTER_FILE, fit_booster, save_bundle

# column names a user's data may have: spaces, dots, non-ASCII letters
AMOUNT, CITY, SCORE, NOISE = "amount (€)", "Stadt.Name", "crédit score", "bruit ü"
FEATURES = [AMOUNT, CITY, SCORE, NOISE]


def messy_frame(n: int, seed: int = 0, task: str = "binary") -> pd.DataFrame:
    """A learnable problem whose signal sits in a numeric column with nulls and a categorical column."""
    rng = np.random.default_rng(seed)
    amount = rng.normal(size=n)
    city = rng.choice(["Köln", "Paris", "São Paulo", "Oslo"], size=n)
    score = rng.normal(size=n)
    effect = pd.Series(city).map({"Köln": 1.5, "Paris": -1.0, "São Paulo": 0.5, "Oslo": -1.5}).to_numpy()
    signal = 1.5 * amount + effect + 0.3 * score
    frame = pd.DataFrame({AMOUNT: amount, CITY: city, SCORE: score, NOISE: rng.normal(size=n)})
    frame.loc[rng.random(n) < 0.1, AMOUNT] = np.nan
    frame.loc[rng.random(n) < 0.05, CITY] = None
    if task == "binary":
        frame["label"] = np.where(rng.random(n) < 1 / (1 + np.exp(-2 * signal)), "fraud", "ok")
    elif task == "multiclass":
        frame["label"] = np.select([signal < -0.7, signal < 0.7], ["low", "mid"], "high")
    else:
        frame["label"] = 3.0 * signal + rng.normal(scale=0.3, size=n) + 10.0
    return frame


def write(tmp_path: Path, frame: pd.DataFrame, name: str = "frame.parquet") -> str:
    path = tmp_path / name
    frame.to_parquet(path)
    return str(path)


def spec_for(path: str, **changes: Any) -> TrainingSpec:
    return TrainingSpec(**{"frame_path": path, "feature_columns": FEATURES, "label_column": "label",
                           "hidden_sizes": [16], "epochs": 8, "lr": 1e-2, "batch_size": 64, "seed": 3,
                           "n_estimators": 30, "max_depth": 3, **changes})


# spec ---------------------------------------------------------------------------------------------
def test_new_fields_round_trip_and_detect_categoricals(tmp_path: Path) -> None:
    path = write(tmp_path, messy_frame(100, task="multiclass"))
    spec = spec_for(path, task="multiclass", trainer="xgboost", classes=["low", "mid", "high"],
                    sweep={"search_space": {"max_depth": {"randint": [2, 4]}}, "num_samples": 2})
    assert spec.categorical_columns == (CITY,)
    assert spec.sweep is not None and (spec.sweep.metric, spec.sweep.mode) == ("log_loss", "min")
    again = TrainingSpec.from_json(spec.to_json())
    assert again == spec and again.classes == ("low", "mid", "high")
    assert set(spec.hyperparameters()) >= {"n_estimators", "max_depth", "learning_rate", "task", "trainer"}
    assert "lr" not in spec.hyperparameters()
    assert "lr" in spec_for(path).hyperparameters()
    regression = spec_for(write(tmp_path, messy_frame(50, task="regression"), "r.parquet"), task="regression",
                          sweep={"search_space": {"lr": {"loguniform": [1e-3, 1e-2]}}})
    assert regression.sweep is not None and (regression.sweep.metric, regression.sweep.mode) == ("rmse", "min")


@pytest.mark.parametrize(("changes", "field"), [
    ({"trainer": "lightgbm"}, "trainer"),
    ({"task": "ranking"}, "task"),
    ({"task": "regression"}, "label_column"),  # labels are strings
    ({"classes": ["fraud"]}, "classes"),
    ({"classes": ["a", "a"]}, "classes"),
    ({"positive": "maybe", "classes": ["fraud", "ok"]}, "positive"),
    ({"categorical_columns": ["nope"]}, "categorical_columns"),
    ({"categorical_columns": [AMOUNT]}, "categorical_columns"),  # CITY holds strings but is left out
    ({"threshold_rule": "youden"}, "threshold_rule"),
    ({"trainer": "xgboost", "max_depth": 0}, "max_depth"),
    ({"trainer": "xgboost", "subsample": 1.5}, "subsample"),
    ({"trainer": "xgboost", "learning_rate": 0}, "learning_rate"),
    ({"trainer": "xgboost", "sweep": {"search_space": {"lr": {"choice": [0.1]}}}}, "sweep.search_space"),
    ({"sweep": {"search_space": {"lr": {"choice": [0.1]}}, "metric": "rmse"}}, "sweep.metric"),
    ({"sweep": {"search_space": {"max_depth": {"uniform": [1, 3]}}}}, "randint"),
    ({"trainer": "custom"}, "entrypoint"),
    ({"trainer": "custom", "entrypoint": "train.py"}, "working_dir"),
    ({"trainer": "custom", "entrypoint": "not a module:x"}, "entrypoint"),
    ({"trainer": "custom", "entrypoint": "m:f", "working_dir": "/nonexistent/dir"}, "working_dir"),
    ({"args": "--fast"}, "args"),
])
def test_bad_specs_name_the_field(tmp_path: Path, changes: dict[str, Any], field: str) -> None:
    path = write(tmp_path, messy_frame(60))
    with pytest.raises(InvalidInput) as caught:
        spec_for(path, **changes)
    assert field in str(caught.value)


def test_custom_specs_and_the_registry(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('hi')\n")
    spec = TrainingSpec(frame_path="", feature_columns=[], trainer="custom", entrypoint="train.py",
                        working_dir=str(tmp_path), args=["--n", "3"], task="regression")
    assert TrainingSpec.from_json(spec.to_json()) == spec and spec.args == ("--n", "3")
    env = get_trainer("custom").job_env(spec, "run1", "7", "http://127.0.0.1:1")
    assert env["MLFLOW_RUN_ID"] == "run1" and env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:1"
    assert get_trainer("custom").runtime_env(spec) == {"working_dir": str(tmp_path.resolve())}
    assert get_trainer("custom").job_resources(spec.replace(use_gpu=True, cpus_per_worker=2.0)) == {
        "num_cpus": 2.0, "num_gpus": 1.0}
    assert {"mlp", "xgboost", "custom"} <= set(trainer_names())

    class Constant(Trainer):
        tasks = ("regression",)

    register_trainer("tr-constant", Constant())
    path = write(tmp_path, messy_frame(30, task="regression"))
    assert spec_for(path, trainer="tr-constant", task="regression").trainer == "tr-constant"
    with pytest.raises(InvalidInput, match="cannot train a binary task"):
        spec_for(path.replace("frame", "frame"), trainer="tr-constant")


def test_binary_labels_are_checked_by_value(tmp_path: Path) -> None:
    frame = messy_frame(60)
    frame.loc[0, "label"] = "unsure"
    with pytest.raises(InvalidInput, match="binary task must hold two values"):
        read_frame(spec_for(write(tmp_path, frame)))
    with pytest.raises(InvalidInput, match="not in classes"):
        read_frame(spec_for(write(tmp_path, messy_frame(60), "b.parquet"), classes=["fraud", "legit"]))


# preprocessing ------------------------------------------------------------------------------------
def test_preprocessor_handles_nulls_unknown_categories_and_numbers_as_categories() -> None:
    frame = pd.DataFrame({"a b": [1.0, np.nan, 3.0], "c.d": ["x", "y", None], "zip": [10, 20, 10]})
    pre = Preprocessor.fit(frame, ["a b", "c.d", "zip"], ["c.d", "zip"], "onehot")
    assert pre.categories == {"c.d": ["x", "y"], "zip": ["10", "20"]}
    assert pre.fill["a b"] == 2.0 and pre.indicators == ["a b"]
    new = pd.DataFrame({"a b": [None, 5.0], "c.d": ["unseen", "y"], "zip": [20.0, 99]})
    x = pre.transform(new)
    # a b | c.d=x c.d=y | zip=10 zip=20 | a b is missing
    assert x.tolist() == [[2.0, 0, 0, 0, 1, 1], [5.0, 0, 1, 0, 0, 0]]
    assert pre.output_names[-1] == "a b is missing"
    ordinal = Preprocessor.from_dict(json.loads(json.dumps(
        Preprocessor.fit(frame, ["a b", "c.d"], ["c.d"], "ordinal").to_dict())))
    out = ordinal.transform(new)
    assert np.isnan(out[0, 0]) and np.isnan(out[0, 1]) and out[1].tolist() == [5.0, 1.0]
    assert category_key(3.0) == category_key(3) == category_key("3") == "3" and category_key(np.nan) is None


# fits per task ------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_mlp_learns_each_task_and_the_pyfunc_matches(tmp_path: Path, task: str) -> None:
    spec = spec_for(write(tmp_path, messy_frame(1500, seed=1, task=task)), task=task)
    data = load_training_data(spec)
    seen: list[dict[str, float]] = []
    state = train_model(spec, data, lambda s, m: seen.append(m))
    assert state is not None and len(seen) == spec.epochs
    final = seen[-1]
    expected = validation_probabilities(state, data)
    if task == "binary":
        assert data.coding.classes == ("fraud", "ok") and data.coding.positive == "ok"
        assert final["roc_auc"] > 0.8 and final["roc_auc"] == pytest.approx(roc_auc_score(data.y_val, expected),
                                                                           abs=1e-6)
        assert final["brier"] == pytest.approx(brier_score_loss(data.y_val, expected), abs=1e-6)
    elif task == "multiclass":
        assert data.coding.classes == ("high", "low", "mid")
        assert final["accuracy"] > 0.7
        assert final["log_loss"] == pytest.approx(log_loss(data.y_val, expected, labels=[0, 1, 2]), abs=1e-5)
    else:
        assert final["r2"] > 0.8 and final["r2"] == pytest.approx(r2_score(data.y_val, expected), abs=1e-5)
    artifacts = write_model_artifacts(state, tmp_path)
    model = load_unlogged(artifacts)
    raw = pd.read_parquet(spec.frame_path).iloc[data.val_rows][FEATURES]
    got = model.predict(None, raw)
    if task == "multiclass":
        assert list(got.columns) == ["proba_high", "proba_low", "proba_mid"]
        got = got.to_numpy()
    assert np.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_xgboost_bundle_predicts_what_the_booster_predicts(tmp_path: Path, task: str) -> None:
    spec = spec_for(write(tmp_path, messy_frame(1500, seed=2, task=task)), task=task, trainer="xgboost")
    data = load_training_data(spec, mode="ordinal")
    rounds: list[int] = []
    booster = fit_booster(spec, data, lambda epoch, metrics: rounds.append(epoch))
    assert rounds == list(range(spec.n_estimators))
    folder = save_bundle(tmp_path / "bundle", booster, data, spec)
    model = load_unlogged({"booster": folder / BOOSTER_FILE, "meta": folder / "meta.json"})
    raw = pd.read_parquet(spec.frame_path).iloc[data.val_rows][FEATURES]
    got = model.predict(None, raw)
    got = got.to_numpy() if isinstance(got, pd.DataFrame) else got
    direct = booster.predict(xgboost.DMatrix(data.x_val, missing=np.nan))
    assert np.allclose(got, direct, atol=1e-6)
    quality = task_metrics(task, data.y_val, got)
    assert quality[{"binary": "roc_auc", "multiclass": "accuracy", "regression": "r2"}[task]] > 0.75


# metrics ------------------------------------------------------------------------------------------
def test_threshold_maximises_f1_and_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.3).astype(int)
    p = np.clip(0.3 * y + rng.random(400) * 0.7, 0, 1)
    t = choose_threshold(y, p, "max_f1")
    best = max(f1_score(y, p >= c) for c in np.unique(p))
    assert f1_score(y, p >= t) == pytest.approx(best)
    assert not np.any(np.isclose(p, t))  # half-way between scores: no row sits on the cut
    assert choose_threshold(y, p, "fixed", 0.4) == 0.4
    m = task_metrics("binary", y, p, t)
    assert m["log_loss"] == pytest.approx(log_loss(y, p)) and m["brier"] == pytest.approx(brier_score_loss(y, p))
    curve = reliability_curve(y, p)
    assert sum(b["count"] for b in curve["bins"]) == 400 and curve["brier"] == pytest.approx(m["brier"])
    proba = rng.dirichlet([1, 1, 1], size=50)
    labels = rng.integers(0, 3, 50)
    mc = task_metrics("multiclass", labels, proba)
    assert mc["accuracy"] == accuracy_score(labels, proba.argmax(1))
    assert mc["macro_f1"] == pytest.approx(f1_score(labels, proba.argmax(1), average="macro"))
    reg = task_metrics("regression", np.arange(5.0), np.arange(5.0) + 1)
    assert reg == {"rmse": 1.0, "mae": mean_absolute_error(np.arange(5.0), np.arange(5.0) + 1),
                   "r2": pytest.approx(r2_score(np.arange(5.0), np.arange(5.0) + 1))}


def test_spec_from_a_dataset_task(tmp_path: Path) -> None:
    from workbench.data.task import Task

    frame = messy_frame(80, task="multiclass")
    frame["id"] = range(80)
    path = write(tmp_path, frame)
    task = Task(label="label", kind="multiclass", entity_keys=("id",), exclude=(NOISE,),
                classes=("high", "low", "mid"))
    spec = TrainingSpec.from_task(task, path, trainer="xgboost")
    assert spec.feature_columns == (AMOUNT, CITY, SCORE) and spec.task == "multiclass"
    assert spec.classes == ("high", "low", "mid") and spec.label_column == "label"
    binary = TrainingSpec.from_task(Task(label="label", positive="fraud"),
                                    write(tmp_path, messy_frame(50), "b.parquet"))
    assert binary.positive == "fraud" and binary.feature_columns == tuple(FEATURES)
