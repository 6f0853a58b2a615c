"""A TrainingSpec shown in a notebook is a short card, not a one-line dump of every field."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from workbench.training.spec import TrainingSpec


def test_the_card_names_the_trainer_the_inputs_and_only_the_changed_settings(tmp_path: Path) -> None:
    frame = tmp_path / "frame.parquet"
    pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "y": [0, 1]}).to_parquet(frame)
    spec = TrainingSpec(frame_path=str(frame), feature_columns=("a", "b"), label_column="y", trainer="xgboost",
                        n_estimators=60)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", spec._repr_html_()))
    assert "Training spec" in text and "trainer xgboost" in text and "inputs a, b" in text
    assert "n_estimators 60" in text
    assert "max_depth" not in text and "lr" not in text.split()  # defaults are left out
