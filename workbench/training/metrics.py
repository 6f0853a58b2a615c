"""Validation metrics by task, computed the same way in training, sweeps, the job's final evaluation and
benchmarks (all with scikit-learn, so a test can recompute them independently).

- binary: ROC-AUC (ranking), PR-AUC (average precision: how well rare positives are found), log loss
  and Brier score (are the scores probabilities?), precision/recall at the decision threshold (what an
  analyst queue sees). The threshold is chosen on validation by a stated rule: ``max_f1`` picks the cut
  that maximises F1, placed half-way between two neighbouring scores so that tiny numeric differences
  (float32 in training, float64 in the logged model) never move a row across it.
- multiclass: accuracy, macro-F1 (every class counts the same), log loss.
- regression: RMSE, MAE, R².
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_curve,
    r2_score,
    roc_auc_score,
)

METRIC_NAMES = ("loss", "val_loss", "roc_auc", "pr_auc", "precision", "recall")
RELIABILITY_BINS = 10


def classification_metrics(y_true: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC-AUC, PR-AUC, and precision/recall of ``probabilities >= threshold`` against 0/1 ``y_true``.

    The AUCs are NaN when the labels hold one class only (they are undefined, not zero); precision is
    0 when nothing is flagged, recall 0 when there are no positives.
    """
    y = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels and probabilities differ in length: {y.shape} vs {p.shape}")
    both_classes = 0 < int(y.sum()) < len(y)
    roc = float(roc_auc_score(y, p)) if both_classes else math.nan
    pr = float(average_precision_score(y, p)) if both_classes else math.nan
    flagged = p >= threshold
    true_pos = int(np.sum(flagged & (y == 1)))
    n_flagged = int(flagged.sum())
    n_pos = int(y.sum())
    return {
        "roc_auc": roc,
        "pr_auc": pr,
        "precision": true_pos / n_flagged if n_flagged else 0.0,
        "recall": true_pos / n_pos if n_pos else 0.0,
    }


def binary_metrics(y_true: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """:func:`classification_metrics` plus log loss and Brier score."""
    y = np.asarray(y_true).astype(np.int64).ravel()
    p = np.clip(np.asarray(probabilities, dtype=np.float64).ravel(), 0.0, 1.0)
    out = classification_metrics(y, p, threshold)
    out["log_loss"] = float(log_loss(y, p, labels=[0, 1]))
    out["brier"] = float(brier_score_loss(y, p, pos_label=1))
    return out


def multiclass_metrics(y_true: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy and macro-F1 of the most probable class, and log loss, against class indices ``y_true``."""
    y = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(probabilities, dtype=np.float64)
    p = p / p.sum(axis=1, keepdims=True)  # float32 model outputs sum to 1 only up to rounding
    labels = list(range(p.shape[1]))
    predicted = p.argmax(axis=1)
    return {"accuracy": float(accuracy_score(y, predicted)),
            "macro_f1": float(f1_score(y, predicted, average="macro", labels=labels, zero_division=0)),
            "log_loss": float(log_loss(y, p, labels=labels))}


def regression_metrics(y_true: np.ndarray, predictions: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(predictions, dtype=np.float64).ravel()
    return {"rmse": float(math.sqrt(mean_squared_error(y, p))), "mae": float(mean_absolute_error(y, p)),
            "r2": float(r2_score(y, p)) if len(y) > 1 else math.nan}


TASK_METRICS: dict[str, Callable[[np.ndarray, np.ndarray, float], dict[str, float]]] = {
    "binary": binary_metrics, "multiclass": multiclass_metrics, "regression": regression_metrics}


def task_metrics(task: str, y_true: np.ndarray, output: Any, threshold: float = 0.5) -> dict[str, float]:
    """The task's validation metrics of a model output (binary: P(positive); multiclass: one column of
    probabilities per class, array or frame; regression: values) against coded targets."""
    return TASK_METRICS[task](np.asarray(y_true), np.asarray(output, dtype=np.float64), threshold)


def choose_threshold(y_true: np.ndarray, probabilities: np.ndarray, rule: str = "max_f1",
                     fixed: float = 0.5) -> float:
    """The binary decision threshold on validation: ``max_f1`` (F1-maximising cut, half-way to the next
    lower score) or ``fixed`` (``fixed`` itself). Falls back to ``fixed`` when there is nothing to choose."""
    y = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    if rule == "fixed" or not 0 < int(y.sum()) < len(y):
        return float(fixed)
    precision, recall, thresholds = precision_recall_curve(y, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)[:-1]
    best = float(thresholds[int(np.argmax(f1))])
    lower = p[p < best]
    cut = (best + float(lower.max())) / 2.0 if len(lower) else best / 2.0
    return float(min(max(cut, 1e-12), 1.0 - 1e-12))


def reliability_curve(y_true: np.ndarray, probabilities: np.ndarray, bins: int = RELIABILITY_BINS) -> dict[str, Any]:
    """Calibration on validation: per equal-width score bin, the mean score, the observed positive rate
    and the row count (empty bins are left out), plus the Brier score."""
    y = np.asarray(y_true).astype(np.float64).ravel()
    p = np.clip(np.asarray(probabilities, dtype=np.float64).ravel(), 0.0, 1.0)
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append({"bin_low": b / bins, "bin_high": (b + 1) / bins, "mean_score": float(p[mask].mean()),
                         "positive_rate": float(y[mask].mean()), "count": int(mask.sum())})
    return {"bins": rows, "brier": float(np.mean((p - y) ** 2)) if len(y) else math.nan, "n": int(len(y))}
