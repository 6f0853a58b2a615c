"""A real fraud model ready to serve: generated transactions, an applied and materialized Feast repo,
two model versions trained in-process with the training stage's own loop and logged as the training job
logs them (pyfunc with signature), registered, version 1 aliased ``champion``.

Training runs in-process rather than as a Ray job so the serving tests spend their minutes on serving;
the Ray job path has its own tests (test_training_jobs.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from workbench.config import Settings
from workbench.data.generator import generate_transactions, write_transactions
from workbench.features import (
    FEATURE_SERVICE,
    MODEL_FEATURES,
    apply_repo,
    compute_features,
    materialize,
    save_training_frame,
    training_frame,
)
from workbench.registry import CHAMPION, set_alias
from workbench.training.export import log_fraud_model
from workbench.training.frame import load_training_data
from workbench.training.loop import train_model
from workbench.training.spec import TrainingSpec


@dataclass(frozen=True)
class ServedModel:
    settings: Settings  # shares the session's MLflow and Ray; own Feast repo and prediction logs
    model_name: str
    versions: tuple[str, ...]  # registered versions, oldest first
    transactions: pd.DataFrame
    frame_path: Path

    @property
    def champion_uri(self) -> str:
        return f"models:/{self.model_name}@{CHAMPION}"

    def version_uri(self, version: str) -> str:
        return f"models:/{self.model_name}/{version}"


def build_served_model(services: Settings, state_dir: Path, n_rows: int = 6000, n_versions: int = 2) -> ServedModel:
    settings = services.replace(state_dir=state_dir)
    txns = generate_transactions(n_rows, seed=11)
    path = write_transactions(txns, state_dir / "transactions.parquet")
    compute_features(settings, path)
    apply_repo(settings)
    materialize(settings)
    frame_path, _ = save_training_frame(training_frame(settings, path), settings)

    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    client = MlflowClient(settings.mlflow_uri)
    experiment = client.get_experiment_by_name(settings.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(settings.experiment)
    model_name = f"fraud-serving-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(model_name)
    example = pd.read_parquet(frame_path, columns=list(MODEL_FEATURES)).head(5)
    versions = []
    for i in range(n_versions):
        spec = TrainingSpec(frame_path=str(frame_path), feature_columns=tuple(MODEL_FEATURES), epochs=2 + i,
                            hidden_sizes=(16,), seed=i, feature_service=FEATURE_SERVICE)
        state = train_model(spec, load_training_data(spec), lambda _state, _metrics: None)
        assert state is not None
        run = client.create_run(experiment_id, run_name=f"serving-fixture-{i}",
                                tags={"workbench.feature_service": FEATURE_SERVICE})
        uri = log_fraud_model(settings.mlflow_uri, run.info.run_id, state, example)
        client.set_terminated(run.info.run_id)
        versions.append(mlflow.register_model(uri, model_name).version)
    set_alias(settings, model_name, CHAMPION, versions[0])
    return ServedModel(settings, model_name, tuple(str(v) for v in versions), txns, frame_path)
