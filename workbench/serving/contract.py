"""What a served model answers per instance, by task kind (the contract in :mod:`workbench.data.task`).

A model logged by the training stage carries MLflow model metadata ``{"workbench": {"task", "classes",
"positive", "threshold", "feature_columns"}}``; its answers are the task's outputs (binary ``score`` +
``label``; multiclass ``label`` + ``probabilities``; regression ``prediction``). Any other model with a
signature answers ``prediction``: whatever its ``predict`` returns for that row. The protocols that expect
the raw output (MLflow's ``/invocations``, the v2 ``infer``) get it unchanged from :attr:`Scored.raw`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.data.task import TASK_KINDS
from workbench.errors import WorkbenchError
from workbench.serving.signature import to_json

METADATA_KEY = "workbench"
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class ModelContract:
    """How to turn a model's raw predictions into answers; ``task`` None means "as the signature says"."""

    task: str | None = None
    classes: tuple[Any, ...] = ()
    positive: Any = None
    threshold: float = DEFAULT_THRESHOLD
    source: str = "signature"  # where the task came from: metadata | run tag | feature service | signature

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "classes": [to_json(c) for c in self.classes], "positive": to_json(self.positive),
                "threshold": self.threshold, "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ModelContract:
        if not data:
            return cls()
        return cls(task=data.get("task"), classes=tuple(data.get("classes") or ()), positive=data.get("positive"),
                   threshold=float(data.get("threshold", DEFAULT_THRESHOLD)), source=str(data.get("source", "")))

    @property
    def output_fields(self) -> tuple[str, ...]:
        """The keys each answered instance carries besides ``request_id``."""
        return {"binary": ("score", "label"), "multiclass": ("label", "probabilities"),
                "regression": ("prediction",)}.get(self.task or "", ("prediction",))

    def negative(self) -> Any:
        others = [c for c in self.classes if c != self.positive]
        return others[0] if others else 0


def contract_from_metadata(metadata: Mapping[str, Any] | None, run_task: str | None = None,
                           fallback_task: str | None = None) -> ModelContract:
    """The contract of a model: its ``workbench`` metadata, else the run's ``workbench.task`` tag, else
    ``fallback_task`` (a configuration that knows its models, such as the fraud feature service)."""
    meta = dict((metadata or {}).get(METADATA_KEY) or {})
    task = meta.get("task")
    if isinstance(task, Mapping):  # a whole Task dict
        meta = {**task, **{k: v for k, v in meta.items() if k != "task"}}
        task = task.get("kind")
    source = "metadata"
    if task not in TASK_KINDS:
        task, source = (run_task, "run tag") if run_task in TASK_KINDS else (fallback_task, "configuration")
    if task not in TASK_KINDS:
        return ModelContract()
    classes = tuple(meta.get("classes") or ())
    positive = meta.get("positive")
    if task == "binary":
        if positive is None:
            positive = classes[-1] if classes else 1
        if not classes:
            classes = (0, 1) if positive == 1 else ()
    threshold = meta.get("threshold")
    return ModelContract(task=str(task), classes=classes, positive=positive,
                         threshold=float(threshold) if threshold is not None else DEFAULT_THRESHOLD, source=source)


@dataclass
class Scored:
    """One row's answer: the task outputs (for ``/predict`` and the log) and the raw output row."""

    outputs: dict[str, Any]
    raw: Any = field(repr=False)


def _rows(raw: Any, n: int) -> list[Any]:
    """Split what ``predict`` returned for ``n`` rows into one JSON-able value per row."""
    if isinstance(raw, pd.DataFrame):
        records = raw.to_dict(orient="records")
        rows: list[Any] = [{str(k): to_json(v) for k, v in r.items()} for r in records]
    elif isinstance(raw, pd.Series):
        rows = [to_json(v) for v in raw.tolist()]
    elif isinstance(raw, np.ndarray):
        rows = [to_json(v) for v in (raw.tolist() if raw.ndim else [raw.item()])]
    elif isinstance(raw, Sequence) and not isinstance(raw, str | bytes):
        rows = [to_json(v) for v in raw]
    elif isinstance(raw, Mapping):  # column -> values
        columns = {str(k): list(np.asarray(v).tolist()) for k, v in raw.items()}
        rows = [{k: to_json(v[i]) for k, v in columns.items()} for i in range(n)]
    else:
        rows = [to_json(raw)] * n if n == 1 else []
    if len(rows) != n:
        raise WorkbenchError(f"the model's predict returned {len(rows)} rows for {n} inputs; a served model must "
                             "answer one prediction per input row")
    return rows


def _probability(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise WorkbenchError(f"the model predicted {value!r}, not a probability")
    return number


def _class_probabilities(contract: ModelContract, raw: Any, rows: list[Any]) -> list[dict[str, float]]:
    if isinstance(raw, pd.DataFrame):
        names = [str(c) for c in raw.columns]
        if contract.classes and all(f"proba_{c}" in names for c in contract.classes):
            keys = [(str(c), f"proba_{c}") for c in contract.classes]
        else:
            keys = [(n[len("proba_"):] if n.startswith("proba_") else n, n) for n in names]
        return [{k: _probability(r[col]) for k, col in keys} for r in rows]
    classes = [str(c) for c in contract.classes] or [str(i) for i in range(len(rows[0]) if rows else 0)]
    out = []
    for r in rows:
        values = r if isinstance(r, list) else [r]
        if len(values) != len(classes):
            raise WorkbenchError(f"the model predicted {len(values)} probabilities per row for {len(classes)} classes")
        out.append({c: _probability(v) for c, v in zip(classes, values, strict=True)})
    return out


def _label(contract: ModelContract, key: str) -> Any:
    for c in contract.classes:
        if str(c) == key:
            return to_json(c)
    return key


def score_rows(contract: ModelContract, raw: Any, n: int) -> list[Scored]:
    """Per-row answers for a batch of ``n`` rows from ``predict``'s return value ``raw``."""
    rows = _rows(raw, n)
    if contract.task == "binary":
        out = []
        for r in rows:
            value = next(iter(r.values())) if isinstance(r, dict) and len(r) == 1 else r
            value = value[0] if isinstance(value, list) and len(value) == 1 else value
            score = _probability(value)
            label = contract.positive if score >= contract.threshold else contract.negative()
            out.append(Scored({"score": score, "label": to_json(label)}, r))
        return out
    if contract.task == "multiclass":
        probabilities = _class_probabilities(contract, raw, rows)
        return [Scored({"label": _label(contract, max(p, key=p.__getitem__)), "probabilities": p}, r)
                for p, r in zip(probabilities, rows, strict=True)]
    if contract.task == "regression":
        out = []
        for r in rows:
            value = next(iter(r.values())) if isinstance(r, dict) and len(r) == 1 else r
            value = value[0] if isinstance(value, list) and len(value) == 1 else value
            out.append(Scored({"prediction": to_json(float(value)) if value is not None else None}, r))
        return out
    return [Scored({"prediction": r}, r) for r in rows]
