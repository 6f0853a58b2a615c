"""Secrets stay secret: feature_store.yaml holds ${VAR} references that Feast's own loader resolves, MLflow
URIs lose their credentials, and the secrets travel only as environment variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.features import repo
from workbench.features.repo import feature_store_yaml
from workbench.secrets import redact, redact_connection, split_credentials, strip_credentials

MLFLOW_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Whatever these tests export into os.environ is undone afterwards (setenv records the old state)."""
    for var in (*MLFLOW_VARS, repo.REDIS_CONNECTION_ENV, repo.POSTGRES_PASSWORD_ENV):
        monkeypatch.setenv(var, "placeholder")
        monkeypatch.delenv(var)
    return monkeypatch


@pytest.mark.parametrize("uri, clean, user, password", [
    ("http://alice:p%40ss%3Aw@mlflow.svc:5000/path?x=1", "http://mlflow.svc:5000/path?x=1", "alice", "p@ss:w"),
    ("https://token@mlflow.example.com", "https://mlflow.example.com", "token", ""),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000", "", ""),
    ("databricks", "databricks", "", ""),
    ("file:///tmp/mlruns", "file:///tmp/mlruns", "", ""),
])
def test_split_credentials(uri: str, clean: str, user: str, password: str) -> None:
    assert split_credentials(uri) == (clean, user, password)
    assert strip_credentials(uri) == clean


def test_connections_and_messages_are_redacted() -> None:
    assert redact_connection("redis.svc:6379,db=1,password=hunter2,ssl=true") == \
        "redis.svc:6379,db=1,password=***,ssl=true"
    assert redact_connection("postgresql://feast:hunter2@pg:5432/db") == "postgresql://pg:5432/db"
    assert redact_connection("localhost:6379") == "localhost:6379"
    assert redact("could not connect with hunter2 to x", ["hunter2", ""]) == "could not connect with *** to x"


