from pathlib import Path

import pytest

from workbench.config import Settings, load_settings
from workbench.errors import ConfigError


def test_defaults_are_local_and_loopback(tmp_path: Path) -> None:
    s = load_settings(tmp_path, env={})
    assert s.profile == "local"
    assert s.state_dir == tmp_path.resolve() / ".workbench"
    assert s.mlflow_uri == "http://127.0.0.1:5000"
    assert s.ray_address == "http://127.0.0.1:8265"


def test_toml_then_profile_table_then_env_then_overrides(tmp_path: Path) -> None:
    (tmp_path / "workbench.toml").write_text(
        'mlflow_port = 5100\nexperiment = "a"\n[prices]\ngpu_hour_usd = 4.0\n'
        '[profiles.cluster]\nmlflow_uri = "http://mlflow.internal:80"\nexperiment = "b"\n')
    local = load_settings(tmp_path, env={})
    assert (local.mlflow_port, local.mlflow_uri, local.experiment) == (5100, "http://127.0.0.1:5100", "a")
    assert local.prices.gpu_hour_usd == 4.0
    cluster = load_settings(tmp_path, env={"WORKBENCH_PROFILE": "cluster", "WORKBENCH_EXPERIMENT": "c"})
    assert cluster.mlflow_uri == "http://mlflow.internal:80"
    assert cluster.experiment == "c"
    assert load_settings(tmp_path, env={"WORKBENCH_EXPERIMENT": "c"}, experiment="d").experiment == "d"


