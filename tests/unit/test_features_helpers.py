"""The parts of the feature stage that need no Feast: generated config, entity frames, chunks, hashes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from workbench.config import Settings
from workbench.errors import ConfigError, InvalidInput, NotFound, ServiceUnavailable, WorkbenchError
from workbench.features import repo
from workbench.features.repo import feature_store, feature_store_yaml
from workbench.features.training import _chunks, _feast_keys, entity_frame, frame_version, save_training_frame


def test_default_yaml_is_local_sqlite_file_store(tmp_path: Path) -> None:
    settings = Settings(project_dir=tmp_path)
    config = yaml.safe_load(feature_store_yaml(settings))
    assert config["provider"] == "local" and config["offline_store"] == {"type": "file"}
    assert config["online_store"] == {"type": "sqlite", "path": str(settings.feast_dir / "online.db")}
    assert config["registry"]["registry_type"] == "file"
    assert config["registry"]["path"] == str(settings.feast_dir / "registry.db")


def test_redis_and_postgres_online_stores_come_from_settings_without_their_secrets(tmp_path: Path) -> None:
    redis = Settings(project_dir=tmp_path, feast_online_store="redis",
                     feast_online_store_connection="redis.feast.svc:6379,db=1,password=r3dis")
    text = feature_store_yaml(redis)
    assert yaml.safe_load(text)["online_store"] == {
        "type": "redis", "connection_string": "${WORKBENCH_FEAST_REDIS_CONNECTION}"}
    assert "r3dis" not in text and "redis.feast.svc" not in text
    pg = Settings(project_dir=tmp_path, feast_online_store="postgres",
                  feast_online_store_connection="postgresql://feast:s%40cret@pg.svc:6543/features?sslmode=disable")
    text = feature_store_yaml(pg)
    assert yaml.safe_load(text)["online_store"] == {
        "type": "postgres", "host": "pg.svc", "port": 6543, "database": "features", "db_schema": "public",
        "user": "feast", "password": "${WORKBENCH_FEAST_POSTGRES_PASSWORD}", "sslmode": "disable"}
    assert "s@cret" not in text and "s%40cret" not in text


@pytest.mark.parametrize("store, connection, message", [
    ("redis", "", "needs feast_online_store_connection"),
    ("postgres", "pg.svc:5432", "postgresql://"),
    ("cassandra", "", "sqlite, redis or postgres"),
])
def test_bad_online_store_settings_are_config_errors(tmp_path: Path, store: str, connection: str,
                                                     message: str) -> None:
    settings = Settings(project_dir=tmp_path, feast_online_store=store, feast_online_store_connection=connection)
    with pytest.raises(ConfigError, match=message):
        feature_store_yaml(settings)


def test_a_missing_online_store_client_is_named_before_any_work(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repo.importlib.util, "find_spec", lambda name: None)
    settings = Settings(project_dir=tmp_path, feast_online_store="redis", feast_online_store_connection="r:6379")
    with pytest.raises(ConfigError, match=r"pip install 'feast\[redis\]==0.67.0'"):
        repo.apply_repo(settings, transactions=tmp_path / "never-read.parquet")
    assert not settings.feast_dir.exists()


def test_remote_store_connection_failures_become_service_unavailable(tmp_path: Path) -> None:
    class RedisConnectionError(Exception):  # like redis.exceptions.ConnectionError: no builtin base
        pass

    redis = Settings(project_dir=tmp_path, feast_online_store="redis", feast_online_store_connection="r:6379")
    error = repo.online_store_error(redis, RedisConnectionError("refused"), "materializing")
    assert isinstance(error, ServiceUnavailable) and "'r:6379' does not answer while materializing" in str(error)
    local = repo.online_store_error(Settings(project_dir=tmp_path), ValueError("bad"), "applying")
    assert type(local) is WorkbenchError and "bad" in str(local)


def test_a_cluster_without_the_notebooks_disk_needs_an_online_store_it_reaches(tmp_path: Path) -> None:
    from workbench.features.shared import check_online_store, publish

    cluster = Settings(project_dir=tmp_path, profile="cluster", storage="s3", s3_endpoint_url="http://s3.team:8333",
                       mlflow_uri="http://mlflow.team:5000", ray_address="http://ray.team:8265")
    with pytest.raises(ConfigError, match="feast_online_store = 'redis'"):
        check_online_store(cluster)
    check_online_store(cluster.replace(feast_online_store="redis", feast_online_store_connection="redis.team:6379"))
    check_online_store(Settings(project_dir=tmp_path))  # the local profile's SQLite file is the notebook's own
    check_online_store(cluster.replace(storage="local"))  # a cluster that shares the disk reads it there
    # publishing is for a cluster without the notebook's disk only: elsewhere the bucket is never asked
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "declaration.json").write_text("{}")
    assert publish(Settings(project_dir=tmp_path), "p", tmp_path / "p", ["declaration.json"]) == []


def test_store_before_apply_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"apply_repo\(settings\)"):
        feature_store(Settings(project_dir=tmp_path))


def test_entity_frame_adds_request_time_columns_and_floors_to_microseconds() -> None:
    frame = pd.DataFrame({"user_id": [1, 2], "merchant_id": [3, 4], "is_fraud": [0, 1],
                          "event_timestamp": pd.to_datetime(["2024-01-01 05:59:59.0000019",
                                                             "2024-01-01 23:00:00.0"])})  # naive: UTC
    entities = entity_frame(frame)
    assert entities["hour_of_day"].tolist() == [5, 23] and entities["is_night"].tolist() == [1, 0]
    assert entities["event_timestamp"].iloc[0] == pd.Timestamp("2024-01-01 05:59:59.000001", tz="UTC")
    kept = entity_frame(frame.assign(is_night=[False, True]))
    assert kept["is_night"].tolist() == [False, True]  # the dataset's own column wins
    with pytest.raises(InvalidInput, match=r"lacks columns \['is_fraud'\].*label=None"):
        entity_frame(frame.drop(columns="is_fraud"))
    assert "is_fraud" not in entity_frame(frame.drop(columns="is_fraud"), label=None).columns
    with pytest.raises(InvalidInput, match="integer ids"):
        entity_frame(frame.assign(user_id=[1.0, None]))


def test_feast_keys_are_distinct_and_break_timestamp_ties_below_a_microsecond() -> None:
    t = pd.Timestamp("2024-01-01", tz="UTC")
    entities = pd.DataFrame({"user_id": [1, 1, 1, 2], "merchant_id": [5, 5, 6, 5],
                             "event_timestamp": [t, t, t, t + pd.Timedelta(seconds=1)]})
    keys = _feast_keys(entities)
    assert len(keys) == 3  # the exact duplicate is sent once
    assert keys["event_timestamp"].is_unique
    assert (keys["event_timestamp"].dt.floor("us") == keys["event_timestamp"].dt.floor("s")).all()
    assert keys["_workbench_key_row"].tolist() == [0, 1, 2]


def test_chunks_bound_the_merge_size() -> None:
    cost = np.array([3, 3, 3, 10, 1, 1])
    chunks = _chunks(cost, 6)
    assert [c.tolist() for c in chunks] == [[0, 1], [2], [3], [4, 5]]  # 10 > 6 gets a chunk alone
    assert len(_chunks(cost, 10**9)) == 1
    with pytest.raises(InvalidInput):
        _chunks(cost, 0)


def test_saved_frames_are_named_by_content(tmp_path: Path) -> None:
    settings = Settings(project_dir=tmp_path)
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, None], "is_fraud": [0, 1]})
    path, version = save_training_frame(frame, settings)
    assert path == settings.feast_dir / "frames" / f"frame-{version}.parquet" and len(version) == 16
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)
    assert save_training_frame(frame.copy(), settings) == (path, version)
    assert frame_version(frame.assign(b=[0.5, 0.0])) != version
    assert frame_version(frame.astype({"a": "float64"})) != version
    with pytest.raises(InvalidInput):
        save_training_frame(frame.iloc[:0], settings)
