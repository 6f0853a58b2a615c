"""MLflow bookkeeping of a training run: per-epoch metrics, params and the tags that carry lineage.

Everything goes through ``MlflowClient`` on an explicit tracking URI (never the fluent API's global
active run), because the same run is written from the notebook, the job driver and a Train worker.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

TAG_JOB_ID = "workbench.job_id"
TAG_JOB_IDS = "workbench.job_ids"
TAG_SPEC_PATH = "workbench.spec_path"
TAG_KIND = "workbench.kind"
TAG_RAN_ON = "workbench.ran_on"
TAG_GPU_FALLBACK = "workbench.gpu_fallback"
TAG_RESUMED_FROM = "workbench.resumed_from_epoch"
TAG_DATASET_VERSION = "workbench.dataset_version"
TAG_FEATURE_SERVICE = "workbench.feature_service"
TAG_BEST_CHILD = "workbench.best_child_run_id"
TAG_PARENT = "mlflow.parentRunId"


def tracking_client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri)


def log_epoch_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float], epoch: int) -> None:
    """One batch request with every metric of an epoch at ``step=epoch`` (NaN values are skipped)."""
    now = int(time.time() * 1000)
    batch = [Metric(key, float(value), now, epoch) for key, value in metrics.items()
             if value is not None and not math.isnan(float(value))]
    client.log_batch(run_id, metrics=batch)


def logged_steps(client: MlflowClient, run_id: str, key: str = "loss") -> list[int]:
    """The steps at which ``key`` was logged, in logging order (duplicates kept, so they can be caught)."""
    return [m.step for m in client.get_metric_history(run_id, key)]


def log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    """Log params once; values are JSON for lists so they read back unambiguously."""
    items = [Param(k, json.dumps(v) if isinstance(v, list | dict) else str(v)) for k, v in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start:start + 100])


def set_tags(client: MlflowClient, run_id: str, tags: dict[str, str]) -> None:
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