def test_env_prices_and_types(tmp_path: Path) -> None:
    s = load_settings(tmp_path, env={"WORKBENCH_PRICE_CPU_HOUR_USD": "0.2", "WORKBENCH_RAY_PORT": "7000"})
    assert s.prices.cpu_hour_usd == 0.2
    assert s.ray_port == 7000
    assert s.ray_gcs_address == "127.0.0.1:7000"


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("", {"WORKBENCH_PROFILE": "laptop"}, "profile must be one of"),
        ("", {"WORKBENCH_MLFLOW_PORT": "abc"}, "must be a int"),
        ("", {"WORKBENCH_MLFLOW_PORT": "70000"}, "must be a TCP port"),
        ("colour = 'blue'\n", {}, "unknown setting 'colour'"),
        ("mlflow_port = \n", {}, "not valid TOML"),
        ("[prices]\ntpu_hour_usd = 1\n", {}, "unknown price"),
        ("", {"WORKBENCH_SERVE_INGRESS": "nginx"}, "serve_ingress must be one of"),
        ("", {"WORKBENCH_HAPROXY_STATS_PORT": "0"}, "haproxy_stats_port must be a TCP port"),
        ("", {"WORKBENCH_PREDICTION_LOG_SEGMENT_MB": "0"}, "prediction_log_segment_mb must be positive"),
        ("", {"WORKBENCH_PREDICTION_LOG_SEGMENT_AGE_S": "soon"}, "prediction_log_segment_age_s"),
        ("", {"WORKBENCH_STORAGE": "nfs"}, "storage must be one of"),
        ("storage = 's3'\ns3_bucket = 'My_Bucket'\n", {}, "not an S3 bucket name"),
        ("", {"WORKBENCH_S3_PORT": "65530"}, "s3_port must leave room for 8 ports"),
        ("", {"WORKBENCH_S3_ENDPOINT_URL": "minio:9000"}, "s3_endpoint_url must be an http"),
    ],
)
def test_bad_settings_raise_config_error(tmp_path: Path, toml: str, env: dict[str, str], message: str) -> None:
    (tmp_path / "workbench.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, env=env)


def test_replace_recomputes_derived_addresses(tmp_path: Path) -> None:
    s = Settings(project_dir=tmp_path).replace(mlflow_port=5999, ray_dashboard_port=9999)
    assert s.mlflow_uri == "http://127.0.0.1:5999"
    assert s.ray_address == "http://127.0.0.1:9999"


def test_project_dir_found_from_subfolder(tmp_path: Path) -> None:
    (tmp_path / "workbench.toml").write_text("experiment = 'here'\n")
    sub = tmp_path / "notebooks" / "deep"
    sub.mkdir(parents=True)
    import os

    old = os.getcwd()
    os.chdir(sub)
    try:
        s = load_settings(env={})
    finally:
        os.chdir(old)
    assert s.project_dir == tmp_path.resolve()
    assert s.experiment == "here"


def test_serve_ingress_env_for_the_ray_head(tmp_path: Path) -> None:
    proxy = load_settings(tmp_path, env={"WORKBENCH_SERVE_INGRESS": "proxy"})
    assert proxy.serve_ingress_env() == {}  # Serve's own proxy: Ray's defaults
    assert load_settings(tmp_path, env={}).serve_ingress == "haproxy"  # the fast ingress is the default
    s = load_settings(tmp_path, env={"WORKBENCH_HAPROXY_STATS_PORT": "18404"})
    env = s.serve_ingress_env()
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1" and env["RAY_SERVE_HAPROXY_STATS_PORT"] == "18404"
    assert env["RAY_SERVE_HAPROXY_METRICS_PORT"] == "9101"
    paths = [v for k, v in env.items() if k.endswith(("_LOC", "_PATH", "_BASE", "_FILE"))]
    assert len(paths) == 6 and all(Path(v).is_relative_to(s.haproxy_dir) for v in paths)  # not /tmp/haproxy-serve
    # a stopping replica stays reachable behind the local HAProxy for 10 s, not Ray's cluster-sized 30 s
    assert env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] == "10.0"
    quick = load_settings(tmp_path, env={"WORKBENCH_SERVE_DRAIN_S": "2.5"})
    assert quick.serve_ingress_env()["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] == "2.5"
    with pytest.raises(ConfigError, match="serve_drain_s"):
        load_settings(tmp_path, env={"WORKBENCH_SERVE_DRAIN_S": "-1"})


def test_training_jobs_carry_the_report_interval(tmp_path: Path) -> None:
    from workbench.training.jobs import job_env

    # Ray Train's 2 s default held every quick epoch to 2 s; jobs carry the setting instead
    assert job_env(load_settings(tmp_path, env={}))["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] == "0.25"
    slow = load_settings(tmp_path, env={"WORKBENCH_TRAIN_REPORT_INTERVAL_S": "2"})
    assert job_env(slow)["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] == "2"
    for bad in ("0", "-1", "often"):
        with pytest.raises(ConfigError, match="train_report_interval_s"):
            load_settings(tmp_path, env={"WORKBENCH_TRAIN_REPORT_INTERVAL_S": bad})


def test_socket_folders_stay_short_whatever_the_checkout_path(tmp_path: Path) -> None:
    deep = Settings(project_dir=tmp_path / ("x" * 150))
    other = Settings(project_dir=tmp_path / ("y" * 150))
    assert deep.ray_temp_dir != other.ray_temp_dir and deep.haproxy_dir != other.haproxy_dir  # one per project
    for s in (deep, other):
        s.check_socket_paths()
        socket = s.haproxy_dir / ("n" * 56) / "metrics.sock"  # Ray adds the node id
        assert len(str(socket).encode()) <= 97  # HAProxy's limit for a log socket
        ray_socket = s.ray_temp_dir / "session_2026-12-01_19-35-52_123456_4194304" / "sockets" / "dash_MetricsHead"
        assert len(str(ray_socket).encode()) <= 107  # AF_UNIX
    assert deep.ray_dir == deep.state_dir / "ray"  # where users look for the logs (a link, made at start)


def test_a_socket_root_too_deep_is_a_clear_error(tmp_path: Path) -> None:
    s = Settings(project_dir=tmp_path, short_dir_root=str(tmp_path / ("z" * 80)))
    with pytest.raises(ConfigError, match="short_dir_root.*WORKBENCH_SHORT_DIR_ROOT"):
        s.check_socket_paths()


def test_ray_dir_links_to_the_short_temp_dir(tmp_path: Path) -> None:
    from workbench.services.manager import link_ray_dir

    s = Settings(project_dir=tmp_path / "p", short_dir_root=str(tmp_path / "t"))
    (s.ray_dir / "session_old").mkdir(parents=True)  # the old layout: a real folder
    target = link_ray_dir(s)
    assert s.ray_dir.is_symlink() and s.ray_dir.resolve() == target.resolve() == s.ray_temp_dir.resolve()
    assert [p.name for p in s.state_dir.glob("ray.previous-*/session_old")] == ["session_old"]  # kept
    assert link_ray_dir(s) == target and s.ray_dir.is_symlink()  # idempotent


def test_a_price_that_is_not_a_number_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="WORKBENCH_PRICE_CPU_HOUR_USD.*'cheap'"):
        load_settings(tmp_path, env={"WORKBENCH_PRICE_CPU_HOUR_USD": "cheap"})
    (tmp_path / "workbench.toml").write_text("[prices]\ngpu_hour_usd = 'lots'\n")
    with pytest.raises(ConfigError, match="gpu_hour_usd.*'lots'"):
        load_settings(tmp_path, env={})
    with pytest.raises(ConfigError, match="mlflow_port.*'five'"):
        load_settings(tmp_path / "none", env={"WORKBENCH_MLFLOW_PORT": "five"})


def test_workbench_home_names_the_project_from_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "workbench.toml").write_text("experiment = 'mine'\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # plain papermill run from another folder
    s = load_settings(env={"WORKBENCH_HOME": str(project)})
    assert s.project_dir == project.resolve() and s.state_dir == project.resolve() / ".workbench"
    assert s.experiment == "mine"
    assert load_settings(env={}).project_dir == elsewhere.resolve()  # without it: the folder itself
    with pytest.raises(ConfigError, match="WORKBENCH_HOME"):
        load_settings(env={"WORKBENCH_HOME": str(tmp_path / "missing")})


def test_s3_storage_local_store_and_keys(tmp_path: Path) -> None:
    """The local profile runs its own store when no endpoint is given; keys come from the environment only."""
    own = load_settings(tmp_path, env={"WORKBENCH_STORAGE": "s3", "WORKBENCH_S3_PREFIX": "/team/a/"})
    assert own.manages_object_store and own.s3_endpoint == "http://127.0.0.1:8333"
    assert own.object_store_uri == "s3://workbench/team/a" and own.mlflow_artifacts_uri == "s3://workbench/team/a/mlflow"
    key, secret = own.s3_keys()  # made per state dir for a loopback-only store
    assert len(secret) == 40 and own.s3_keys() == (key, secret)
    assert Settings(project_dir=tmp_path / "other", storage="s3").s3_keys() != (key, secret)
    assert own.object_store_env()["MLFLOW_S3_ENDPOINT_URL"] == "http://127.0.0.1:8333"

    shared = load_settings(tmp_path, env={"WORKBENCH_STORAGE": "s3", "WORKBENCH_S3_ENDPOINT_URL": "https://s3.lab:9000",
                                          "AWS_ACCESS_KEY_ID": "AKIDTEAM", "AWS_SECRET_ACCESS_KEY": "team-secret-9"})
    assert not shared.manages_object_store and shared.s3_keys() == ("AKIDTEAM", "team-secret-9")
    assert "team-secret-9" not in repr(shared) and "AKIDTEAM" not in repr(shared)
    assert shared.to_dict(secrets=False)["s3_secret_access_key"] == ""
    assert shared.secret_env()["WORKBENCH_S3_SECRET_ACCESS_KEY"] == "team-secret-9"
    ours = load_settings(tmp_path, env={"WORKBENCH_STORAGE": "s3", "WORKBENCH_S3_ENDPOINT_URL": "https://s3.lab:9000",
                                        "WORKBENCH_S3_SECRET_ACCESS_KEY": "ours-2", "WORKBENCH_S3_ACCESS_KEY_ID": "K2",
                                        "AWS_SECRET_ACCESS_KEY": "aws-1"})
    assert ours.s3_keys() == ("K2", "ours-2")  # the workbench's own variables win
    with pytest.raises(ConfigError, match="needs its keys"):
        load_settings(tmp_path, env={"WORKBENCH_STORAGE": "s3", "WORKBENCH_S3_ENDPOINT_URL": "http://s3:9000"}).s3_keys()
    assert load_settings(tmp_path, env={}).object_store_env() == {}


def test_cluster_endpoints_replace_the_loopback_addresses(tmp_path: Path) -> None:
    """On a cluster the clients' addresses of Serve and of the head's metrics are settings, and the Serve config
    PUT to the head leaves its proxies to the operator (no 127.0.0.1 pushed into the cluster's http_options)."""
    from workbench.serving.deployments import serve_config

    local = Settings(project_dir=tmp_path, serve_port=8123)
    assert local.serve_url == "http://127.0.0.1:8123"
    assert serve_config(local, {"a": {"name": "a"}}) == {
        "proxy_location": "HeadOnly", "http_options": {"host": "127.0.0.1", "port": 8123},
        "applications": [{"name": "a"}]}
    cluster = load_settings(tmp_path, env={"WORKBENCH_PROFILE": "cluster",
                                           "WORKBENCH_SERVE_ENDPOINT": "https://serve.ml.example.com/",
                                           "WORKBENCH_RAY_METRICS_ENDPOINT": "http://ray-head.ml:8080/metrics"})
    assert cluster.serve_url == "https://serve.ml.example.com"
    assert cluster.ray_metrics_url == "http://ray-head.ml:8080/metrics"
    assert serve_config(cluster, {"a": {"name": "a"}}) == {"applications": [{"name": "a"}]}
    with pytest.raises(ConfigError, match="serve_endpoint must be an http"):
        Settings(project_dir=tmp_path, serve_endpoint="serve:8000")
