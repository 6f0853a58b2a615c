"""The logged MLflow model: fraud probabilities from raw feature columns, with numpy only.

Logged as "models from code": MLflow copies this one file next to the weights, so a serving process
loads it with ``mlflow.pyfunc.load_model(uri).predict(frame)`` without torch, Ray or the workbench
package. Keep it self-contained: standard library, numpy, pandas and mlflow only.

Artifacts: ``weights`` (an .npz with ``mean``, ``std``, ``w0``, ``b0``, ``w1``, ``b1``, …) and ``meta``
(JSON with ``feature_columns``). The forward pass is standardise → (Linear → ReLU)* → Linear → sigmoid,
which is exactly the trained MLP in eval mode (dropout is the identity there).
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


class FraudProbabilityModel(PythonModel):
    """``predict(frame)`` → one fraud probability in [0, 1] per row, as a float64 numpy array."""

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["meta"]) as handle:
            meta = json.load(handle)
        weights = np.load(context.artifacts["weights"])
        self.feature_columns: list[str] = list(meta["feature_columns"])
        self.mean = weights["mean"].astype(np.float64)
        self.std = weights["std"].astype(np.float64)
        n_layers = int(meta["n_layers"])
        self.layers = [(weights[f"w{i}"].astype(np.float64), weights[f"b{i}"].astype(np.float64))
                       for i in range(n_layers)]

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        frame = pd.DataFrame(model_input)
        missing = [c for c in self.feature_columns if c not in frame.columns]
        if missing:
            raise ValueError(f"the input lacks feature columns {missing}; the model needs {self.feature_columns}")
        hidden = (frame[self.feature_columns].to_numpy(dtype=np.float64) - self.mean) / self.std
        for index, (weight, bias) in enumerate(self.layers):
            hidden = hidden @ weight.T + bias
            if index < len(self.layers) - 1:
                hidden = np.maximum(hidden, 0.0)
        logits = hidden[:, 0]
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))


mlflow.models.set_model(FraudProbabilityModel())
