"""Logging the trained model to MLflow as a pyfunc a serving layer loads with one call.

The model is numpy-only (see ``_pyfunc_model.py``) and carries a signature inferred from an input
example plus the example itself, so ``mlflow.pyfunc.load_model(uri).predict(frame)`` is all a serving
process needs: no torch, no Ray, no workbench.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from workbench.training.checkpoint import TrainingState
from workbench.training.model import linear_layers, predict_proba

MODEL_NAME = "model"
_PYFUNC_CODE = Path(__file__).with_name("_pyfunc_model.py")


def write_model_artifacts(state: TrainingState, folder: Path) -> dict[str, Path]:
    """Write the pyfunc's artifacts (``weights`` .npz and ``meta`` JSON) into ``folder``."""
    layers = linear_layers(state.build_model())
    arrays = {"mean": state.scaler.mean, "std": state.scaler.std}
    for i, (w, b) in enumerate(layers):
        arrays[f"w{i}"], arrays[f"b{i}"] = w, b
    weights = Path(folder) / "weights.npz"
    np.savez(weights, **arrays)  # type: ignore[arg-type]
    meta = Path(folder) / "meta.json"
    meta.write_text(json.dumps({"feature_columns": state.feature_columns, "n_layers": len(layers),
                                "hidden_sizes": state.hidden_sizes, "epoch": state.epoch}))
    return {"weights": weights, "meta": meta}


def log_fraud_model(tracking_uri: str, run_id: str, state: TrainingState, input_example: pd.DataFrame) -> str:
    """Log ``state`` into run ``run_id`` as a pyfunc returning fraud probabilities; return its model URI.

    Uses the fluent API's ``start_run(run_id=...)``: call it from a process of its own (the job driver).
    """
    mlflow.set_tracking_uri(tracking_uri)
    example = input_example[state.feature_columns].astype("float64").reset_index(drop=True)
    prediction = predict_proba(state.build_model(), state.scaler, example.to_numpy()).astype(np.float64)
    signature = mlflow.models.infer_signature(example, prediction)
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = write_model_artifacts(state, Path(tmp))
        with mlflow.start_run(run_id=run_id, log_system_metrics=False):
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=str(_PYFUNC_CODE),
                artifacts={name: str(path) for name, path in artifacts.items()},
                signature=signature,
                input_example=example,
                pip_requirements=[f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}",
                                  f"pandas=={pd.__version__}"],
            )
    return str(info.model_uri)
