"""The job's last step for every built-in trainer: evaluate the model *as logged*, choose the threshold,
log the model, its final metrics and (binary) its calibration.

Final metrics are computed from the pyfunc's own predictions on the raw validation rows (the same split
the workers validated on), so what the run reports is what a serving process will get. The binary
threshold is chosen there by the spec's rule and stored in the model's metadata; the reliability curve
(JSON and PNG) and the Brier score say whether the scores can be read as probabilities.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.entities import Metric

from workbench.data.task import TAG_TASK
from workbench.training.export import load_unlogged, log_tabular_model, read_meta, write_meta
from workbench.training.frame import read_frame, split_frame
from workbench.training.metrics import choose_threshold, reliability_curve, task_metrics
from workbench.training.tracking import set_tags, tracking_client
from workbench.training.trainers import JobContext, TrainOutcome

TAG_MODEL_URI = "workbench.model_uri"
RELIABILITY_JSON = "workbench/reliability.json"
RELIABILITY_PNG = "workbench/reliability.png"


def _output_values(output: Any) -> np.ndarray:
    return output.to_numpy(dtype=np.float64) if isinstance(output, pd.DataFrame) else np.asarray(output, np.float64)


def finish_model(job: JobContext, artifacts: dict[str, Path], step: int, already_logged: set[str],
                 frame: pd.DataFrame | None = None) -> TrainOutcome:
    """Evaluate, choose the threshold, log the model and the metrics not yet logged at ``step``."""
    spec = job.spec
    frame = read_frame(spec) if frame is None else frame
    y, _, val_idx, coding = split_frame(spec, frame)
    features = list(spec.feature_columns)
    val_rows = frame.iloc[val_idx][features].reset_index(drop=True)
    model = load_unlogged(artifacts)
    output = _output_values(model.predict(None, val_rows))
    y_val = y[val_idx]
    threshold = (choose_threshold(y_val, output, spec.threshold_rule, spec.threshold)
                 if coding.task == "binary" else None)
    meta = read_meta(artifacts)
    meta.update({"threshold": threshold, "task": coding.task, "classes": list(coding.classes),
                 "positive": coding.positive})
    write_meta(Path(artifacts["meta"]).parent, meta)
    metrics = task_metrics(coding.task, y_val, output, threshold if threshold is not None else spec.threshold)
    if threshold is not None:
        metrics["threshold"] = threshold
    example = frame[features].head(5).reset_index(drop=True)
    nullable = [c for c in features if frame[c].isna().any()]
    model_uri = log_tabular_model(job.tracking_uri, job.run_id, artifacts, example,
                                  model.predict(None, example), nullable=nullable,
                                  long_integers=not spec.feature_service)
    client = tracking_client(job.tracking_uri)
    now = int(time.time() * 1000)
    new = [Metric(k, float(v), now, step) for k, v in metrics.items()
           if k not in already_logged and not math.isnan(float(v))]
    if new:
        client.log_batch(job.run_id, metrics=new)
    if coding.task == "binary":
        curve = reliability_curve(y_val, output)
        curve["threshold"] = threshold
        client.log_dict(job.run_id, curve, RELIABILITY_JSON)
        _log_reliability_png(client, job.run_id, curve)
    set_tags(client, job.run_id, {TAG_MODEL_URI: model_uri, "workbench.final_epoch": str(step),
                                  TAG_TASK: coding.task})
    return TrainOutcome(model_uri, step, metrics)


def _log_reliability_png(client: Any, run_id: str, curve: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    bins = curve["bins"]
    ax.plot([b["mean_score"] for b in bins], [b["positive_rate"] for b in bins], marker="o", label="model")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed positive rate")
    ax.set_title(f"Reliability (validation, Brier {curve['brier']:.4f})")
    ax.legend(loc="upper left")
    fig.tight_layout()
    try:
        client.log_figure(run_id, fig, RELIABILITY_PNG)
    finally:
        plt.close(fig)
