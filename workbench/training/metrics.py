"""Validation metrics of a fraud classifier, computed the same way in training, sweeps and benchmarks.

Fraud is rare, so accuracy says little: ROC-AUC ranks, PR-AUC (average precision) shows how well the
rare positives are found, and precision/recall at the operating threshold are what an analyst queue
actually sees.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

METRIC_NAMES = ("loss", "val_loss", "roc_auc", "pr_auc", "precision", "recall")


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
