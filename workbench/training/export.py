"""Logging a trained model to MLflow as a pyfunc a serving layer loads with one call.

The model (see ``_pyfunc_model.py``) takes the raw feature columns, encodes and imputes them itself and
returns the task's output. It carries a signature over the raw columns (each column's type from the
training frame; a column that holds nulls in training is optional), an input example, and metadata
``{"workbench": {"task", "classes", "positive", "threshold", "feature_columns", ...}}`` so serving and
monitoring read what to do from the model, not from code.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from workbench.model_schema import column_type, conform_frame
from workbench.training.checkpoint import TrainingState
from workbench.training.model import linear_layers

MODEL_NAME = "model"
META_FILE = "meta.json"
_PYFUNC_CODE = Path(__file__).with_name("_pyfunc_model.py")
#: Extra pip requirements of a logged model, by model kind (what its pyfunc imports).
MODEL_REQUIREMENTS: dict[str, tuple[str, ...]] = {"mlp": (), "xgboost": ("xgboost-cpu==3.2.0",)}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


@contextmanager
def resumed_run(tracking_uri: str, run_id: str) -> Iterator[mlflow.ActiveRun]:
    """Resume run ``run_id`` with the fluent API, whatever experiment the caller had set.

    ``mlflow.start_run(run_id=...)`` refuses a run of another experiment than the one a notebook (or an
    earlier call) chose with ``mlflow.set_experiment``. The run's own experiment is made active for the
    duration, and the caller's choice (which ``set_experiment`` mirrors into ``MLFLOW_EXPERIMENT_ID``)
    is put back afterwards, so logging a model never changes where the user's next run goes.
    """
    mlflow.set_tracking_uri(tracking_uri)
    run_experiment = mlflow.MlflowClient(tracking_uri).get_run(run_id).info.experiment_id
    before = os.environ.get("MLFLOW_EXPERIMENT_ID")
    mlflow.set_experiment(experiment_id=run_experiment)
    try:
        with mlflow.start_run(run_id=run_id, log_system_metrics=False) as run:
            yield run
    finally:
        if before and before != run_experiment:
            mlflow.set_experiment(experiment_id=before)
        elif before is None:
            os.environ.pop("MLFLOW_EXPERIMENT_ID", None)


def write_model_artifacts(state: TrainingState, folder: Path, threshold: float | None = None) -> dict[str, Path]:
    """Write an MLP pyfunc's artifacts (``weights`` .npz and ``meta`` JSON) into ``folder``."""
    layers = linear_layers(state.build_model())
    arrays = {"mean": state.scaler.mean, "std": state.scaler.std}
    for i, (w, b) in enumerate(layers):
        arrays[f"w{i}"], arrays[f"b{i}"] = w, b
    weights = Path(folder) / "weights.npz"
    np.savez(weights, **arrays)  # type: ignore[arg-type]
    meta = write_meta(folder, {
        "model": "mlp", "feature_columns": state.feature_columns, "task": state.task,
        "classes": state.classes, "positive": state.positive, "preprocessor": state.preprocessor,
        "n_layers": len(layers), "hidden_sizes": state.hidden_sizes, "epoch": state.epoch,
        "y_mean": state.y_mean, "y_std": state.y_std, "threshold": threshold})
    return {"weights": weights, "meta": meta}


def write_meta(folder: Path, meta: dict[str, Any]) -> Path:
    path = Path(folder) / META_FILE
    clean = {**meta, "classes": [_plain(c) for c in meta.get("classes", [])], "positive": _plain(meta.get("positive"))}
    path.write_text(json.dumps(clean))
    return path


def read_meta(artifacts: dict[str, Path]) -> dict[str, Any]:
    return dict(json.loads(Path(artifacts["meta"]).read_text()))


def input_schema(frame: pd.DataFrame, columns: Sequence[str], nullable: Iterable[str] = (),
                 long_integers: bool = True) -> Schema:
    """The model's input schema over raw ``columns``, each as the training frame holds it
    (:func:`workbench.model_schema.column_type`: long for integers without nulls, double for other
    numbers, boolean, string for categories); columns in ``nullable`` (nulls in training) are optional;
    ``long_integers=False`` (a model with a feature service) declares every number double."""
    optional = set(nullable)
    return Schema([ColSpec(column_type(frame[c], c in optional, long_integers), c, required=c not in optional)
                   for c in columns])


def log_tabular_model(tracking_uri: str, run_id: str, artifacts: dict[str, Path], example: pd.DataFrame,
                      prediction: Any, *, nullable: Iterable[str] = (), long_integers: bool = True) -> str:
    """Log the pyfunc described by ``artifacts`` (with ``meta``) into run ``run_id``; return its model URI.

    ``example`` holds a few raw rows of the feature columns (the input example), ``prediction`` the
    model's output on them (the output schema). Resumes the run with :func:`resumed_run`, so it works
    after ``mlflow.set_experiment`` to another experiment, but not inside another active run.
    """
    meta = read_meta(artifacts)
    columns = list(meta["feature_columns"])
    example = example[columns].reset_index(drop=True)
    inputs = input_schema(example, columns, nullable, long_integers)
    example = conform_frame(inputs, example)  # the example in the declared types (ints of a double column)
    outputs = mlflow.models.infer_signature(model_output=prediction).outputs
    signature = ModelSignature(inputs=inputs, outputs=outputs)
    workbench = {"task": meta.get("task", "binary"), "classes": meta.get("classes", []),
                 "positive": meta.get("positive"), "threshold": meta.get("threshold"),
                 "feature_columns": columns, "model": meta.get("model", "mlp"),
                 "categorical_columns": sorted((meta.get("preprocessor") or {}).get("categories", {}))}
    requirements = [f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}", f"pandas=={pd.__version__}",
                    *MODEL_REQUIREMENTS.get(str(meta.get("model", "mlp")), ())]
    with resumed_run(tracking_uri, run_id):
        info = mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            python_model=str(_PYFUNC_CODE),
            artifacts={name: str(path) for name, path in artifacts.items()},
            signature=signature,
            input_example=example,
            pip_requirements=requirements,
            metadata={"workbench": workbench},
        )
    return str(info.model_uri)


def log_fraud_model(tracking_uri: str, run_id: str, state: TrainingState, input_example: pd.DataFrame,
                    threshold: float | None = None) -> str:
    """Log an MLP ``state`` into run ``run_id``; return its model URI (the job driver logs through
    :func:`workbench.training.evaluation.finish_model`, which also chooses the threshold)."""
    from workbench.training._pyfunc_model import TabularModel

    with tempfile.TemporaryDirectory() as tmp:
        artifacts = write_model_artifacts(state, Path(tmp), threshold)
        model = load_unlogged(artifacts)
        example = input_example[state.feature_columns].reset_index(drop=True)
        assert isinstance(model, TabularModel)
        return log_tabular_model(tracking_uri, run_id, artifacts, example, model.predict(None, example),
                                 long_integers=False)  # the fraud model's inputs come from its feature service


def load_unlogged(artifacts: dict[str, Path]) -> Any:
    """The pyfunc of ``artifacts`` loaded in this process, exactly as MLflow will load it."""
    import types

    from workbench.training._pyfunc_model import TabularModel

    model = TabularModel()
    model.load_context(types.SimpleNamespace(artifacts={k: str(v) for k, v in artifacts.items()}))
    return model
