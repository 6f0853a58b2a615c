"""The model, its metrics, the loop and its checkpoints, on tiny synthetic frames (no Ray, no MLflow)."""

from __future__ import annotations

import math
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.errors import InvalidInput
from workbench.training import TrainingSpec
from workbench.training._pyfunc_model import FraudProbabilityModel
from workbench.training.checkpoint import TrainingState, epoch_dir_name, find_latest_checkpoint
from workbench.training.export import write_model_artifacts
from workbench.training.frame import load_training_data, shard, split_indices
from workbench.training.loop import train_model, validation_probabilities
from workbench.training.metrics import classification_metrics
from workbench.training.model import FraudMLP, Standardizer, predict_proba
from workbench.training.synthetic import SYNTHETIC_FEATURES, synthetic_training_frame


def write_frame(tmp_path: Path, frame: pd.DataFrame, name: str = "frame.parquet") -> str:
    path = tmp_path / name
    frame.to_parquet(path)
    return str(path)


@pytest.fixture()
def spec(tmp_path: Path) -> TrainingSpec:
    path = write_frame(tmp_path, synthetic_training_frame(3000, seed=1))
    return TrainingSpec(frame_path=path, feature_columns=SYNTHETIC_FEATURES, hidden_sizes=(16, 8), epochs=3,
                        batch_size=128, lr=5e-3, seed=7)


# metrics ------------------------------------------------------------------------------------------
def test_metrics_on_known_values() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.6, 0.7, 0.4, 0.2, 0.9])
    m = classification_metrics(y, p, threshold=0.5)
    # flagged: 0.6 (neg), 0.7 (pos), 0.9 (pos) → precision 2/3; positives 3, found 2 → recall 2/3
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    # pairs (pos, neg): 9; wrong order only (0.4 < 0.6) → 8/9
    assert m["roc_auc"] == pytest.approx(8 / 9)
    assert 0 < m["pr_auc"] <= 1


def test_metrics_edge_cases() -> None:
    one_class = classification_metrics(np.zeros(4), np.array([0.1, 0.9, 0.2, 0.3]), 0.5)
    assert math.isnan(one_class["roc_auc"]) and math.isnan(one_class["pr_auc"])
    assert one_class["recall"] == 0.0 and one_class["precision"] == 0.0
    nothing_flagged = classification_metrics(np.array([0, 1]), np.array([0.1, 0.2]), 0.5)
    assert nothing_flagged["precision"] == 0.0 and nothing_flagged["recall"] == 0.0
    perfect = classification_metrics(np.array([0, 1, 1]), np.array([0.1, 0.8, 0.9]), 0.5)
    assert perfect == {"roc_auc": 1.0, "pr_auc": 1.0, "precision": 1.0, "recall": 1.0}
    with pytest.raises(ValueError, match="differ in length"):
        classification_metrics(np.array([0, 1]), np.array([0.5]), 0.5)


# model and data -----------------------------------------------------------------------------------
def test_standardizer_is_fitted_and_keeps_constant_columns_finite() -> None:
    x = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    scaler = Standardizer.fit(x)
    out = scaler.transform(x)
    assert np.allclose(out[:, 0].mean(), 0) and np.allclose(out[:, 0].std(), 1)
    assert np.all(out[:, 1] == 0)
    assert Standardizer.from_dict(scaler.to_dict()).transform(x) == pytest.approx(out)


def test_mlp_shape() -> None:
    model = FraudMLP(5, [8, 4], dropout=0.1)
    assert model(torch.zeros(7, 5)).shape == (7,)
    assert sum(isinstance(m, torch.nn.Linear) for m in model.modules()) == 3


def test_split_is_deterministic_stratified_and_disjoint() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    train, val = split_indices(labels, 0.2, seed=3)
    again_train, again_val = split_indices(labels, 0.2, seed=3)
    assert np.array_equal(train, again_train) and np.array_equal(val, again_val)
    assert not set(train) & set(val) and len(train) + len(val) == 100
    assert labels[val].sum() == 2 and labels[train].sum() == 8  # 20 % of each class
    other_train, _ = split_indices(labels, 0.2, seed=4)
    assert not np.array_equal(train, other_train)


def test_shards_are_equal_and_disjoint() -> None:
    a, b = shard(11, 0, 2), shard(11, 1, 2)
    assert len(a) == len(b) == 5 and not set(a) & set(b)


def test_bad_labels_are_refused(tmp_path: Path) -> None:
    frame = synthetic_training_frame(200)
    frame.loc[3, "is_fraud"] = 2
    spec = TrainingSpec(frame_path=write_frame(tmp_path, frame), feature_columns=SYNTHETIC_FEATURES)
    with pytest.raises(InvalidInput, match="must hold 0/1 only; found \\[2\\]"):
        load_training_data(spec)
    frame["is_fraud"] = 0
    spec = spec.replace(frame_path=write_frame(tmp_path, frame, "one_class.parquet"))
    with pytest.raises(InvalidInput, match="one class only"):
        load_training_data(spec)


