"""Model quality by task once labels arrive, joined to the prediction log by request id.

The metrics follow the task's contract (:mod:`workbench.data.task`), from what the log holds per task:

==========  ===============================  ====================================================
task        the log's outputs                 metrics
==========  ===============================  ====================================================
binary      ``score`` = P(label == positive)  ROC-AUC, PR-AUC, log loss, Brier, precision and recall
                                              of ``score >= threshold`` (the model's own threshold)
multiclass  ``predicted_label``,              accuracy, macro-F1, log loss
            ``probabilities`` {class: p}
regression  ``prediction``                    RMSE, MAE, R²
==========  ===============================  ====================================================

The join is honest about what it could not use: a request id logged twice (a client retried with the
same id, and both attempts were served) is counted once, the first answer kept; the same label sent
twice is counted once, two different labels for one id are an error; labels naming ids the log does
not hold are counted and shown.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

from workbench.errors import InvalidInput
from workbench.monitoring import reprs as _reprs
from workbench.monitoring.performance import window_seconds

EXAMPLES_SHOWN = 10
TASK_OUTPUTS = {"binary": ("score",), "multiclass": ("predicted_label", "probabilities"),
                "regression": ("prediction",)}
METRICS = {"binary": ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall"),
           "multiclass": ("accuracy", "macro_f1", "log_loss"), "regression": ("rmse", "mae", "r2")}


def label_key(value: Any) -> str:
    """A label as text that matches across JSON, Parquet and pandas: ``1``, ``1.0`` and ``"1"`` agree."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class TaskLabelJoin:
    """Labelled predictions (``frame``) and how the join went."""

    frame: pd.DataFrame = field(repr=False)
    predictions: int  # distinct request ids in the log
    duplicate_predictions: int  # log rows repeating a request id (retries), not counted again
    labels: int  # distinct labelled request ids
    duplicate_labels: int  # the same (request_id, label) sent again
    matched: int
    unknown_ids: int
    unknown_examples: tuple[str, ...] = ()

    @property
    def label_coverage(self) -> float:
        return self.matched / self.predictions if self.predictions else math.nan

    def describe(self) -> str:
        text = f"{self.matched} of {self.predictions} predictions labelled ({_reprs.fmt(self.label_coverage)})"
        if self.duplicate_predictions:
            text += f"; {self.duplicate_predictions} retried request id(s) counted once"
        if self.duplicate_labels:
            text += f"; {self.duplicate_labels} repeated label(s) counted once"
        if self.unknown_ids:
            text += f"; {self.unknown_ids} label(s) name request ids not in the log, e.g. {list(self.unknown_examples)}"
        return text


def join_task_labels(log: pd.DataFrame, labels: pd.DataFrame, outputs: Sequence[str]) -> TaskLabelJoin:
    """Join ``labels`` (``request_id``, ``label``) to the log's ``outputs`` by request id (see module doc)."""
    for what, frame, needed in (("prediction log", log, ["request_id", "timestamp", *outputs]),
                                ("label frame", labels, ["request_id", "label"])):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise InvalidInput(f"the {what} lacks column(s) {missing}; it has {list(frame.columns)}")
    part = log.loc[:, ["request_id", "timestamp", *outputs]].assign(request_id=log["request_id"].astype(str))
    retried = part["request_id"].duplicated(keep="first")
    part = part.loc[~retried]
    lab = labels.loc[:, [c for c in ("request_id", "label", "label_timestamp") if c in labels.columns]].copy()
    lab["request_id"] = lab["request_id"].astype(str)
    lab = lab.loc[lab["label"].notna()]
    keyed = lab.assign(_key=lab["label"].map(label_key))
    repeated = keyed.duplicated(["request_id", "_key"], keep="first")
    keyed = keyed.loc[~repeated]
    conflict = keyed["request_id"].duplicated(keep=False)
    if conflict.any():
        ids = keyed.loc[conflict, "request_id"].unique()[:EXAMPLES_SHOWN]
        raise InvalidInput(f"labels give different values for request id(s) {list(ids)}; keep one label per request")
    known = keyed["request_id"].isin(set(part["request_id"]))
    joined = part.merge(keyed.loc[known.to_numpy()].drop(columns="_key"), on="request_id", how="inner",
                        validate="one_to_one")
    return TaskLabelJoin(frame=joined.reset_index(drop=True), predictions=len(part),
                         duplicate_predictions=int(retried.sum()), labels=len(keyed),
                         duplicate_labels=int(repeated.sum()), matched=len(joined), unknown_ids=int((~known).sum()),
                         unknown_examples=tuple(keyed.loc[~known.to_numpy(), "request_id"].head(EXAMPLES_SHOWN)))