def test_mlflow_credentials_leave_the_uri_and_reach_mlflow_through_the_environment(
        clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = Settings(project_dir=tmp_path, mlflow_uri="http://bob:c4n%2Fary@mlflow.svc:5000")
    assert settings.mlflow_uri == "http://mlflow.svc:5000"
    assert (settings.mlflow_tracking_username, settings.mlflow_tracking_password) == ("bob", "c4n/ary")
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "bob" and os.environ["MLFLOW_TRACKING_PASSWORD"] == "c4n/ary"
    assert "c4n/ary" not in str(settings.to_dict(secrets=False)) and "c4n/ary" not in str(settings.engine_env())
    env = settings.secret_env()
    assert env["WORKBENCH_MLFLOW_TRACKING_PASSWORD"] == "c4n/ary" and env["MLFLOW_TRACKING_PASSWORD"] == "c4n/ary"
    # a replica rebuilds them from the environment it inherits, not from the config it is given
    rebuilt = Settings.from_dict(settings.to_dict(secrets=False), env=env)
    assert rebuilt.mlflow_tracking_password == "c4n/ary" and rebuilt.mlflow_uri == "http://mlflow.svc:5000"
    assert settings.replace(experiment="x").mlflow_tracking_password == "c4n/ary"
    database = "postgresql://ml:pw@db.svc/mlflow"  # a database store needs them in its URI: left alone
    assert Settings(project_dir=tmp_path, mlflow_uri=database).mlflow_uri == database


def test_the_mlflow_client_authenticates_with_the_moved_credentials(clean_env: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    from mlflow.utils.credentials import get_default_host_creds

    settings = Settings(project_dir=tmp_path, mlflow_uri="http://carol:s3cr3t@mlflow.svc:5000")
    creds = get_default_host_creds(settings.mlflow_uri)
    assert (creds.host, creds.username, creds.password) == ("http://mlflow.svc:5000", "carol", "s3cr3t")


def test_feast_loads_the_redis_reference_with_the_real_value(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("redis")  # Feast's Redis config class imports the client (feast[redis])
    from feast.repo_config import load_repo_config

    connection = "redis.svc:6379,db=2,password=p'a#s: s$x"  # quote, comment, colon and dollar survive
    settings = Settings(project_dir=tmp_path, feast_online_store="redis", feast_online_store_connection=connection)
    path = tmp_path / "feature_store.yaml"
    path.write_text(feature_store_yaml(settings))
    assert "p'a#s" not in path.read_text() and "${WORKBENCH_FEAST_REDIS_CONNECTION}" in path.read_text()
    config = load_repo_config(tmp_path, path)
    assert config.online_store.connection_string == connection
    # without the variable Feast gets the reference itself, not the secret: the file alone holds nothing
    clean_env.delenv(repo.REDIS_CONNECTION_ENV)
    assert load_repo_config(tmp_path, path).online_store.connection_string == "${WORKBENCH_FEAST_REDIS_CONNECTION}"


def test_the_postgres_password_reaches_feast_through_the_environment(clean_env: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    import yaml

    settings = Settings(project_dir=tmp_path, feast_online_store="postgres",
                        feast_online_store_connection="postgresql://feast:it%27s%23x%3A%20y@pg.svc/features")
    text = feature_store_yaml(settings)
    assert "it's" not in text and "it%27s" not in text
    assert os.environ[repo.POSTGRES_PASSWORD_ENV] == "it''s#x: y"  # escaped for the single quotes
    # what Feast's load_repo_config does before validating (its Postgres class needs psycopg, not installed)
    assert yaml.safe_load(os.path.expandvars(text))["online_store"]["password"] == "it's#x: y"


def test_store_errors_do_not_quote_the_password(tmp_path: Path) -> None:
    class ConnectionError_(Exception):
        pass

    settings = Settings(project_dir=tmp_path, feast_online_store="redis",
                        feast_online_store_connection="r:6379,password=hunter2")
    error = repo.online_store_error(settings, ConnectionError_("cannot reach r:6379,password=hunter2"), "reading")
    assert "hunter2" not in str(error) and "password=***" in str(error)


def test_settings_never_print_their_secrets(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = Settings(project_dir=tmp_path, vllm_api_key="k3y-canary", feast_online_store="redis",
                        feast_online_store_connection="r:6379,password=f3ast-canary",
                        mlflow_uri="http://u:ml-canary@mlflow:5000")
    shown = repr(settings) + str(settings)  # what a notebook cell showing `settings` saves in its output
    assert not [c for c in ("k3y-canary", "f3ast-canary", "ml-canary") if c in shown]
    assert "mlflow_uri='http://mlflow:5000'" in shown


def test_vllm_gets_its_key_in_the_environment_not_on_its_command_line(tmp_path: Path) -> None:
    from workbench.serving.vllm import VLLMOptions, _vllm_env, vllm_command

    settings = Settings(project_dir=tmp_path, vllm_api_key="k3y-canary", vllm_command="vllm serve")
    command = vllm_command(settings, tmp_path / "model", port=8100, served_model_name="m", options=VLLMOptions())
    assert command[:2] == ["vllm", "serve"] and "k3y-canary" not in " ".join(command)
    assert _vllm_env(settings)["VLLM_API_KEY"] == "k3y-canary"


def test_an_export_target_refuses_credentials_in_the_mlflow_uri() -> None:
    from workbench.errors import InvalidInput
    from workbench.export.target import ClusterTarget

    with pytest.raises(InvalidInput, match="MLFLOW_TRACKING_PASSWORD") as raised:
        ClusterTarget(image="ghcr.io/acme/wb:1", mlflow_uri="http://u:ml-canary@mlflow.svc:5000", namespace="ml")
    assert "ml-canary" not in str(raised.value)
    assert ClusterTarget(image="ghcr.io/acme/wb:1", mlflow_uri="http://mlflow.svc:5000", namespace="ml")
