"""The Ray Serve application that scores transactions: what runs inside each replica.

A replica loads one MLflow model version (named in the deployment's ``user_config``, so rolling to
another version is an in-place reconfigure, not a restart), looks the request's user and merchant up in
the Feast online store, scores in batches (``@serve.batch``) and appends every prediction to the
prediction log before answering. Ray Serve imports this module by path (``build_app``) from the
application config that :mod:`workbench.serving.deployments` PUTs to the cluster.

HTTP API, under the deployment's route prefix ``/<name>``:
  ``POST /predict``  body ``{"instances": [...]}`` (see :mod:`workbench.serving.payload`); 200 with
                     ``{"predictions": [{"request_id", "score"}], "model_version", "deployment"}``;
                     422 naming the bad field; 503 when the feature store or model cannot answer.
  ``GET /``          what is served: model URI and version, feature service, input columns.
"""

# No `from __future__ import annotations` here: FastAPI must see the real `Request` type.

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve import Application

from workbench.config import Settings
from workbench.errors import WorkbenchError
from workbench.serving.payload import DEPLOYMENT_CLASS, REQUEST_COLUMNS, Instance, PayloadError, parse_payload
from workbench.serving.prediction_log import PredictionLogWriter, log_dir

logger = logging.getLogger("ray.serve")

api = FastAPI(title="Workbench model endpoint", docs_url="/docs")


@dataclass(frozen=True)
class LoadedModel:
    uri: str
    version: str
    model: Any
    columns: list[str]
    dtypes: dict[str, Any]  # numpy dtype per input column, as the signature declares it


