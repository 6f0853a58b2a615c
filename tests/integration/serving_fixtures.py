"""A real fraud model ready to serve: generated transactions, an applied and materialized Feast repo,
two model versions trained in-process with the training stage's own loop and logged as the training job
logs them (pyfunc with signature), registered, version 1 aliased ``champion``.

Training runs in-process rather than as a Ray job so the serving tests spend their minutes on serving;
the Ray job path has its own tests (test_training_jobs.py).
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import requests
from mlflow.tracking import MlflowClient

from workbench.config import Settings
from workbench.data.generator import generate_transactions, write_transactions
from workbench.features import (
    FEATURE_SERVICE,
    MODEL_FEATURES,
    apply_repo,
    compute_features,
    materialize,
    online_features,
    save_training_frame,
    training_frame,
)
from workbench.registry import CHAMPION, set_alias
from workbench.serving import endpoint_url
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


def instances_from(model: ServedModel, n: int, seed: int = 0, prefix: str = "") -> list[dict[str, object]]:
    rows = model.transactions.sample(n, random_state=seed, replace=n > len(model.transactions))
    return [{"request_id": f"{prefix or uuid.uuid4().hex[:8]}-{i}", "user_id": int(r.user_id),
             "merchant_id": int(r.merchant_id), "amount": float(r.amount),
             "timestamp": r.event_timestamp.isoformat()} for i, r in enumerate(rows.itertuples())]


def expected_scores(model: ServedModel, batch: list[dict[str, object]], version: str) -> np.ndarray:
    """What the registered version scores for ``batch`` on the same Feast features, computed here."""
    features = online_features(model.settings, [i["user_id"] for i in batch], [i["merchant_id"] for i in batch])
    when = pd.to_datetime([i["timestamp"] for i in batch], utc=True)
    features["amount"] = [i["amount"] for i in batch]
    features["hour_of_day"] = when.hour
    features["is_night"] = (when.hour < 6).astype(int)
    pyfunc = mlflow.pyfunc.load_model(model.version_uri(version))
    types = {c.name: c.type.to_numpy() for c in pyfunc.metadata.get_input_schema().inputs}
    return np.asarray(pyfunc.predict(features[list(types)].astype(types)))  # in the signature's types


class Load:
    """Clients sending single-instance requests until stopped; every answer and failure is kept."""

    def __init__(self, model: ServedModel, name: str, concurrency: int, prefix: str, retries: int = 0) -> None:
        self.model, self.name, self.prefix, self.retries = model, name, prefix, retries
        self.answers: dict[str, tuple[float, str]] = {}
        self.failures: list[str] = []
        self.retried: set[str] = set()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.pool = cf.ThreadPoolExecutor(concurrency)
        self.futures = [self.pool.submit(self._client, k) for k in range(concurrency)]

    def _client(self, k: int) -> None:
        session = requests.Session()
        pool = instances_from(self.model, 200, seed=k, prefix=f"{self.prefix}{k}")
        n = 0
        while not self.stop.is_set():
            instance = dict(pool[n % len(pool)], request_id=f"{self.prefix}-{k}-{n}")
            n += 1
            for attempt in range(self.retries + 1):
                response = None
                try:
                    response = session.post(endpoint_url(self.model.settings, self.name),
                                            json={"instances": [instance]}, timeout=60)
                except requests.RequestException as exc:
                    error = repr(exc)
                if response is not None and response.status_code == 200:
                    body = response.json()
                    with self.lock:
                        self.answers[instance["request_id"]] = (body["predictions"][0]["score"], body["model_version"])
                    break
                error = error if response is None else f"{response.status_code} {response.text[:200]}"
                with self.lock:
                    self.failures.append(error)
                    if attempt < self.retries:
                        self.retried.add(instance["request_id"])

    def wait_for(self, n: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.answers) < n:
            assert time.monotonic() < deadline, f"only {len(self.answers)} answers after {timeout_s} s"
            assert all(not f.done() or f.exception() is None for f in self.futures)
            time.sleep(0.05)

    def finish(self) -> None:
        self.stop.set()
        for future in self.futures:
            future.result(timeout=120)
        self.pool.shutdown()