def _probability_rows(values: pd.Series, classes: Sequence[str]) -> np.ndarray:
    """``probabilities`` cells ({class: p}, as dicts, JSON text or DuckDB structs) as a matrix over ``classes``."""
    matrix = np.full((len(values), len(classes)), np.nan)
    for i, cell in enumerate(values):
        if isinstance(cell, str):
            cell = json.loads(cell)
        if isinstance(cell, Mapping):
            keyed = {label_key(k): v for k, v in cell.items()}
            matrix[i] = [float(keyed[c]) if keyed.get(c) is not None else np.nan for c in classes]
    return matrix


def task_metrics(task: str, frame: pd.DataFrame, *, positive: Any = 1, threshold: float = 0.5,
                 classes: Sequence[Any] = ()) -> tuple[dict[str, float], str]:
    """The task's metrics on a labelled frame (``label`` plus the task's outputs), and a note on any that
    are undefined (NaN), e.g. ROC-AUC over one class."""
    n = len(frame)
    if n == 0:
        return dict.fromkeys(METRICS.get(task, ()), math.nan) | {"n_labelled": 0.0}, "no labelled predictions"
    note = ""
    if task == "binary":
        y = (frame["label"].map(label_key) == label_key(positive)).to_numpy(dtype=np.int64)
        score = pd.to_numeric(frame["score"], errors="coerce").to_numpy(dtype=float)
        flagged = score >= threshold
        tp = int(np.sum(flagged & (y == 1)))
        both = 0 < y.sum() < n
        if not both:
            note = f"all {n} labels are {'positive' if y.sum() else 'negative'}: ROC-AUC and PR-AUC need both classes"
        out = {"roc_auc": float(roc_auc_score(y, score)) if both else math.nan,
               "pr_auc": float(average_precision_score(y, score)) if both else math.nan,
               "log_loss": float(log_loss(y, np.clip(score, 1e-15, 1 - 1e-15), labels=[0, 1])),
               "brier": float(brier_score_loss(y, score)),
               "precision": tp / int(flagged.sum()) if flagged.any() else math.nan,
               "recall": tp / int(y.sum()) if y.sum() else math.nan, "positives": float(y.sum())}
    elif task == "multiclass":
        y = frame["label"].map(label_key).to_numpy(dtype=object)
        pred = frame["predicted_label"].map(label_key).to_numpy(dtype=object)
        names = [label_key(c) for c in classes] or sorted({*y, *pred})
        proba = _probability_rows(frame["probabilities"], names)
        out = {"accuracy": float(accuracy_score(y, pred)), "macro_f1": float(f1_score(y, pred, average="macro"))}
        unknown = set(y) - set(names)
        if np.isnan(proba).any() or unknown:
            out["log_loss"] = math.nan
            note = (f"labels {sorted(unknown)[:5]} are not among the model's classes" if unknown
                    else "some rows lack a probability per class: no log loss")
        else:
            out["log_loss"] = float(log_loss(y, proba, labels=names))
    elif task == "regression":
        y_true = pd.to_numeric(frame["label"], errors="coerce").to_numpy(dtype=float)
        y_pred = pd.to_numeric(frame["prediction"], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(y_true) & np.isfinite(y_pred)
        if not ok.all():
            note = f"{int((~ok).sum())} row(s) with a non-numeric label or prediction left out"
        y_true, y_pred = y_true[ok], y_pred[ok]
        out = {"rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))) if ok.any() else math.nan,
               "mae": float(mean_absolute_error(y_true, y_pred)) if ok.any() else math.nan,
               "r2": float(r2_score(y_true, y_pred)) if ok.sum() >= 2 else math.nan}
    else:
        raise InvalidInput(f"quality needs a task (binary, multiclass or regression), got {task!r}; the model's "
                           "metadata or the run's workbench.task tag names it")
    return out | {"n_labelled": float(n)}, note


@dataclass(frozen=True)
class TaskQuality:
    """A task's quality metrics over all labelled predictions, and how the labels joined."""

    task: str
    metrics_: dict[str, float]
    threshold: float | None
    join: TaskLabelJoin
    note: str = ""

    @property
    def n_labelled(self) -> int:
        return self.join.matched

    def __getitem__(self, name: str) -> float:
        return self.metrics_[name]

    def metrics(self) -> dict[str, float]:
        """The task's metrics plus ``label_coverage`` and ``unknown_label_ids``, for alert rules."""
        return {**self.metrics_, "label_coverage": self.join.label_coverage,
                "unknown_label_ids": float(self.join.unknown_ids)}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.metrics_.items() if k in METRICS.get(self.task, ()))
        return f"TaskQuality(task={self.task!r}, n_labelled={self.n_labelled}, {shown})"

    def _repr_html_(self) -> str:
        names = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "log_loss": "log loss", "brier": "Brier",
                 "precision": "precision", "recall": "recall", "accuracy": "accuracy", "macro_f1": "macro-F1",
                 "rmse": "RMSE", "mae": "MAE", "r2": "R²"}
        at = f" @ {self.threshold:g}" if self.threshold is not None else ""
        fields: dict[str, Any] = {names[k] + (at if k in ("precision", "recall") else ""): self.metrics_[k]
                                  for k in METRICS[self.task] if k in self.metrics_}
        fields["label coverage"] = self.join.label_coverage
        note = self.join.describe() + (f". {self.note}" if self.note else "")
        return _reprs.card(f"Model quality ({self.task}) on {self.n_labelled:,} labelled predictions", fields,
                           note=note, status="warn" if self.note or self.join.unknown_ids else "ok")


