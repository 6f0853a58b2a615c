"""No feature store (``features=None``): the dataset's own columns are the model inputs.

A dataset without entities or a clock (30 numeric columns and a label, say) needs no Feast project;
its training frame is the dataset itself, cut to what :meth:`Task.feature_columns` names, with the
timestamp kept (for a time split) when the task has one, and the label last.
"""

from __future__ import annotations

import pandas as pd

from workbench import locations
from workbench.data.task import Task
from workbench.errors import InvalidInput, NotFound
from workbench.features.tables import Dataset


def dataset_frame(dataset: Dataset, task: Task) -> pd.DataFrame:
    """The training frame of ``task`` straight from ``dataset`` (a frame, a Parquet file or folder).

    Columns: the task's feature columns in dataset order, then its timestamp (UTC) if it has one, then
    the label. Rows in dataset order.
    """
    if not isinstance(task, Task):
        raise InvalidInput(f"task must be a workbench.data.Task, got {type(task).__name__}")
    if isinstance(dataset, pd.DataFrame):
        frame = dataset.reset_index(drop=True)
    else:
        path = str(dataset)
        if not locations.exists(path):
            raise NotFound(f"dataset not found at {path}: pass a Parquet file or folder, or a DataFrame")
        try:
            frame = locations.read_parquet(path)
        except Exception as exc:
            raise InvalidInput(f"cannot read the dataset at {path} as Parquet: {exc}") from exc
    columns = list(frame.columns)
    for role, name in (("label", task.label), ("timestamp", task.timestamp)):
        if name is not None and name not in columns:
            raise InvalidInput(f"the {role} column {name!r} is not in the dataset; its columns are {columns}")
    features = task.feature_columns(columns)
    if not features:
        raise InvalidInput(f"the task leaves no feature columns in {columns}: exclude fewer columns")
    out = frame[features].copy()
    if task.timestamp:
        try:
            stamps = pd.to_datetime(frame[task.timestamp])
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"the timestamp column {task.timestamp!r} must hold timestamps: {exc}") from exc
        out[task.timestamp] = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    out[task.label] = frame[task.label].to_numpy()
    return out