def load_model(uri: str, version: str) -> LoadedModel:
    """The pyfunc model and the input columns its signature names."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(uri)
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        raise WorkbenchError(f"model {uri} has no named input signature; log it with a signature")
    dtypes = {col.name: col.type.to_numpy() for col in schema.inputs}
    return LoadedModel(uri, version, model, list(schema.input_names()), dtypes)


@dataclass
class _Pending:
    instance: Instance
    received: float


@serve.deployment(name=DEPLOYMENT_CLASS, max_ongoing_requests=64, graceful_shutdown_timeout_s=30,
                  health_check_period_s=5)
@serve.ingress(api)
class FraudScorer:
    def __init__(self, settings: dict[str, Any], deployment: str, feature_service: str) -> None:
        self.settings = Settings.from_dict(settings)
        self.deployment = deployment
        self.feature_service = feature_service
        self.loaded: LoadedModel | None = None
        try:
            replica = serve.get_replica_context().replica_id.unique_id
        except Exception:  # outside Serve (unit use): one file per process is still unique
            replica = "local"
        self.log = PredictionLogWriter(log_dir(self.settings, deployment), replica)

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Load the configured model version; the old one keeps answering until the new one is ready."""
        uri, version = str(config["model_uri"]), str(config["model_version"])
        if self.loaded is None or self.loaded.uri != uri:
            loaded = await asyncio.to_thread(load_model, uri, version)
            missing = [c for c in loaded.columns if c not in REQUEST_COLUMNS]
            if missing:  # fail the replica now rather than every request later
                probe = Instance("probe", 0, 0, 0.0, datetime.now(UTC))
                await asyncio.to_thread(self._inputs, loaded, [probe])
            self.loaded = loaded
            logger.info("serving %s (version %s)", uri, version)
        self.score.set_max_batch_size(int(config.get("max_batch_size", 32)))  # type: ignore[attr-defined]
        self.score.set_batch_wait_timeout_s(float(config.get("batch_wait_timeout_s", 0.005)))  # type: ignore[attr-defined]

    def check_health(self) -> None:
        if self.loaded is None:
            raise RuntimeError("no model loaded yet")

    @api.get("/")
    async def info(self) -> dict[str, Any]:
        loaded = self.loaded
        return {"deployment": self.deployment, "model_uri": loaded and loaded.uri,
                "model_version": loaded and loaded.version, "feature_service": self.feature_service,
                "input_columns": loaded and loaded.columns, "log_file": str(self.log.path)}

    @api.post("/predict")
    async def predict(self, request: Request) -> JSONResponse:
        received = time.perf_counter()
        try:
            body = await request.json()
        except Exception:
            return JSONResponse({"error": "the body is not valid JSON", "field": None}, status_code=400)
        try:
            instances = parse_payload(body)
        except PayloadError as exc:
            return JSONResponse({"error": str(exc), "field": exc.field}, status_code=422)
        try:
            results = await asyncio.gather(*(self.score(_Pending(i, received)) for i in instances))
        except WorkbenchError as exc:
            return JSONResponse({"error": str(exc), "field": None}, status_code=503)
        version = results[0][1] if results else None
        return JSONResponse({"deployment": self.deployment, "model_version": version,
                             "predictions": [{"request_id": i.request_id, "score": score}
                                             for i, (score, _) in zip(instances, results, strict=True)]})

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def score(self, batch: list[_Pending]) -> list[tuple[float, str]]:
        loaded = self.loaded
        if loaded is None:
            raise WorkbenchError("the model is still loading; retry in a moment")
        return await asyncio.to_thread(self._score_and_log, loaded, batch)

    def _score_and_log(self, loaded: LoadedModel, batch: list[_Pending]) -> list[tuple[float, str]]:
        """Features, scores and log lines of one batch, off the event loop (one thread hop per batch)."""
        instances = [p.instance for p in batch]
        columns = self._inputs(loaded, instances)
        frame = pd.DataFrame({name: columns[name].astype(loaded.dtypes.get(name, np.float64), copy=False)
                              for name in loaded.columns})  # built once, in signature order and types
        scores = np.asarray(loaded.model.predict(frame), dtype=np.float64)
        now = time.perf_counter()
        served_at = datetime.now(UTC).isoformat()
        values = {name: [None if v != v else v for v in columns[name].tolist()] for name in loaded.columns}
        records = []
        for row, (pending, score) in enumerate(zip(batch, scores.tolist(), strict=True)):
            record: dict[str, Any] = {
                "request_id": pending.instance.request_id, "timestamp": served_at,
                "deployment": self.deployment, "model_version": loaded.version, "score": score,
                "latency_ms": round((now - pending.received) * 1000.0, 3),
                "user_id": pending.instance.user_id, "merchant_id": pending.instance.merchant_id,
                "event_timestamp": pending.instance.timestamp.isoformat(),
            }
            for name in loaded.columns:
                record[name] = values[name][row]
            records.append(record)
        self.log.append(records)  # before anyone hears the score: an answered prediction is always logged
        return [(score, loaded.version) for score in scores.tolist()]

    def _inputs(self, loaded: LoadedModel, instances: list[Instance]) -> dict[str, np.ndarray]:
        """Every model input as a numpy column: request-time values, then the feature service's."""
        columns: dict[str, np.ndarray] = {
            "amount": np.array([i.amount for i in instances], dtype=np.float64),
            "hour_of_day": np.array([i.hour_of_day for i in instances], dtype=np.int64),
            "is_night": np.array([i.is_night for i in instances], dtype=np.int64),
        }
        feast_columns = [c for c in loaded.columns if c not in REQUEST_COLUMNS]
        if feast_columns:
            from workbench.features import online_features

            features = online_features(self.settings, [i.user_id for i in instances],
                                       [i.merchant_id for i in instances], feature_service=self.feature_service)
            missing = [c for c in feast_columns if c not in features.columns]
            if missing:
                raise WorkbenchError(f"feature service {self.feature_service!r} does not provide {missing}")
            for name in feast_columns:
                columns[name] = features[name].to_numpy()
        return columns

    def __del__(self) -> None:
        self.log.close()


def build_app(args: dict[str, Any]) -> Application:
    """Application builder named in the Serve config: ``workbench.serving.app:build_app``."""
    os.environ.setdefault("MLFLOW_TRACKING_URI", str(args["settings"].get("mlflow_uri", "")))
    return FraudScorer.bind(args["settings"], args["deployment"], args["feature_service"])  # type: ignore[attr-defined]
