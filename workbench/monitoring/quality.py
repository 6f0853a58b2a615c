"""Model quality once labels arrive: join them to the prediction log, then ROC-AUC, PR-AUC, precision, recall.

Labels come late and partly: a fraud label may arrive weeks after the prediction, and some labels may
name requests this log does not hold (another deployment, a log rotated away). The join counts those
rather than dropping them silently, because a label stream that does not match the log is itself a
problem to see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from workbench.errors import InvalidInput
from workbench.monitoring import reprs as _reprs
from workbench.monitoring.performance import window_seconds
from workbench.monitoring.prediction_log import LogSource, read_log, require_columns

UNKNOWN_IDS_SHOWN = 10


@dataclass(frozen=True)
class LabelJoin:
    """The labelled predictions (``frame``: timestamp, score, label, ...) and how well the join went."""

    frame: pd.DataFrame
    predictions: int  # rows in the log
    labels: int  # rows in the label frame
    matched: int  # labels whose request_id is in the log
    unknown_ids: int  # labels whose request_id is not in the log
    unknown_examples: tuple[str, ...]  # a few of them, to look up

    @property
    def label_coverage(self) -> float:
        """Share of predictions that have a label."""
        return self.matched / self.predictions if self.predictions else math.nan

    def describe(self) -> str:
        text = f"{self.matched} of {self.predictions} predictions labelled ({self.label_coverage:.1%})"
        if self.unknown_ids:
            text += (f"; {self.unknown_ids} label(s) name request ids not in the log, "
                     f"e.g. {list(self.unknown_examples)}")
        return text

    def __repr__(self) -> str:
        return (f"LabelJoin(rows={len(self.frame)}, predictions={self.predictions}, labels={self.labels}, "
                f"matched={self.matched}, unknown_ids={self.unknown_ids})")

    def _repr_html_(self) -> str:
        return _reprs.card("Labels joined to predictions", {
            "predictions": self.predictions, "labels": self.labels, "matched": self.matched,
            "label coverage": self.label_coverage, "unknown request ids": self.unknown_ids},
            note=self.describe(), status="warn" if self.unknown_ids else "ok")


def join_labels(log: LogSource, labels: pd.DataFrame) -> LabelJoin:
    """Inner-join labels to the log by ``request_id``, counting labels whose id the log lacks."""
    frame = read_log(log, ["request_id", "timestamp", "score"])
    require_columns(list(labels.columns), ["request_id", "label"], what="label frame")
    if labels["request_id"].duplicated().any():
        dupes = labels.loc[labels["request_id"].duplicated(), "request_id"].astype(str).unique()[:UNKNOWN_IDS_SHOWN]
        raise InvalidInput(f"labels repeat request_id(s) {list(dupes)}; keep one label per request")
    values = pd.to_numeric(labels["label"], errors="coerce")
    if values.isna().any() or not values.isin([0, 1]).all():
        bad = labels.loc[values.isna() | ~values.isin([0, 1]), "label"].unique()[:5]
        raise InvalidInput(f"labels must be 0 or 1, found {list(bad)}")
    ids = labels["request_id"].astype(str)
    known = ids.isin(set(frame["request_id"].astype(str)))
    unknown = ids[~known]
    keep = labels.loc[:, [c for c in ("request_id", "label", "label_timestamp") if c in labels.columns]].copy()
    keep["request_id"] = ids
    keep["label"] = values.astype("int64")
    log_part = frame.assign(request_id=frame["request_id"].astype(str))
    joined = log_part.merge(keep[known.to_numpy()], on="request_id", how="inner", validate="many_to_one")
    return LabelJoin(frame=joined, predictions=len(frame), labels=len(labels), matched=len(joined),
                     unknown_ids=int((~known).sum()), unknown_examples=tuple(unknown.head(UNKNOWN_IDS_SHOWN)))


def _both_classes(label: np.ndarray, where: str) -> None:
    if label.size == 0:
        raise InvalidInput(f"no labelled predictions {where}; wait for labels or widen the window")
    if label.min() == label.max():
        raise InvalidInput(f"all {label.size} labels {where} are {int(label[0])}: ROC-AUC and PR-AUC need both "
                           "classes; widen the window or wait for more labels")


def classification_metrics(label: np.ndarray, score: np.ndarray, threshold: float = 0.5,
                           where: str = "in the data") -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), and precision/recall of ``score >= threshold``.

    InvalidInput when the labels hold one class only (the AUCs are undefined). Precision is NaN when
    nothing scores above the threshold.
    """
    label = np.asarray(label, dtype=np.int64)
    score = np.asarray(score, dtype=float)
    _both_classes(label, where)
    predicted = score >= threshold
    tp = int(np.sum(predicted & (label == 1)))
    positives = int(label.sum())
    flagged = int(predicted.sum())
    return {
        "n_labelled": float(label.size), "positives": float(positives),
        "roc_auc": float(roc_auc_score(label, score)), "pr_auc": float(average_precision_score(label, score)),
        "precision": tp / flagged if flagged else math.nan, "recall": tp / positives,
    }


