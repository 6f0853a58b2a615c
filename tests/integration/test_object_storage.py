"""``storage = "s3"``: MLflow's artifacts and dataset versions in a real S3 bucket (SeaweedFS).

The test runs its own project (own state dir, MLflow server and SeaweedFS on ports of their own) beside the
session's services, and trains on the session's Ray head, which holds no S3 key at all: a Ray job logs an
XGBoost model through the MLflow server, the model's files land in the bucket (listed with the bucket's own
API, byte-equal to what the server hands out), nothing lands under the state dir, and this process, without
any S3 key in its environment, loads the model back and checks it scores the frame. A dataset snapshot goes to
the bucket and is paged, sorted, filtered, profiled and verified from there after the local file is gone (this
process reads the bucket with the settings' keys, as a notebook does); a folder already in the bucket registers
by its URI. Wrong keys are refused with a message that names the settings and not the secret; `down` stops the
store and frees its ports.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import TEST_PORTS
from sklearn.metrics import roc_auc_score

from workbench.config import OBJECT_STORE_PORTS, Settings
from workbench.data import DatasetCatalog, profile_dataset, read_page
from workbench.errors import ConfigError, NotFound
from workbench.services import ServiceManager
from workbench.services.processes import ProcessRecord, port_is_free
from workbench.storage import copy_into_bucket, ensure_bucket, list_objects, s3_filesystem
from workbench.training import TrainingSpec, submit_training_job

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

S3_PORT = 25600 + TEST_PORTS["mlflow_port"] - 25000  # 25600-25607, shifted with the suite's port offset
MLFLOW_PORT = S3_PORT + OBJECT_STORE_PORTS + 2
AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL",
            "WORKBENCH_S3_ACCESS_KEY_ID", "WORKBENCH_S3_SECRET_ACCESS_KEY")


@pytest.fixture(scope="module")
def stored(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A project with ``storage = "s3"``: its SeaweedFS and MLflow server up, on the session's Ray head."""
    saved = {v: os.environ.pop(v) for v in AWS_VARS if v in os.environ}  # this process holds no S3 key
    root = tmp_path_factory.mktemp("s3-project")
    settings = services.replace(project_dir=root, state_dir=root / ".workbench", storage="s3", s3_port=S3_PORT,
                                mlflow_port=MLFLOW_PORT, s3_prefix=f"t-{uuid.uuid4().hex[:8]}")
    manager = ServiceManager(settings)
    try:
        manager.up(("objects", "mlflow"))
        yield settings
    finally:
        manager.down(("objects", "mlflow"))
        os.environ.update(saved)


def test_up_runs_the_store_with_its_bucket_and_mlflow_in_front_of_it(stored: Settings) -> None:
    status = {s.name: s for s in ServiceManager(stored).status()}
    assert status["objects"].healthy and status["objects"].managed and status["objects"].pid
    assert status["objects"].url == f"http://127.0.0.1:{S3_PORT}"
    record = ProcessRecord.load(stored.services_dir, "mlflow")
    assert record is not None
    command = record.command
    assert command[command.index("--artifacts-destination") + 1] == f"s3://workbench/{stored.s3_prefix}/mlflow"
    assert "--default-artifact-root" not in command
    key, secret = stored.s3_keys()
    for name in ("objects", "mlflow"):  # the keys travel in the environment, never in a record or a log
        record_text = (stored.services_dir / f"{name}.json").read_text()
        log_text = (stored.services_dir / f"{name}.log").read_text()
        assert secret not in record_text and key not in record_text
        assert secret not in log_text  # (SeaweedFS logs the key's id, as AWS shows it: the secret stays out)
    assert not (stored.mlflow_dir / "artifacts").exists()


