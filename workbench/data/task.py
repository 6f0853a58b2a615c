"""What a dataset is *for*: its label, the kind of prediction, its keys and its clock.

A :class:`Task` travels with a dataset version (the catalog stores it), with a training run (tag
``workbench.task``) and with a registered model (its MLflow metadata), so every later stage reads what
to do from data instead of from column names written into the code. The fraud demo is one Task
(``Task(label="is_fraud", kind="binary", entity_keys=("user_id", "merchant_id"), timestamp="timestamp")``);
a user's own problem is another.

The contract every stage shares, by task kind:

=============  ==================================  ==========================================
kind           the logged model's ``predict``        what the endpoint answers per instance
=============  ==================================  ==========================================
binary         1-D float: P(label == positive)     ``score`` (that probability), ``label``
multiclass     frame, one ``proba_<class>`` column  ``label`` and ``probabilities`` {class: p}
regression     1-D float: the predicted value      ``prediction``
=============  ==================================  ==========================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import duckdb

from workbench.errors import InvalidInput

TaskKind = Literal["binary", "multiclass", "regression"]
TASK_KINDS: tuple[str, ...] = ("binary", "multiclass", "regression")
TAG_TASK = "workbench.task"
"""MLflow run / model-version tag holding the task kind."""
MAX_CLASSES = 1000
"""More distinct labels than this is not a classification problem we can serve sensibly."""


@dataclass(frozen=True)
class Task:
    """The prediction a dataset supports. Column names may hold spaces, dots or non-ASCII letters."""

    label: str
    kind: TaskKind = "binary"
    entity_keys: tuple[str, ...] = ()
    timestamp: str | None = None
    exclude: tuple[str, ...] = ()
    positive: Any = None  # binary only: the label value counted as positive (default: the larger of two)
    classes: tuple[Any, ...] = field(default=(), compare=False)  # filled by `check_task` for classification

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise InvalidInput("task.label must name the label column (a non-empty string)")
        if self.kind not in TASK_KINDS:
            raise InvalidInput(f"task.kind must be one of {TASK_KINDS}, got {self.kind!r}")
        for name in ("entity_keys", "exclude"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            if not isinstance(value, Sequence) or not all(isinstance(v, str) and v for v in value):
                raise InvalidInput(f"task.{name} must be a list of column names, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        if self.timestamp is not None and (not isinstance(self.timestamp, str) or not self.timestamp):
            raise InvalidInput(f"task.timestamp must be a column name or None, got {self.timestamp!r}")
        object.__setattr__(self, "classes", tuple(self.classes))
        clash = {self.label} & (set(self.entity_keys) | set(self.exclude) | {self.timestamp})
        if clash:
            raise InvalidInput(f"task.label {self.label!r} cannot also be an entity key, the timestamp or excluded")

    # which columns are what ----------------------------------------------------------------------
    def reserved(self) -> set[str]:
        """Columns that are never model inputs: label, timestamp, excluded."""
        return {self.label, *self.exclude, *([self.timestamp] if self.timestamp else [])}

    def feature_columns(self, columns: Sequence[str]) -> list[str]:
        """The dataset's columns that are model inputs when no feature store is used (``features=None``):
        all but the label, the timestamp, the entity keys and the excluded ones, in dataset order."""
        skip = self.reserved() | set(self.entity_keys)
        return [c for c in columns if c not in skip]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["entity_keys"] = list(self.entity_keys)
        out["exclude"] = list(self.exclude)
        out["classes"] = list(self.classes)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Task:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"unknown task fields {unknown}; known: {sorted(known)}")
        return cls(**dict(data))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_task(task: Task, relation: str, columns: Sequence[str],
               con: duckdb.DuckDBPyConnection | None = None, params: Mapping[str, Any] | None = None) -> Task:
    """Check ``task`` against a dataset and return it with ``classes`` (and ``positive``) filled.

    ``relation`` is a DuckDB relation expression over the data (``read_parquet($files)``, its parameters in
    ``params``); ``columns`` its column names. Every problem is an :class:`InvalidInput` that names the
    column and says what to do.
    """
    cols = list(columns)
    for role, names in (("label", [task.label]), ("entity key", list(task.entity_keys)),
                        ("timestamp", [task.timestamp] if task.timestamp else []),
                        ("excluded column", list(task.exclude))):
        for name in names:
            if name not in cols:
                raise InvalidInput(f"the {role} column {name!r} is not in the dataset; its columns are {cols}")
    con = con or duckdb.connect()
    bound = dict(params or {})
    label = _quote(task.label)
    row = con.execute(f"SELECT count(*), count({label}), count(DISTINCT {label}), typeof(any_value({label})) "
                      f"FROM {relation}", bound).fetchone()
    assert row is not None
    n_rows, n_labelled, n_distinct, label_type = int(row[0]), int(row[1]), int(row[2]), str(row[3])
    if n_rows == 0:
        raise InvalidInput("the dataset has no rows")
    if n_labelled < n_rows:
        raise InvalidInput(f"the label column {task.label!r} is empty in {n_rows - n_labelled} of {n_rows} rows: "
                           "drop or fill those rows before declaring the task")
    if n_distinct < 2:
        raise InvalidInput(f"the label column {task.label!r} is constant (one distinct value): there is nothing "
                           "to learn; check the column or the rows you selected")
    numeric = label_type.upper() in {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                                     "USMALLINT", "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "BOOLEAN"} or \
        label_type.upper().startswith("DECIMAL")
    if task.timestamp:
        kind = con.execute(f"SELECT typeof(any_value({_quote(task.timestamp)})) FROM {relation}", bound).fetchone()
        if kind is None or not str(kind[0]).upper().startswith(("TIMESTAMP", "DATE")):
            raise InvalidInput(f"the timestamp column {task.timestamp!r} holds {kind[0] if kind else 'no'} values, "
                               "not timestamps: convert it, or leave task.timestamp unset")
    if task.kind == "regression":
        if not numeric or label_type.upper() == "BOOLEAN":
            raise InvalidInput(f"the label column {task.label!r} holds {label_type} values, but a regression "
                               "needs numbers: choose kind 'binary' or 'multiclass', or convert the column")
        return task
    if task.kind == "binary" and n_distinct != 2:
        raise InvalidInput(f"the label column {task.label!r} has {n_distinct} distinct values, but a binary task "
                           "needs exactly 2: choose kind 'multiclass' (or 'regression' for numbers)")
    if n_distinct > MAX_CLASSES:
        raise InvalidInput(f"the label column {task.label!r} has {n_distinct} distinct values, too many for "
                           f"classification (at most {MAX_CLASSES}): did you mean kind 'regression'?")
    values = [r[0] for r in con.execute(f"SELECT DISTINCT {label} FROM {relation} ORDER BY 1", bound).fetchall()]
    values = [v.item() if hasattr(v, "item") else v for v in values]
    positive = task.positive
    if task.kind == "binary":
        if positive is None:
            positive = values[-1]
        elif positive not in values:
            raise InvalidInput(f"task.positive {positive!r} is not a value of the label column {task.label!r} "
                               f"(its values: {values})")
    return Task(label=task.label, kind=task.kind, entity_keys=task.entity_keys, timestamp=task.timestamp,
                exclude=task.exclude, positive=positive, classes=tuple(values))


HOLDOUT_TAG = "workbench.holdout"
"""MLflow run tag recording the holdout split a run never saw (its rule, its frame)."""


def split_holdout(frame: Any, task: Task, fraction: float = 0.2, seed: int = 0) -> tuple[Any, Any, str]:
    """Split a training frame into (training rows, holdout rows, the rule, stated).

    The holdout is what the champion guard of the registry compares models on, so it must never be used
    for ranking or early stopping: the training stage gets only the first part. With a timestamp it is the
    latest ``fraction`` of rows by time (a model is judged on the future it will serve); without one, a
    seeded random sample. Rows keep their order.
    """
    import numpy as np
    import pandas as pd

    if not 0.0 < fraction < 0.5:
        raise InvalidInput(f"holdout fraction must be in (0, 0.5), got {fraction!r}")
    if not isinstance(frame, pd.DataFrame) or len(frame) < 10:
        raise InvalidInput("the frame to split needs at least 10 rows")
    n_holdout = max(1, int(round(len(frame) * fraction)))
    if task.timestamp and task.timestamp in frame.columns:
        order = np.argsort(pd.to_datetime(frame[task.timestamp], utc=True).to_numpy(), kind="stable")
        held = np.sort(order[-n_holdout:])
        cutoff = pd.to_datetime(frame[task.timestamp], utc=True).iloc[held].min()
        rule = f"time: the latest {fraction:.0%} of rows by {task.timestamp!r} (from {cutoff.isoformat()})"
    else:
        held = np.sort(np.random.default_rng(seed).choice(len(frame), n_holdout, replace=False))
        rule = f"random: {fraction:.0%} of rows, seed {seed}"
    mask = np.zeros(len(frame), dtype=bool)
    mask[held] = True
    return frame.loc[~mask].reset_index(drop=True), frame.loc[mask].reset_index(drop=True), rule