def task_quality(log: pd.DataFrame, labels: pd.DataFrame, task: str, *, positive: Any = 1,
                 threshold: float = 0.5, classes: Sequence[Any] = ()) -> TaskQuality:
    """Join ``labels`` to ``log`` and compute the task's metrics over all of them."""
    if task not in TASK_OUTPUTS:
        raise InvalidInput(f"task must be one of {list(TASK_OUTPUTS)}, got {task!r}")
    joined = join_task_labels(log, labels, TASK_OUTPUTS[task])
    metrics, note = task_metrics(task, joined.frame, positive=positive, threshold=threshold, classes=classes)
    return TaskQuality(task=task, metrics_=metrics, threshold=threshold if task == "binary" else None, join=joined,
                       note=note)


def task_quality_over_time(log: pd.DataFrame, labels: pd.DataFrame, task: str, window: str | pd.Timedelta = "1h",
                           *, positive: Any = 1, threshold: float = 0.5, classes: Sequence[Any] = ()) -> pd.DataFrame:
    """The task's metrics per window of prediction time (tidy: window_start, window_end, n_labelled, metrics...,
    note); a window where a metric is undefined gets NaN and a note instead of failing the series."""
    width_us = int(round(window_seconds(window) * 1e6))
    joined = join_task_labels(log, labels, TASK_OUTPUTS[task]).frame
    columns = ["window_start", "window_end", "n_labelled", *METRICS[task], "note"]
    if joined.empty:
        return pd.DataFrame(columns=columns)
    micros = pd.to_datetime(joined["timestamp"], utc=True, format="ISO8601").dt.as_unit("us").astype("int64")
    rows = []
    for bucket, part in joined.groupby((micros // width_us).to_numpy(), sort=True):
        start = pd.Timestamp(int(bucket) * width_us, unit="us", tz="UTC")
        metrics, note = task_metrics(task, part, positive=positive, threshold=threshold, classes=classes)
        rows.append({"window_start": start, "window_end": start + pd.Timedelta(microseconds=width_us),
                     "n_labelled": len(part), **{k: metrics.get(k, math.nan) for k in METRICS[task]}, "note": note})
    return pd.DataFrame(rows, columns=columns)