def test_a_ray_job_logs_its_model_into_the_bucket_and_it_comes_back_through_mlflow(stored: Settings) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x1": rng.normal(size=600), "x2": rng.normal(size=600)})
    frame["label"] = (frame.x1 + 0.5 * frame.x2 + rng.normal(scale=0.5, size=600) > 0).astype(int)
    path = stored.project_dir / "frame.parquet"
    frame.to_parquet(path)
    spec = TrainingSpec(frame_path=str(path), feature_columns=["x1", "x2"], label_column="label", task="binary",
                        trainer="xgboost", n_estimators=12, max_depth=2, early_stopping_rounds=0,
                        cpus_per_worker=0.5, experiment="wb-s3-storage", seed=4,
                        checkpoint_dir=str(stored.state_dir / "checkpoints"))
    job = submit_training_job(stored, spec)
    assert job.wait(timeout_s=900, progress=False) == "SUCCEEDED", job.logs()[-3000:]

    run = mlflow.tracking.MlflowClient(stored.mlflow_uri).get_run(job.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # clients see the server's URI, not the bucket
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(stored.mlflow_uri)
    try:
        model_uri = run.data.tags["workbench.model_uri"]
        info = mlflow.models.get_model_info(model_uri)
        model = mlflow.pyfunc.load_model(model_uri)
        through_mlflow = (Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri)) / "MLmodel").read_bytes()
    finally:
        mlflow.set_tracking_uri(previous)

    objects = list_objects(stored, f"{stored.mlflow_artifacts_uri}/")
    mine = [o for o in objects if info.model_id in o.uri]
    names = {o.uri.rsplit("/", 1)[-1] for o in mine}
    assert {"MLmodel", "input_example.json"} <= names, sorted(o.uri for o in objects)
    assert all(o.size > 0 for o in mine)
    mlmodel = next(o for o in mine if o.uri.endswith("/MLmodel"))
    with s3_filesystem(stored).open_input_stream(mlmodel.uri[len("s3://"):]) as fh:
        assert fh.read() == through_mlflow  # what the server hands out is what the bucket holds
    assert list(stored.state_dir.rglob("MLmodel")) == []  # nothing of the model under the state dir
    assert not (stored.project_dir / "mlartifacts").exists() and not (stored.state_dir / "mlartifacts").exists()

    served = np.asarray(model.predict(frame[["x1", "x2"]]), dtype=float)
    assert model.metadata.metadata["workbench"]["feature_columns"] == ["x1", "x2"]
    assert served.shape == (600,) and np.all((served >= 0) & (served <= 1))
    assert roc_auc_score(frame["label"], served) > 0.85  # a model of this frame, not an empty or wrong one


def test_a_dataset_snapshot_lives_in_the_bucket_and_pages_profiles_and_verifies_from_there(
        stored: Settings) -> None:
    rng = np.random.default_rng(8)
    n = 5_000
    frame = pd.DataFrame({"amount value": rng.gamma(2.0, 30.0, n).round(2), "kind": rng.choice(["a", "b", None], n),
                          "label": rng.integers(0, 2, n)})
    source = stored.project_dir / "local-data" / "part.parquet"
    source.parent.mkdir()
    frame.to_parquet(source, row_group_size=1_000)
    catalog = DatasetCatalog(stored)
    version = catalog.register("wb-s3-data", source, snapshot=True, task={"label": "label", "kind": "binary"})
    assert version.path.startswith(f"{stored.object_store_uri}/datasets/wb-s3-data/")
    assert version.path.endswith("/part.parquet") and version.n_rows == n
    uploaded = {o.uri: o.size for o in list_objects(stored, version.path.rsplit("/", 1)[0])}
    assert uploaded[version.path] == source.stat().st_size and any(u.endswith("/_workbench_complete") for u in uploaded)
    source.unlink()  # from here on, the bucket is the only copy

    page = read_page(version, offset=1_990, limit=20)  # across a row-group boundary
    pd.testing.assert_frame_equal(page.rows.reset_index(drop=True), frame.iloc[1_990:2_010].reset_index(drop=True),
                                  check_dtype=False)
    top = read_page(version, offset=0, limit=5, sort_by="amount value", descending=True)
    assert top.rows["amount value"].tolist() == sorted(frame["amount value"], reverse=True)[:5]
    only_b = read_page(version, offset=0, limit=10, filters=[("kind", "==", "b")])
    assert only_b.total_rows == int((frame["kind"] == "b").sum())
    profile = profile_dataset(version)
    assert profile.n_rows == n and profile["kind"].nulls == int(frame["kind"].isna().sum())
    assert profile["amount value"].max == pytest.approx(frame["amount value"].max())
    assert catalog.verify(version)  # the bucket's bytes hash to the registered digest
    again = DatasetCatalog(stored).register("wb-s3-data", version.path)
    assert again.version == version.version  # the same content, wherever it is read from


