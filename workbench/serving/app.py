"""The Ray Serve application that serves one registered MLflow model: what runs inside each replica.

A replica loads one MLflow model version (named in the deployment's ``user_config``, so rolling to
another version is an in-place reconfigure, not a restart), checks each request against the model's
signature (plus its feature service's keys when it has one, the only case where Feast is asked), scores
in batches (``@serve.batch``) and appends every prediction to the prediction log before answering.
Ray Serve imports this module by path (``build_app``) from the application config that
:mod:`workbench.serving.deployments` PUTs to the cluster.

HTTP API, under the deployment's route prefix ``/<name>`` (every protocol scores through the same batch
and logs each answered row exactly once):
  ``POST /predict``       ``{"instances": [...]}`` (see :mod:`workbench.serving.payload`); 200 with
                          ``{"predictions": [{"request_id", <task outputs>}], "model_version", "deployment"}``.
  ``POST /invocations``   MLflow's scoring protocol (``dataframe_split`` / ``dataframe_records``); 200 with
                          ``{"predictions": <what predict returned>}`` as ``mlflow models serve`` answers.
  ``GET  /v2/health/ready``, ``GET /v2/models/<model>`` (metadata), ``POST /v2/models/<model>/infer``:
                          the Open Inference Protocol (KServe v2) that MLServer speaks for an exported
                          ``InferenceService``; ``<model>`` is the deployment name (or the registered name).
  ``GET  /``              what is served: model URI and version, task, feature service, request fields.
Bad input is a 422 ``{"error", "field"}`` (400 for a body that is not JSON); 503 when the feature store
or the model cannot answer.
"""

# No `from __future__ import annotations` here: FastAPI must see the real `Request` type.

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve import Application

from workbench.config import Settings
from workbench.errors import InvalidInput, WorkbenchError
from workbench.serving.contract import ModelContract, Scored, contract_from_metadata, score_rows
from workbench.serving.lookup import FeatureLookup, open_lookup, request_schema
from workbench.serving.payload import (
    DEPLOYMENT_CLASS,
    PayloadError,
    RequestSchema,
    Row,
    parse_invocations,
    parse_payload,
    parse_v2,
)
from workbench.serving.prediction_log import PredictionLogWriter, log_dir, log_location, log_record, spool_dir
from workbench.serving.protocols import v2_metadata, v2_response
from workbench.serving.signature import ModelSignature, column, read_signature, to_json

logger = logging.getLogger("ray.serve")

# No /docs, /redoc or /openapi.json: an endpoint answers its protocols and says nothing else about itself
api = FastAPI(title="Workbench model endpoint", docs_url=None, redoc_url=None, openapi_url=None)


@dataclass(frozen=True)
class LoadedModel:
    """One model version ready to score: its pyfunc, signature, contract and where its inputs come from."""

    uri: str
    version: str
    model: Any
    signature: ModelSignature
    contract: ModelContract
    lookup: FeatureLookup | None
    schema: RequestSchema
    registered_name: str = ""

    @property
    def columns(self) -> list[str]:
        return self.signature.names