@dataclass(frozen=True)
class QualityReport:
    """Quality over all labelled predictions, and how the labels joined."""

    roc_auc: float
    pr_auc: float
    precision: float
    recall: float
    threshold: float
    n_labelled: int
    positives: int
    join: LabelJoin

    def metrics(self) -> dict[str, float]:
        return {"roc_auc": self.roc_auc, "pr_auc": self.pr_auc, "precision": self.precision, "recall": self.recall,
                "label_coverage": self.join.label_coverage, "unknown_label_ids": float(self.join.unknown_ids)}

    def __repr__(self) -> str:
        return (f"QualityReport(roc_auc={self.roc_auc:.4f}, pr_auc={self.pr_auc:.4f}, precision={self.precision:.4f}, "
                f"recall={self.recall:.4f}, threshold={self.threshold}, n_labelled={self.n_labelled}, "
                f"positives={self.positives}, join={self.join!r})")

    def _repr_html_(self) -> str:
        return _reprs.card(f"Model quality on {self.n_labelled:,} labelled predictions", {
            "ROC-AUC": self.roc_auc, "PR-AUC": self.pr_auc, f"precision @ {self.threshold:g}": self.precision,
            f"recall @ {self.threshold:g}": self.recall, "positives": self.positives,
            "label coverage": self.join.label_coverage, "unknown label ids": self.join.unknown_ids},
            note=self.join.describe())


def quality_report(log: LogSource, labels: pd.DataFrame, threshold: float = 0.5) -> QualityReport:
    """Join labels and compute quality over all of them (InvalidInput if one class only)."""
    joined = join_labels(log, labels)
    m = classification_metrics(joined.frame["label"].to_numpy(), joined.frame["score"].to_numpy(), threshold,
                               where="joined to the log")
    return QualityReport(roc_auc=m["roc_auc"], pr_auc=m["pr_auc"], precision=m["precision"], recall=m["recall"],
                         threshold=threshold, n_labelled=int(m["n_labelled"]), positives=int(m["positives"]),
                         join=joined)


def quality_over_time(log: LogSource, labels: pd.DataFrame, window: str | pd.Timedelta = "1h",
                      threshold: float = 0.5) -> pd.DataFrame:
    """Quality per fixed window of prediction time; a window whose labels are one class gets NaN AUCs
    and a ``note`` saying why, instead of failing the whole series."""
    width = window_seconds(window)
    joined = join_labels(log, labels).frame
    columns = ["window_start", "window_end", "n_labelled", "positives", "roc_auc", "pr_auc", "precision", "recall",
               "note"]
    if joined.empty:
        return pd.DataFrame(columns=columns)
    micros = pd.to_datetime(joined["timestamp"], utc=True).dt.as_unit("us").astype("int64")
    width_us = int(round(width * 1e6))
    bucket = micros // width_us  # windows aligned to the epoch, as in latency_over_time
    rows = []
    for b, part in joined.groupby(bucket.to_numpy(), sort=True):
        start = pd.Timestamp(int(b) * width_us, unit="us", tz="UTC")
        label = part["label"].to_numpy()
        row: dict[str, object] = {"window_start": start, "window_end": start + pd.Timedelta(microseconds=width_us),
                                  "n_labelled": len(part), "positives": int(label.sum())}
        try:
            m = classification_metrics(label, part["score"].to_numpy(), threshold, where=f"in window {start}")
            row |= {k: m[k] for k in ("roc_auc", "pr_auc", "precision", "recall")} | {"note": ""}
        except InvalidInput as exc:
            row |= {"roc_auc": math.nan, "pr_auc": math.nan, "precision": math.nan, "recall": math.nan,
                    "note": str(exc)}
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)
