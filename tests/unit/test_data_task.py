"""A dataset version carries its task; a label that cannot work is an InvalidInput naming the column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.config import Settings
from workbench.data import DatasetCatalog
from workbench.data.task import Task
from workbench.errors import InvalidInput


def _write(tmp_path: Path, frame: pd.DataFrame, name: str = "d.parquet") -> Path:
    path = tmp_path / name
    frame.to_parquet(path)
    return path


@pytest.fixture()
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame({
        "mean radius": rng.normal(14, 3, n), "worst.texture": rng.normal(20, 4, n), "größe": rng.integers(0, 9, n),
        "colour": rng.choice(["red", "green", None], n), "customer": rng.integers(0, 5, n),
        "when": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
        "target": rng.integers(0, 2, n), "species": rng.choice(["a", "b", "c"], n), "price": rng.normal(5, 1, n),
        "note": ["x"] * n, "constant": [1] * n,
    })


def test_a_version_carries_its_task_with_its_classes(tmp_path: Path, frame: pd.DataFrame) -> None:
    catalog = DatasetCatalog(Settings(project_dir=tmp_path))
    version = catalog.register("cancer", _write(tmp_path, frame), task=Task(
        label="target", kind="binary", entity_keys=("customer",), timestamp="when", exclude=("note",)))
    task = catalog.get("cancer").task_spec
    assert task is not None and task.kind == "binary" and task.classes == (0, 1) and task.positive == 1
    assert task.entity_keys == ("customer",) and task.timestamp == "when"
    assert task.feature_columns(list(frame.columns)) == ["mean radius", "worst.texture", "größe", "colour",
                                                         "species", "price", "constant"]
    # the same bytes with another task: the same version, its task updated
    again = catalog.register("cancer", _write(tmp_path, frame), task={"label": "species", "kind": "multiclass"})
    assert again.version == version.version and len(catalog.versions("cancer")) == 1
    assert catalog.get("cancer").task_spec == Task(label="species", kind="multiclass")
    assert catalog.get("cancer").task_spec.classes == ("a", "b", "c")  # type: ignore[union-attr]


@pytest.mark.parametrize(("task", "message"), [
    (Task(label="missing"), "label column 'missing' is not in the dataset"),
    (Task(label="constant"), "'constant' is constant"),
    (Task(label="species", kind="regression"), "'species' holds VARCHAR values, but a regression needs numbers"),
    (Task(label="species", kind="binary"), "'species' has 3 distinct values, but a binary task needs exactly 2"),
    (Task(label="target", entity_keys=("user_id",)), "entity key column 'user_id' is not in the dataset"),
    (Task(label="target", timestamp="price"), "timestamp column 'price' holds DOUBLE values, not timestamps"),
    (Task(label="target", positive=7), "task.positive 7 is not a value of the label column 'target'"),
])
def test_a_task_that_cannot_work_names_the_column(tmp_path: Path, frame: pd.DataFrame, task: Task,
                                                   message: str) -> None:
    catalog = DatasetCatalog(Settings(project_dir=tmp_path))
    with pytest.raises(InvalidInput, match=message.replace(".", r"\.").replace("(", r"\(")):
        catalog.register("d", _write(tmp_path, frame), task=task)
    assert catalog.names() == []  # nothing registered


def test_a_label_with_empty_rows_and_bad_declarations(tmp_path: Path, frame: pd.DataFrame) -> None:
    frame.loc[3, "price"] = None
    with pytest.raises(InvalidInput, match="'price' is empty in 1 of 60 rows"):
        DatasetCatalog(Settings(project_dir=tmp_path)).register("d", _write(tmp_path, frame),
                                                                task=Task(label="price", kind="regression"))
    with pytest.raises(InvalidInput, match="task.kind must be one of"):
        Task(label="y", kind="ranking")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="cannot also be an entity key"):
        Task(label="y", entity_keys=("y",))
    with pytest.raises(InvalidInput, match="unknown task fields"):
        Task.from_dict({"label": "y", "kind": "binary", "labels": 1})


def test_the_holdout_is_the_latest_rows_by_time_or_a_seeded_sample(frame: pd.DataFrame) -> None:
    from workbench.data.task import split_holdout

    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    train, holdout, rule = split_holdout(shuffled, Task(label="target", timestamp="when"), 0.25)
    assert len(holdout) == 15 and len(train) == 45 and rule.startswith("time: the latest 25%")
    assert holdout["when"].min() > train["when"].max()  # the future, never seen in training
    assert set(train["mean radius"]) | set(holdout["mean radius"]) == set(frame["mean radius"])
    a_train, a_hold, rule = split_holdout(frame, Task(label="target"), 0.2, seed=5)
    b_train, b_hold, _ = split_holdout(frame, Task(label="target"), 0.2, seed=5)
    assert rule == "random: 20% of rows, seed 5" and a_hold.equals(b_hold) and len(a_hold) == 12
    assert not set(a_hold["mean radius"]) & set(a_train["mean radius"])
    with pytest.raises(InvalidInput, match="fraction"):
        split_holdout(frame, Task(label="target"), 0.7)
