"""Reading the training frame, coding its labels by task and splitting it the same way everywhere.

The split is a pure function of the seed and the labels (stratified by class for classification, so
the validation split always holds positives even at a 1 % fraud rate; plain random for regression);
that is what makes a resumed job's metrics comparable with the epochs before the stop, and what lets
the job driver evaluate the logged model on exactly the rows the workers validated on.

Features are encoded by the model's own :class:`~workbench.training._pyfunc_model.Preprocessor`,
fitted on the train split only (no validation statistics leak into imputation or the category list).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench import locations
from workbench.errors import InvalidInput
from workbench.training._pyfunc_model import Preprocessor
from workbench.training.spec import TrainingSpec


@dataclass(frozen=True)
class LabelCoding:
    """How label values become targets: binary → 1.0 for ``positive`` else 0.0; multiclass → the index
    in ``classes``; regression → the value."""

    task: str
    classes: tuple[Any, ...] = ()
    positive: Any = None

    def encode(self, labels: pd.Series) -> np.ndarray:
        if self.task == "regression":
            return np.asarray(labels.astype("float64"), dtype=np.float64)
        values = [_scalar(v) for v in labels]
        if self.task == "binary":
            return np.asarray([v == self.positive for v in values], dtype=np.float64)
        index = {c: i for i, c in enumerate(self.classes)}
        return np.asarray([index[v] for v in values], dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "classes": list(self.classes), "positive": self.positive}


@dataclass(frozen=True)
class TrainingData:
    """Encoded features (float32 rows) and coded targets, already split into train and validation.

    ``train_rows``/``val_rows`` index the frame's rows; ``preprocessor`` is what the logged model
    applies to raw inputs; ``coding`` how labels became ``y``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    preprocessor: Preprocessor | None = None
    coding: LabelCoding = LabelCoding("binary", (0, 1), 1)
    train_rows: np.ndarray | None = None
    val_rows: np.ndarray | None = None

    @property
    def pos_weight(self) -> float:
        """negatives / positives of the train split (binary). Not used as a loss weight: a weighted loss
        inflates the scores, which then no longer read as probabilities."""
        positives = float(self.y_train.sum())
        negatives = float(len(self.y_train) - positives)
        return negatives / positives if positives else 1.0


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def read_frame(spec: TrainingSpec) -> pd.DataFrame:
    """The feature and label columns of the spec's frame, with labels checked for the spec's task.

    Feature nulls are allowed (the model imputes them); label nulls are not.
    """
    columns = [*spec.feature_columns, spec.label_column]
    try:
        fs, path = locations.resolve(spec.frame_path)
        frame = pd.read_parquet(path, columns=columns, filesystem=fs)
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidInput(f"cannot read columns {columns} of the training frame {spec.frame_path}: {exc}") from exc
    label = frame[spec.label_column]
    if label.isna().any():
        raise InvalidInput(f"label column {spec.label_column!r} has {int(label.isna().sum())} missing values")
    label_coding(spec, label)  # raises on labels that do not fit the task
    return frame


def label_coding(spec: TrainingSpec, labels: pd.Series) -> LabelCoding:
    """The coding of ``labels`` for the spec's task; InvalidInput naming the label column when they do not fit."""
    name = spec.label_column
    if spec.task == "regression":
        values = pd.to_numeric(labels, errors="coerce")
        if values.isna().any() or not np.isfinite(values.to_numpy(dtype=np.float64)).all():
            raise InvalidInput(f"label column {name!r} must hold finite numbers for a regression")
        return LabelCoding("regression")
    found = sorted({_scalar(v) for v in pd.unique(labels)}, key=lambda v: (str(type(v)), v))
    if spec.classes:
        unknown = [v for v in found if v not in spec.classes]
        if unknown:
            raise InvalidInput(f"label column {name!r} holds {unknown[:5]}, which are not in classes "
                               f"{list(spec.classes)}")
        classes = tuple(spec.classes)
    else:
        classes = tuple(found)
    if spec.task == "binary":
        if len(classes) > 2:
            numbers = all(isinstance(v, int | float) for v in found)
            if numbers and {0, 1} <= set(found):
                extra = [int(v) if float(v).is_integer() else v for v in found if v not in (0, 1)][:5]
                raise InvalidInput(f"label column {name!r} must hold 0/1 only; found {extra}")
            raise InvalidInput(f"label column {name!r} of a binary task must hold two values; found "
                               f"{len(classes)}: {list(classes)[:10]} (use task 'multiclass')")
        if len(found) < 2:
            raise InvalidInput(f"label column {name!r} holds one class only ({set(found)}); "
                               "a classifier needs rows of both classes")
        positive = spec.positive if spec.positive is not None else classes[-1]
        if positive not in classes:
            raise InvalidInput(f"positive {positive!r} is not a value of label column {name!r} ({list(classes)})")
        return LabelCoding("binary", classes, positive)
    if len(found) < 2:
        raise InvalidInput(f"label column {name!r} holds one class only ({set(found)}); "
                           "a classifier needs rows of at least two classes")
    return LabelCoding("multiclass", classes)


def split_indices(labels: np.ndarray, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split stratified by the values of ``labels``: (train indices, validation indices),
    each sorted. Pass zeros for a plain random split (regression)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        n_val = int(round(len(idx) * validation_fraction))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)  # keep each class on both sides when possible
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def split_frame(spec: TrainingSpec, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, LabelCoding]:
    """(coded targets, train rows, validation rows, coding) of a frame read by :func:`read_frame`."""
    coding = label_coding(spec, frame[spec.label_column])
    y = coding.encode(frame[spec.label_column])
    strata = y.astype(np.int64) if coding.task != "regression" else np.zeros(len(y), dtype=np.int64)
    train_idx, val_idx = split_indices(strata, spec.validation_fraction, spec.seed)
    return y, train_idx, val_idx, coding


def load_training_data(spec: TrainingSpec, mode: str = "onehot", frame: pd.DataFrame | None = None) -> TrainingData:
    """Read the frame, split it by the spec's seed and validation fraction, and encode the features with a
    preprocessor fitted on the train split (``mode`` "onehot" for the MLP, "ordinal" for trees)."""
    frame = read_frame(spec) if frame is None else frame
    y, train_idx, val_idx, coding = split_frame(spec, frame)
    categorical = list(spec.categorical_columns or ())
    preprocessor = Preprocessor.fit(frame.iloc[train_idx], list(spec.feature_columns), categorical, mode)
    x = preprocessor.transform(frame).astype(np.float32)
    target_type = np.int64 if coding.task == "multiclass" else np.float32
    return TrainingData(x[train_idx], y[train_idx].astype(target_type), x[val_idx], y[val_idx].astype(target_type),
                        preprocessor, coding, train_idx, val_idx)


def shard(n_rows: int, rank: int, world_size: int) -> np.ndarray:
    """Row indices of one worker's equal-sized shard (every worker must run the same number of steps)."""
    per_worker = n_rows // world_size
    return np.arange(rank, per_worker * world_size, world_size)