def test_a_folder_in_the_bucket_registers_by_its_s3_uri(stored: Settings) -> None:
    rng = np.random.default_rng(9)
    parts = [pd.DataFrame({"x": rng.normal(size=300), "y": rng.integers(0, 5, 300)}) for _ in range(2)]
    folder = stored.project_dir / "two-parts"
    folder.mkdir()
    for i, part in enumerate(parts):
        part.to_parquet(folder / f"part-{i}.parquet")
    uri = f"{stored.object_store_uri}/incoming/two-parts"
    copy_into_bucket(stored, [(str(folder / f"part-{i}.parquet"), f"part-{i}.parquet") for i in range(2)], uri)
    version = DatasetCatalog(stored).register("wb-s3-folder", uri)
    assert version.path == uri and version.n_rows == 600 and version.files == ["part-0.parquet", "part-1.parquet"]
    both = pd.concat(parts, ignore_index=True)
    page = read_page(version, offset=290, limit=20)  # the last rows of one object, the first of the next
    pd.testing.assert_frame_equal(page.rows.reset_index(drop=True), both.iloc[290:310].reset_index(drop=True))
    with pytest.raises(NotFound, match="holds no Parquet or CSV"):
        DatasetCatalog(stored).register("wb-s3-none", f"{stored.object_store_uri}/incoming/nothing-here")


def test_the_stages_read_a_dataset_and_a_frame_by_their_s3_uri(stored: Settings) -> None:
    """What 02 (features), 05 (smoke rows) and 06 (the reference sample) read in the cluster profile: the
    snapshot's URI, through the bucket, equal to the rows written; a missing object is NotFound."""
    from workbench.data import Task
    from workbench.features.plain import dataset_frame
    from workbench.features.tables import connect
    from workbench.monitoring.deployment import read_reference_frame
    from workbench.storage import read_frame

    rng = np.random.default_rng(10)
    parts = [pd.DataFrame({"x": rng.normal(size=250), "y": rng.integers(0, 5, 250)}) for _ in range(2)]
    folder = stored.project_dir / "stage-parts"
    folder.mkdir()
    for i, part in enumerate(parts):
        part.to_parquet(folder / f"part-{i}.parquet")
    uri = f"{stored.object_store_uri}/incoming/stage-parts"
    copy_into_bucket(stored, [(str(folder / f"part-{i}.parquet"), f"part-{i}.parquet") for i in range(2)], uri)
    both = pd.concat(parts, ignore_index=True)

    read = read_frame(stored, uri)  # the completion marker is not a part
    pd.testing.assert_frame_equal(read.sort_values(["x"]).reset_index(drop=True),
                                  both.sort_values(["x"]).reset_index(drop=True))
    assert read_frame(stored, uri, columns=["y"]).columns.tolist() == ["y"]
    plain = dataset_frame(uri, Task(label="y", kind="regression"))
    assert sorted(plain["x"]) == sorted(both["x"]) and plain.columns.tolist()[-1] == "y"
    con, types, _ = connect(uri, None)
    assert con.execute("SELECT count(*), sum(y) FROM src").fetchone() == (500, int(both["y"].sum()))
    assert set(types) >= {"x", "y"}
    sample = read_reference_frame(uri, ["x", "missing"], rows=100)
    assert sample.columns.tolist() == ["x"] and len(sample) == 100 and set(sample["x"]) <= set(both["x"])
    pd.testing.assert_frame_equal(sample, read_reference_frame(uri, ["x"], rows=100))  # reproducible
    with pytest.raises(NotFound):
        read_reference_frame(f"{uri}-gone", ["x"])
    with pytest.raises(NotFound):
        dataset_frame(f"{uri}-gone", Task(label="y", kind="regression"))


def test_wrong_keys_are_refused_naming_the_settings_not_the_secret(stored: Settings) -> None:
    wrong = stored.replace(s3_access_key_id=stored.s3_keys()[0], s3_secret_access_key="not-the-secret-1234")
    with pytest.raises(ConfigError, match="WORKBENCH_S3_SECRET_ACCESS_KEY") as info:
        ensure_bucket(wrong, timeout_s=30)
    assert "not-the-secret-1234" not in str(info.value)


def test_a_shared_bucket_without_keys_is_a_clear_error(services: Settings) -> None:
    shared = services.replace(storage="s3", s3_endpoint_url="http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="needs its keys"):
        shared.s3_keys()
    assert not shared.manages_object_store


def test_down_stops_the_store_and_frees_its_ports(stored: Settings) -> None:
    """Last in this module: it stops the module's store (the fixture's own `down` then finds nothing to stop)."""
    manager = ServiceManager(stored)
    assert {s.name: s.healthy for s in manager.status()}["objects"]
    assert manager.down(("objects",)) == ["objects"]
    assert all(port_is_free("127.0.0.1", p) for p in range(S3_PORT, S3_PORT + OBJECT_STORE_PORTS))
    assert not {s.name: s.healthy for s in manager.status()}["objects"]
