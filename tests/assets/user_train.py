"""A user's own training script, as a data scientist would write it: plain scikit-learn + MLflow autolog.

The workbench runs it as the Ray job of a TrainingSpec(trainer="custom", entrypoint="user_train.py",
working_dir=<this folder>) and hands over MLflow's MLFLOW_TRACKING_URI / MLFLOW_RUN_ID (so the run below
is the one the workbench created) and WORKBENCH_FRAME_PATH / WORKBENCH_FEATURE_COLUMNS /
WORKBENCH_LABEL_COLUMN (what to train on).
"""

from __future__ import annotations

import argparse
import json
import os

import mlflow
import pandas as pd
from sklearn.linear_model import LogisticRegression


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--C", type=float, default=1.0)
    args = parser.parse_args()
    frame = pd.read_parquet(os.environ["WORKBENCH_FRAME_PATH"])
    features = json.loads(os.environ["WORKBENCH_FEATURE_COLUMNS"])
    label = os.environ["WORKBENCH_LABEL_COLUMN"]
    mlflow.sklearn.autolog(log_input_examples=True)
    with mlflow.start_run():  # resumes MLFLOW_RUN_ID: the workbench's run
        model = LogisticRegression(C=args.C, max_iter=500).fit(frame[features], frame[label])
        mlflow.log_metric("user_train_rows", len(frame))
    print(f"user_train: fitted on {len(frame)} rows, coef {model.coef_.round(3).tolist()}")


if __name__ == "__main__":
    main()
