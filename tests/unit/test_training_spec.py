"""TrainingSpec / SweepSpec: every bad field is refused with InvalidInput, and JSON round-trips exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from workbench.errors import InvalidInput
from workbench.training import SweepSpec, TrainingSpec

FEATURES = ["f0", "f1", "f2"]


@pytest.fixture()
def frame_path(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"f0": rng.normal(size=50), "f1": rng.normal(size=50), "f2": rng.integers(0, 3, 50),
                          "city": ["x"] * 50, "is_fraud": rng.integers(0, 2, 50)})
    path = tmp_path / "frame.parquet"
    frame.to_parquet(path)
    return str(path)


def make(path: str, **changes: Any) -> TrainingSpec:
    return TrainingSpec(**{"frame_path": path, "feature_columns": FEATURES, **changes})


def test_defaults_and_json_round_trip(frame_path: str) -> None:
    spec = make(frame_path, hidden_sizes=[8, 4], tags={"team": "risk"}, dataset_version="abc123",
                sweep={"search_space": {"lr": {"loguniform": [1e-4, 1e-2]}, "hidden_sizes": {"choice": [[8], [16, 8]]}},
                       "num_samples": 3})
    assert spec.feature_columns == ("f0", "f1", "f2")
    assert spec.hidden_sizes == (8, 4)
    assert isinstance(spec.sweep, SweepSpec) and spec.sweep.num_samples == 3
    again = TrainingSpec.from_json(spec.to_json())
    assert again == spec
    assert again.to_dict()["sweep"]["search_space"]["hidden_sizes"] == {"choice": [[8], [16, 8]]}


def test_save_and_load(frame_path: str, tmp_path: Path) -> None:
    spec = make(frame_path, epochs=3, run_name="r1")
    path = spec.save(tmp_path / "deep" / "spec.json")
    assert TrainingSpec.load(path) == spec
    assert spec.replace(epochs=7).epochs == 7


@pytest.mark.parametrize(("changes", "message"), [
    ({"epochs": 0}, "epochs"),
    ({"epochs": 2.5}, "epochs"),
    ({"lr": 0}, "learning rate"),
    ({"lr": float("nan")}, "learning rate"),
    ({"batch_size": 0}, "batch_size"),
    ({"weight_decay": -1.0}, "weight_decay"),
    ({"dropout": 1.0}, "dropout"),
    ({"hidden_sizes": []}, "hidden_sizes"),
    ({"hidden_sizes": [8, 0]}, "hidden_sizes"),
    ({"hidden_sizes": "8"}, "hidden_sizes"),
    ({"seed": -1}, "seed"),
    ({"validation_fraction": 1.0}, "validation_fraction"),
    ({"threshold": 0.0}, "threshold"),
    ({"num_workers": 0}, "num_workers"),
    ({"cpus_per_worker": 0}, "cpus_per_worker"),
    ({"gpus": -1}, "gpus"),
    ({"memory_mb": -5}, "memory_mb"),
    ({"driver_cpus": -1}, "driver_cpus"),
    ({"use_gpu": "yes"}, "use_gpu"),
    ({"allow_cpu_fallback": 1}, "allow_cpu_fallback"),
    ({"tags": {"a": 1}}, "tags"),
    ({"tags": ["a"]}, "tags"),
    ({"dataset_version": 3}, "dataset_version"),
    ({"feature_columns": []}, "feature_columns"),
    ({"feature_columns": "f0"}, "feature_columns"),
    ({"feature_columns": ["f0", "f0"]}, "duplicates"),
    ({"feature_columns": ["f0", "is_fraud"]}, "leaks"),
    ({"feature_columns": ["f0", "nope"]}, "lacks columns ['nope']"),
    ({"feature_columns": ["f0", "city"], "categorical_columns": []}, "categorical_columns"),
    ({"label_column": "label"}, "lacks columns ['label']"),
    ({"frame_path": "/nonexistent/frame.parquet"}, "does not exist"),
    ({"sweep": {"search_space": {}}}, "non-empty"),
    ({"sweep": {"search_space": {"momentum": {"choice": [1]}}}}, "cannot be swept"),
    ({"sweep": {"search_space": {"lr": {"normal": [0, 1]}}}}, "distribution"),
    ({"sweep": {"search_space": {"lr": {"loguniform": [0, 1]}}}}, "low > 0"),
    ({"sweep": {"search_space": {"lr": {"uniform": [0.1, 0.01]}}}}, "low must be < high"),
    ({"sweep": {"search_space": {"lr": {"choice": [0.1, -1]}}}}, "learning rate"),
    ({"sweep": {"search_space": {"batch_size": {"uniform": [16, 64]}}}}, "batch_size"),
    ({"sweep": {"search_space": {"hidden_sizes": {"uniform": [1, 2]}}}}, "choice"),
    ({"sweep": {"search_space": {"lr": {"choice": [0.1]}}, "num_samples": 0}}, "num_samples"),
    ({"sweep": {"search_space": {"lr": {"choice": [0.1]}}, "metric": "accuracy"}}, "metric"),
    ({"sweep": {"search_space": {"lr": {"choice": [0.1]}}, "mode": "up"}}, "mode"),
    ({"sweep": {"search_space": {"lr": {"choice": [0.1]}}, "trials": 2}}, "unknown sweep fields"),
])
def test_bad_fields_are_refused(frame_path: str, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        make(frame_path, **changes)
    assert message in str(caught.value)


def test_frame_that_is_not_parquet(tmp_path: Path) -> None:
    bad = tmp_path / "frame.parquet"
    bad.write_text("not parquet")
    with pytest.raises(InvalidInput, match="not readable as Parquet"):
        make(str(bad))


def test_from_dict_refuses_unknown_and_missing_fields(frame_path: str) -> None:
    with pytest.raises(InvalidInput, match="unknown training spec fields"):
        TrainingSpec.from_dict({"frame_path": frame_path, "feature_columns": FEATURES, "epoch": 3})
    with pytest.raises(InvalidInput, match="incomplete"):
        TrainingSpec.from_dict({"frame_path": frame_path})
    with pytest.raises(InvalidInput, match="JSON"):
        TrainingSpec.from_json("{not json")


def test_gpu_request_is_recorded(frame_path: str) -> None:
    assert not make(frame_path).wants_gpu
    assert make(frame_path, use_gpu=True).wants_gpu
    assert make(frame_path, gpus=1).wants_gpu
