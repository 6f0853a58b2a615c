"""A registered binary model with a recorded training frame, and a prediction log written by the real
PredictionLogWriter, for the monitoring tests (integration and UI). No Ray: the model is logged in-test
with the workbench metadata the training stage writes, and its answers are logged as a replica logs them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from workbench.config import Settings
from workbench.serving.prediction_log import PredictionLogWriter, log_dir, log_record

MODEL_CODE = '''
import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


class Binary(PythonModel):
    def predict(self, context, model_input, params=None):
        colour = (model_input["colour"].fillna("") == "red").astype(float)
        z = 0.08 * (model_input["amount"].astype(float) - 20.0) + 1.5 * colour - 1.0
        return (1.0 / (1.0 + np.exp(-z))).to_numpy()


mlflow.models.set_model(Binary())
'''
FEATURES = ["amount", "colour"]


def features(n: int, rng: np.random.Generator, shifted: bool = False) -> pd.DataFrame:
    amount = rng.gamma(2.0, 14.0 if shifted else 10.0, n)
    colours = ["red", "green", "blue", "violet"] if shifted else ["red", "green", "blue"]
    p = [0.2, 0.2, 0.2, 0.4] if shifted else [0.5, 0.3, 0.2]
    colour = rng.choice(colours, n, p=p).astype(object)
    if shifted:
        colour[rng.random(n) < 0.1] = None
    return pd.DataFrame({"amount": amount, "colour": colour})


def score(frame: pd.DataFrame) -> np.ndarray:
    z = 0.08 * (frame["amount"] - 20.0) + 1.5 * (frame["colour"].fillna("") == "red") - 1.0
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=float)


@dataclass(frozen=True)
class LoggedModel:
    uri: str  # models:/<name>/<version>
    version: str
    frame: pd.DataFrame  # the training frame (features + label)


def register_binary_model(settings: Settings, folder: Path, name: str, experiment: str) -> LoggedModel:
    """Log the model like the training stage does (metadata, signature, frame_path param) and register it."""
    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    mlflow.set_experiment(experiment)
    rng = np.random.default_rng(11)
    frame = features(4000, rng)
    frame["label"] = (rng.random(len(frame)) < score(frame)).astype(int)
    folder.mkdir(parents=True, exist_ok=True)
    frame_path = folder / "frame.parquet"
    frame.to_parquet(frame_path)
    code = folder / "model.py"
    code.write_text(MODEL_CODE)
    meta = {"workbench": {"task": "binary", "classes": [0, 1], "positive": 1, "threshold": 0.6,
                          "feature_columns": FEATURES}}
    with mlflow.start_run():
        mlflow.log_param("frame_path", str(frame_path))
        info = mlflow.pyfunc.log_model(name="model", python_model=str(code), metadata=meta,
                                       signature=infer_signature(frame[FEATURES], score(frame.head(5))),
                                       input_example=frame[FEATURES].head(3))
    version = str(mlflow.register_model(info.model_uri, name).version)
    return LoggedModel(f"models:/{name}/{version}", version, frame)


def write_log(settings: Settings, deployment: str, model: LoggedModel, n: int = 600, *, start: pd.Timestamp,
              shift_after: int = 300, seed: int = 5, step_s: float = 6.0) -> pd.DataFrame:
    """Log ``n`` predictions as a replica does (rows after ``shift_after`` drifted); returns what was logged."""
    rng = np.random.default_rng(seed)
    frame = pd.concat([features(shift_after, rng), features(n - shift_after, rng, shifted=True)], ignore_index=True)
    frame["score"] = score(frame)
    frame["request_id"] = [f"{deployment}-{uuid.uuid4().hex[:12]}" for _ in range(n)]
    frame["timestamp"] = [start + pd.Timedelta(seconds=i * step_s) for i in range(n)]
    frame["latency_ms"] = rng.gamma(2.0, 3.0, n)
    writer = PredictionLogWriter(log_dir(settings, deployment), "replica-a")
    records = []
    for row in frame.itertuples(index=False):
        records.append(log_record(
            request_id=row.request_id, timestamp=row.timestamp.isoformat(), deployment=deployment,
            model_version=model.version, latency_ms=float(row.latency_ms), event_timestamp=row.timestamp.isoformat(),
            task="binary", outputs={"score": float(row.score), "label": int(row.score >= 0.6)},
            inputs={"amount": float(row.amount), "colour": row.colour}))
    for i in range(0, len(records), 50):
        writer.append(records[i:i + 50])
    writer.close()
    return frame
