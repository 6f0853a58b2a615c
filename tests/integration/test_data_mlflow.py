"""A dataset version logged as an MLflow dataset input, read back through the official client."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import mlflow
import pytest

from workbench.config import Settings
from workbench.data.catalog import HASH_TAG, DatasetCatalog
from workbench.data.generator import generate_transactions, write_transactions
from workbench.data.schema import TRANSACTIONS_SCHEMA

pytestmark = pytest.mark.integration


def test_log_to_mlflow_records_the_content_hash(services: Settings, tmp_path: Path) -> None:
    catalog = DatasetCatalog(Settings(project_dir=tmp_path, mlflow_uri=services.mlflow_uri))
    data = write_transactions(generate_transactions(2_000, seed=1), tmp_path / "tx", rows_per_file=1_000)
    version = catalog.register("transactions", data, schema=TRANSACTIONS_SCHEMA)

    client = mlflow.MlflowClient(services.mlflow_uri)
    experiment_id = client.create_experiment(f"data-test-{uuid.uuid4().hex[:8]}")
    run_id = client.create_run(experiment_id).info.run_id
    assert catalog.log_to_mlflow(version, run_id=run_id) == run_id
    client.set_terminated(run_id)

    run = client.get_run(run_id)
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1
    dataset = inputs[0].dataset
    assert dataset.digest == version.version
    assert dataset.name == "transactions"
    assert json.loads(dataset.source)["uri"] == version.path
    assert json.loads(dataset.profile)["num_rows"] == 2_000
    assert json.loads(dataset.profile)["sha256"] == version.digest
    columns = {c["name"]: c["type"] for c in json.loads(dataset.schema)["mlflow_colspec"]}
    assert columns["amount"] == "double" and columns["event_timestamp"] == "datetime"
    tags = {t.key: t.value for t in inputs[0].tags}
    assert tags[HASH_TAG] == version.version and tags["mlflow.data.context"] == "training"
    assert run.data.tags[f"{HASH_TAG}.transactions"] == version.version


def test_log_to_mlflow_uses_the_active_run(services: Settings, tmp_path: Path) -> None:
    catalog = DatasetCatalog(Settings(project_dir=tmp_path, mlflow_uri=services.mlflow_uri))
    path = write_transactions(generate_transactions(300, seed=2), tmp_path / "tx.parquet")
    version = catalog.register("small", path)
    mlflow.set_tracking_uri(services.mlflow_uri)
    with mlflow.start_run() as run:
        logged = catalog.log_to_mlflow(version)
    assert logged == run.info.run_id
    inputs = mlflow.MlflowClient(services.mlflow_uri).get_run(logged).inputs.dataset_inputs
    assert [i.dataset.digest for i in inputs] == [version.version]