# the loop -----------------------------------------------------------------------------------------
def test_training_learns_and_reports_every_epoch(spec: TrainingSpec) -> None:
    data = load_training_data(spec)
    assert data.pos_weight == pytest.approx((data.y_train == 0).sum() / data.y_train.sum())
    seen: list[tuple[int, dict[str, float]]] = []
    state = train_model(spec, data, lambda s, m: seen.append((s.epoch, m)))
    assert [epoch for epoch, _ in seen] == [0, 1, 2]
    assert state is not None and state.epoch == 2
    final = seen[-1][1]
    assert set(final) >= {"loss", "val_loss", "roc_auc", "pr_auc", "precision", "recall"}
    assert final["roc_auc"] > 0.8  # the label is logistic in two features
    assert seen[-1][1]["loss"] < seen[0][1]["loss"]
    probabilities = validation_probabilities(state, data)
    assert probabilities.min() >= 0 and probabilities.max() <= 1
    recomputed = classification_metrics(data.y_val, probabilities, spec.threshold)
    assert recomputed["roc_auc"] == pytest.approx(final["roc_auc"], abs=1e-6)


def test_resuming_from_a_checkpoint_equals_an_uninterrupted_run(spec: TrainingSpec, tmp_path: Path) -> None:
    data = load_training_data(spec)
    full: list[dict[str, float]] = []
    uninterrupted = train_model(spec, data, lambda s, m: full.append(m))
    saved: list[TrainingState] = []
    train_model(spec.replace(epochs=1), data, lambda s, m: saved.append(s))
    folder = saved[0].save(tmp_path / "ckpt" / epoch_dir_name(0))
    restored = TrainingState.load(folder)
    assert restored.epoch == 0 and restored.feature_columns == list(SYNTHETIC_FEATURES)
    rest: list[tuple[int, dict[str, float]]] = []
    resumed = train_model(spec, data, lambda s, m: rest.append((s.epoch, m)), start=restored)
    assert [epoch for epoch, _ in rest] == [1, 2]
    assert uninterrupted is not None and resumed is not None
    for key, value in uninterrupted.model_state.items():
        assert torch.allclose(value, resumed.model_state[key], atol=1e-6), key
    assert rest[-1][1]["roc_auc"] == pytest.approx(full[-1]["roc_auc"], abs=1e-6)
    assert train_model(spec, data, lambda s, m: None, start=resumed) is None  # nothing left to train


# checkpoints --------------------------------------------------------------------------------------
def test_checkpoint_round_trip(spec: TrainingSpec, tmp_path: Path) -> None:
    data = load_training_data(spec)
    states: list[TrainingState] = []
    train_model(spec.replace(epochs=2), data, lambda s, m: states.append(s))
    for state in states:
        state.save(tmp_path / "run" / "nested" / epoch_dir_name(state.epoch))
    loaded = TrainingState.load(tmp_path / "run" / "nested" / epoch_dir_name(1))
    original = states[1]
    assert loaded.epoch == 1 and loaded.hidden_sizes == [16, 8] and loaded.dropout == 0.0
    assert loaded.metrics == pytest.approx(original.metrics)
    assert loaded.hyperparameters["lr"] == spec.lr
    assert np.array_equal(loaded.scaler.mean, original.scaler.mean)
    assert set(loaded.optimizer_state["state"]) == set(original.optimizer_state["state"])
    x = data.x_val[:20]
    assert np.allclose(predict_proba(loaded.build_model(), loaded.scaler, x),
                       predict_proba(original.build_model(), original.scaler, x))
    # the newest loadable checkpoint wins; a half-written newer one is skipped
    assert find_latest_checkpoint(tmp_path / "run") == str(tmp_path / "run" / "nested" / epoch_dir_name(1))
    broken = tmp_path / "run" / epoch_dir_name(5)
    broken.mkdir()
    (broken / "state.pt").write_bytes(b"partial")
    assert find_latest_checkpoint(tmp_path / "run") == str(tmp_path / "run" / "nested" / epoch_dir_name(1))
    assert find_latest_checkpoint(tmp_path / "nothing") is None


def test_pyfunc_forward_matches_the_torch_model(spec: TrainingSpec, tmp_path: Path) -> None:
    data = load_training_data(spec)
    state = train_model(spec.replace(epochs=1), data, lambda s, m: None)
    assert state is not None
    artifacts = write_model_artifacts(state, tmp_path)
    model = FraudProbabilityModel()
    model.load_context(types.SimpleNamespace(artifacts={k: str(v) for k, v in artifacts.items()}))
    frame = pd.DataFrame(data.x_val[:50], columns=list(SYNTHETIC_FEATURES))
    frame["extra"] = "ignored"
    got = model.predict(None, frame[["extra", *reversed(SYNTHETIC_FEATURES)]])
    expected = predict_proba(state.build_model(), state.scaler, data.x_val[:50])
    assert got.shape == (50,)
    assert np.allclose(got, expected, atol=1e-5)
    with pytest.raises(ValueError, match="lacks feature columns"):
        model.predict(None, frame.drop(columns=["velocity"]))
