"""The built-in examples register with their tasks; the deliveries label is learnable from its columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.config import Settings
from workbench.data import DatasetCatalog
from workbench.data.examples import EXAMPLES, generate_deliveries, write_example
from workbench.data.generator import generate_transactions
from workbench.errors import InvalidInput


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_registers_with_its_task(tmp_path: Path, name: str) -> None:
    path, task = write_example(name, tmp_path, 2_000, seed=1)
    version = DatasetCatalog(Settings(project_dir=tmp_path)).register(name, path, task=task)
    stored = version.task_spec
    assert stored is not None and stored.kind == EXAMPLES[name].task.kind and stored.label == task.label
    columns = list(pd.read_parquet(path).columns)
    assert task.label not in task.feature_columns(columns) and all(c in columns for c in task.entity_keys)


def test_deliveries_look_like_a_users_export_and_are_deterministic() -> None:
    frame = generate_deliveries(3_000, seed=4)
    pd.testing.assert_frame_equal(frame, generate_deliveries(3_000, seed=4))
    assert {"distance km", "items.count", "météo", "rush hour"} <= set(frame.columns)
    assert frame["météo"].isna().mean() > 0.02 and frame["prep minutes"].isna().mean() > 0.01
    assert frame["ordered at"].is_monotonic_increasing and str(frame["ordered at"].dt.tz) == "UTC"
    # the label follows the columns: a least-squares fit on them explains most of its variance
    x = np.column_stack([frame["distance km"], frame["items.count"], frame["rush hour"].astype(float),
                         frame["prep minutes"].fillna(12.0), np.ones(len(frame))])
    y = frame["delivery minutes"].to_numpy()
    residual = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    assert 1 - residual.var() / y.var() > 0.7


def test_the_fraud_generator_can_hand_over_the_true_probability() -> None:
    plain = generate_transactions(2_000, seed=2)
    oracle = generate_transactions(2_000, seed=2, with_probability=True)
    pd.testing.assert_frame_equal(plain, oracle.drop(columns="fraud_probability"))  # same rows, same labels
    p = oracle["fraud_probability"].to_numpy()
    assert ((p > 0) & (p < 1)).all()
    assert abs(p.mean() - oracle["is_fraud"].mean()) < 0.01  # labels drawn from it


def test_unknown_example_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="built-in examples"):
        write_example("housing", tmp_path, 10)
