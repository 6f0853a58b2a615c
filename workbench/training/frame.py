"""Reading the training frame and splitting it the same way on every worker and every resume.

The split is a pure function of the seed and the labels (stratified, so the validation split always
holds positives even at a 1 % fraud rate); that is what makes a resumed job's metrics comparable with
the epochs before the stop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.errors import InvalidInput
from workbench.training.spec import TrainingSpec


@dataclass(frozen=True)
class TrainingData:
    """Features as float32 rows and 0/1 labels, already split into train and validation."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

    @property
    def pos_weight(self) -> float:
        """negatives / positives of the train split: the BCE weight that balances the rare class."""
        positives = float(self.y_train.sum())
        negatives = float(len(self.y_train) - positives)
        return negatives / positives if positives else 1.0


def read_frame(spec: TrainingSpec) -> pd.DataFrame:
    """The feature and label columns of the spec's frame, with labels checked to be 0/1 without gaps."""
    columns = [*spec.feature_columns, spec.label_column]
    try:
        frame = pd.read_parquet(spec.frame_path, columns=columns)
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidInput(f"cannot read columns {columns} of the training frame {spec.frame_path}: {exc}") from exc
    label = frame[spec.label_column]
    if label.isna().any():
        raise InvalidInput(f"label column {spec.label_column!r} has {int(label.isna().sum())} missing values")
    values = {float(v) for v in pd.unique(label.astype("float64"))}
    if not values <= {0.0, 1.0}:
        bad = [int(v) if v.is_integer() else v for v in sorted(values - {0.0, 1.0})[:5]]
        raise InvalidInput(f"label column {spec.label_column!r} must hold 0/1 only; found {bad}")
    if len(values) < 2:
        raise InvalidInput(f"label column {spec.label_column!r} holds one class only ({values}); "
                           "a classifier needs both fraud and non-fraud rows")
    nulls = frame[list(spec.feature_columns)].isna().sum()
    if nulls.any():
        raise InvalidInput(f"feature columns have missing values: {nulls[nulls > 0].to_dict()}; impute them in "
                           "the feature stage")
    return frame


def split_indices(labels: np.ndarray, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: (train indices, validation indices), each sorted."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in (0, 1):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        n_val = int(round(len(idx) * validation_fraction))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)  # keep each class on both sides when possible
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def load_training_data(spec: TrainingSpec) -> TrainingData:
    """Read the frame and split it by the spec's seed and validation fraction."""
    frame = read_frame(spec)
    x = frame[list(spec.feature_columns)].to_numpy(dtype=np.float32)
    y = frame[spec.label_column].to_numpy(dtype=np.float32)
    train_idx, val_idx = split_indices(y.astype(np.int64), spec.validation_fraction, spec.seed)
    return TrainingData(x[train_idx], y[train_idx], x[val_idx], y[val_idx])


def shard(n_rows: int, rank: int, world_size: int) -> np.ndarray:
    """Row indices of one worker's equal-sized shard (every worker must run the same number of steps)."""
    per_worker = n_rows // world_size
    return np.arange(rank, per_worker * world_size, world_size)
