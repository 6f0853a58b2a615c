"""Which engines the local profile runs for which settings, and how they are started, without starting them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.errors import ConfigError
from workbench.services import SERVICES, ServiceManager
from workbench.services import engines as engines_module
from workbench.services.engines import engines


def test_the_object_store_runs_only_for_s3_storage_without_an_endpoint(tmp_path: Path) -> None:
    assert SERVICES == ("objects", "mlflow", "ray")  # start order: the bucket before MLflow, which uses it
    local = ServiceManager(Settings(project_dir=tmp_path))
    assert [e.name for e in local.engines()] == ["mlflow", "ray"]
    own = ServiceManager(Settings(project_dir=tmp_path, storage="s3"))
    assert [e.name for e in own.engines()] == ["objects", "mlflow", "ray"]
    shared = Settings(project_dir=tmp_path, storage="s3", s3_endpoint_url="http://s3.lab:9000",
                      s3_access_key_id="k", s3_secret_access_key="s")
    objects = engines()["objects"]
    assert objects.wanted(shared) and not objects.started_here(shared)  # checked by `up`, never started


def test_seaweedfs_takes_eight_ports_on_loopback_and_no_fixed_one(tmp_path: Path) -> None:
    s = Settings(project_dir=tmp_path, storage="s3", s3_port=24100)
    objects = engines()["objects"]
    assert sorted(objects.ports(s)) == list(range(24100, 24108)) and objects.ports(s)[-1] == 24100
    command = objects.command(s)
    assert "-ip.bind=127.0.0.1" in command and f"-dir={s.objects_dir}" in command
    # its Iceberg (8181) and Lance (9101) listeners would clash between projects and with HAProxy's metrics
    assert "-s3.port.iceberg=0" in command and "-s3.port.lance=0" in command
    ports = {int(a.split("=")[1]) for a in command if a.split("=")[0].endswith(("port", "port.grpc"))
             and not a.startswith(("-s3.port.iceberg", "-s3.port.lance"))}
    assert ports == set(range(24100, 24108))
    key, secret = s.s3_keys()
    assert not any(secret in a or key in a for a in command)  # keys in the environment only
    assert objects.env(s) == {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}


def test_mlflow_serves_artifacts_from_the_bucket_with_s3_storage(tmp_path: Path) -> None:
    mlflow = engines()["mlflow"]
    local = mlflow.command(Settings(project_dir=tmp_path))
    assert local[local.index("--default-artifact-root") + 1].endswith("/.workbench/mlflow/artifacts")
    s3 = Settings(project_dir=tmp_path, storage="s3", s3_bucket="team-bucket", s3_prefix="wb")
    command = mlflow.command(s3)
    assert command[command.index("--artifacts-destination") + 1] == "s3://team-bucket/wb/mlflow"
    assert "--serve-artifacts" in command and "--default-artifact-root" not in command
    env = mlflow.env(s3)
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://127.0.0.1:8333" and env["AWS_SECRET_ACCESS_KEY"] == s3.s3_keys()[1]
    assert "AWS_SECRET_ACCESS_KEY" not in mlflow.env(Settings(project_dir=tmp_path))


def test_a_missing_seaweedfs_or_boto3_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake for a fault we cannot cause otherwise in this venv (both are installed): neither is found."""
    s = Settings(project_dir=tmp_path, storage="s3")
    monkeypatch.setattr(engines_module, "bin_path", lambda name: str(tmp_path / "no-such-bin" / name))
    with pytest.raises(ConfigError, match=r"pip install 'workbench\[storage\]'"):
        engines()["objects"].command(s)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "boto3" else real(name, *a))
    with pytest.raises(ConfigError, match="boto3"):
        engines()["mlflow"].command(s)
    assert "--default-artifact-root" in engines()["mlflow"].command(Settings(project_dir=tmp_path))  # local: no boto3