def load_model(settings: Settings, uri: str, version: str, feature_service: str | None,
               contract: dict[str, Any] | None = None) -> LoadedModel:
    """The pyfunc model, checked the way :func:`workbench.serving.deploy` checked it."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(uri)
    signature = read_signature(model.metadata.signature, uri)
    lookup = open_lookup(settings, feature_service, signature)
    schema = request_schema(signature, lookup, uri)
    terms = ModelContract.from_dict(contract) if contract else contract_from_metadata(model.metadata.metadata)
    name = uri[len("models:/"):].rsplit("/", 1)[0] if uri.startswith("models:/") else ""
    return LoadedModel(uri, version, model, signature, terms, lookup, schema, name)


@dataclass
class _Pending:
    row: Row
    received: float


def _error(exc: PayloadError) -> JSONResponse:
    return JSONResponse({"error": str(exc), "field": exc.field}, status_code=422)


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except Exception:
        raise _BadJSON() from None


class _BadJSON(Exception):
    pass


def _probe_value(kind: str) -> Any:
    """A value of ``kind`` for the start-up probe that checks the feature service answers."""
    return {"boolean": False, "integer": 0, "long": 0, "float": 0.0, "double": 0.0, "string": "", "key": 0,
            "datetime": datetime.now(UTC)}.get(kind)


@serve.deployment(name=DEPLOYMENT_CLASS, max_ongoing_requests=64, graceful_shutdown_timeout_s=30,
                  health_check_period_s=5)
@serve.ingress(api)
class ModelServer:
    def __init__(self, settings: dict[str, Any], deployment: str, feature_service: str | None = None) -> None:
        self.settings = Settings.from_dict(settings)
        self.deployment = deployment
        self.feature_service = feature_service or None
        self.loaded: LoadedModel | None = None
        try:
            replica = serve.get_replica_context().replica_id.unique_id
        except Exception:  # outside Serve (unit use): one file per process is still unique
            replica = "local"
        # on a cluster sharing no disk with the notebook: spooled on this node, each closed segment shipped
        in_bucket = self.settings.state_in_bucket
        self.log = PredictionLogWriter(
            spool_dir(deployment) if in_bucket else log_dir(self.settings, deployment), replica,
            segment_bytes=int(self.settings.prediction_log_segment_mb * 2**20),
            segment_age_s=min(self.settings.prediction_log_segment_age_s, self.settings.prediction_log_ship_s)
            if in_bucket else self.settings.prediction_log_segment_age_s,
            ship_to=log_location(self.settings, deployment) if in_bucket else "")

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Load the configured model version; the old one keeps answering until the new one is ready."""
        uri, version = str(config["model_uri"]), str(config["model_version"])
        service = config.get("feature_service", self.feature_service) or None
        if self.loaded is None or self.loaded.uri != uri or self.feature_service != service:
            loaded = await asyncio.to_thread(load_model, self.settings, uri, version, service,
                                             config.get("contract"))
            self.feature_service = service
            if loaded.lookup is not None:  # fail the replica now rather than every request later
                probe = Row("probe", datetime.now(UTC), {f.name: _probe_value(f.kind) for f in loaded.schema.fields})
                await asyncio.to_thread(self._frame, loaded, [probe])
            self.loaded = loaded
            logger.info("serving %s (version %s, task %s)", uri, version, loaded.contract.task or "signature")
        self.score.set_max_batch_size(int(config.get("max_batch_size", 32)))  # type: ignore[attr-defined]
        self.score.set_batch_wait_timeout_s(float(config.get("batch_wait_timeout_s", 0.005)))  # type: ignore[attr-defined]

    def check_health(self) -> None:
        if self.loaded is None:
            raise RuntimeError("no model loaded yet")

    def _ready(self) -> LoadedModel:
        if self.loaded is None:
            raise WorkbenchError("the model is still loading; retry in a moment")
        return self.loaded

    # what is served -------------------------------------------------------------------------------
    @api.get("/")
    async def info(self) -> dict[str, Any]:
        loaded = self.loaded
        return {"deployment": self.deployment, "model_uri": loaded and loaded.uri,
                "model_version": loaded and loaded.version, "feature_service": self.feature_service,
                "task": loaded and loaded.contract.to_dict(), "input_columns": loaded and loaded.columns,
                "request": loaded and loaded.schema.to_dict(), "log_file": self.log.path.name}  # never a path

    @api.get("/ping")
    async def ping(self) -> JSONResponse:
        return JSONResponse({"status": "ok" if self.loaded else "loading"}, status_code=200 if self.loaded else 503)

    # the three protocols --------------------------------------------------------------------------
    async def _rows(self, request: Request, parse: Callable[[Any, RequestSchema], Any]) -> Any:
        return parse(await _json(request), self._ready().schema)

    @api.post("/predict")
    async def predict(self, request: Request) -> JSONResponse:
        received = time.perf_counter()
        try:
            rows = await self._rows(request, parse_payload)
            results = await self._score(rows, received)
        except _BadJSON:
            return JSONResponse({"error": "the body is not valid JSON", "field": None}, status_code=400)
        except PayloadError as exc:
            return _error(exc)
        except WorkbenchError as exc:
            return JSONResponse({"error": str(exc), "field": None}, status_code=503)
        version = results[0][1] if results else None
        return JSONResponse({"deployment": self.deployment, "model_version": version,
                             "predictions": [{"request_id": row.request_id, **scored.outputs}
                                             for row, (scored, _) in zip(rows, results, strict=True)]})

    @api.post("/invocations")
    async def invocations(self, request: Request) -> JSONResponse:
        received = time.perf_counter()
        try:
            rows = await self._rows(request, parse_invocations)
            results = await self._score(rows, received)
        except _BadJSON:
            return JSONResponse({"error_code": "MALFORMED_REQUEST", "error": "the body is not valid JSON",
                                 "message": "the body is not valid JSON", "field": None}, status_code=400)
        except PayloadError as exc:
            return JSONResponse({"error_code": "BAD_REQUEST", "message": str(exc), "error": str(exc),
                                 "field": exc.field}, status_code=422)
        except WorkbenchError as exc:
            return JSONResponse({"error_code": "SERVICE_UNAVAILABLE", "message": str(exc), "error": str(exc),
                                 "field": None}, status_code=503)
        version = results[0][1] if results else None
        return JSONResponse({"predictions": [scored.raw for scored, _ in results]},
                            headers={"x-model-version": str(version), "x-request-ids": ",".join(
                                r.request_id for r in rows)[:4000]})

    @api.get("/v2")
    async def v2_server(self) -> dict[str, Any]:
        return {"name": "workbench", "version": "2", "extensions": []}

    @api.get("/v2/health/live")
    async def v2_live(self) -> dict[str, Any]:
        return {"live": True}

    @api.get("/v2/health/ready")
    async def v2_ready(self) -> JSONResponse:
        return JSONResponse({"ready": self.loaded is not None}, status_code=200 if self.loaded else 503)

    def _v2_model(self, model: str) -> LoadedModel | JSONResponse:
        loaded = self.loaded
        if loaded is None:
            return JSONResponse({"error": "the model is still loading; retry in a moment"}, status_code=503)
        if model not in (self.deployment, loaded.registered_name):
            return JSONResponse({"error": f"model {model!r} not found; this endpoint serves {self.deployment!r}"},
                                status_code=404)
        return loaded

    @api.get("/v2/models/{model}")
    async def v2_model_metadata(self, model: str) -> JSONResponse:
        loaded = self._v2_model(model)
        if isinstance(loaded, JSONResponse):
            return loaded
        return JSONResponse(v2_metadata(self.deployment, loaded.version, loaded.signature, loaded.schema))

    @api.get("/v2/models/{model}/ready")
    async def v2_model_ready(self, model: str) -> JSONResponse:
        loaded = self._v2_model(model)
        if isinstance(loaded, JSONResponse):
            return loaded
        return JSONResponse({"name": self.deployment, "ready": True})

    @api.post("/v2/models/{model}/infer")
    async def v2_infer(self, model: str, request: Request) -> JSONResponse:
        received = time.perf_counter()
        loaded = self._v2_model(model)
        if isinstance(loaded, JSONResponse):
            return loaded
        try:
            rows, request_id = await self._rows(request, parse_v2)
            results = await self._score(rows, received)
        except _BadJSON:
            return JSONResponse({"error": "the body is not valid JSON", "field": None}, status_code=400)
        except PayloadError as exc:
            return _error(exc)
        except WorkbenchError as exc:
            return JSONResponse({"error": str(exc), "field": None}, status_code=503)
        version = results[0][1] if results else loaded.version
        return JSONResponse(v2_response(self.deployment, version, request_id, [s.raw for s, _ in results],
                                        loaded.signature, [r.request_id for r in rows]))

    # scoring --------------------------------------------------------------------------------------
    async def _score(self, rows: list[Row], received: float) -> list[tuple[Scored, str]]:
        return list(await asyncio.gather(*(self.score(_Pending(row, received)) for row in rows)))

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def score(self, batch: list[_Pending]) -> list[tuple[Scored, str]]:
        return await asyncio.to_thread(self._score_and_log, self._ready(), batch)

    def _score_and_log(self, loaded: LoadedModel, batch: list[_Pending]) -> list[tuple[Scored, str]]:
        """Inputs, predictions and log lines of one batch, off the event loop (one thread hop per batch)."""
        rows = [p.row for p in batch]
        frame, looked_up = self._frame(loaded, rows)
        try:
            raw = loaded.model.predict(frame)
        except Exception as exc:  # inputs were checked: a failure here is the model's, not the client's
            raise WorkbenchError(f"model {loaded.uri} failed to predict: {type(exc).__name__}: {exc}") from exc
        scored = score_rows(loaded.contract, raw, len(rows))
        now = time.perf_counter()
        served_at = datetime.now(UTC).isoformat()
        inputs = {name: [to_json(v) for v in values] for name, values in
                  {**{f.name: [r.values.get(f.name) for r in rows] for f in loaded.schema.fields},
                   **{name: list(frame[name]) for name in loaded.columns}, **looked_up}.items()}
        records = [log_record(request_id=pending.row.request_id, timestamp=served_at, deployment=self.deployment,
                              model_version=loaded.version, task=loaded.contract.task, outputs=answer.outputs,
                              latency_ms=round((now - pending.received) * 1000.0, 3),
                              event_timestamp=pending.row.timestamp.isoformat(),
                              inputs={name: values[i] for name, values in inputs.items()})
                   for i, (pending, answer) in enumerate(zip(batch, scored, strict=True))]
        self.log.append(records)  # before anyone hears the answer: an answered prediction is always logged
        return [(answer, loaded.version) for answer in scored]

    def _frame(self, loaded: LoadedModel, rows: list[Row]) -> tuple[pd.DataFrame, dict[str, list[Any]]]:
        """The model's input frame in signature order and types: request values, derived, then looked up."""
        for row in rows:  # a roll between parsing and scoring may have changed what a row must hold
            if any(f.name not in row.values for f in loaded.schema.fields):
                raise WorkbenchError("the deployment switched model versions while this request waited; retry it")
        looked_up: dict[str, Any] = {}
        lookup = loaded.lookup
        if lookup is not None and lookup.provides:
            looked_up = lookup.lookup(rows)
        data: dict[str, Any] = {}
        for field in loaded.signature.inputs:
            name = field.name
            if name in looked_up:
                data[name] = column(field, looked_up[name])
            elif lookup is not None and name in lookup.derived and name not in loaded.schema.names:
                data[name] = column(field, lookup.derive(name, [r.timestamp for r in rows]))
            else:
                data[name] = column(field, [r.values[name] for r in rows])
        return pd.DataFrame(data), {k: list(v) for k, v in looked_up.items()}

    def __del__(self) -> None:
        self.log.close()


FraudScorer = ModelServer
"""The name the deployment had when it served only the fraud model."""


def build_app(args: dict[str, Any]) -> Application:
    """Application builder named in the Serve config: ``workbench.serving.app:build_app``."""
    os.environ.setdefault("MLFLOW_TRACKING_URI", str(args["settings"].get("mlflow_uri", "")))
    if not isinstance(args.get("deployment"), str):
        raise InvalidInput("the application args need the deployment name")
    return ModelServer.bind(args["settings"], args["deployment"], args.get("feature_service"))  # type: ignore[attr-defined]
