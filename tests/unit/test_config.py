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
    assert load_settings(tmp_path, env={}).serve_ingress_env() == {}  # Serve's own proxy: Ray's defaults
    s = load_settings(tmp_path, env={"WORKBENCH_SERVE_INGRESS": "haproxy", "WORKBENCH_HAPROXY_STATS_PORT": "18404"})
    env = s.serve_ingress_env()
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1" and env["RAY_SERVE_HAPROXY_STATS_PORT"] == "18404"
    assert env["RAY_SERVE_HAPROXY_METRICS_PORT"] == "9101"
    paths = [v for k, v in env.items() if k.endswith(("_LOC", "_PATH", "_BASE", "_FILE"))]
    assert len(paths) == 5 and all(Path(v).is_relative_to(s.haproxy_dir) for v in paths)  # not /tmp/haproxy-serve


def test_haproxy_dir_stays_short_enough_for_haproxys_socket_paths(tmp_path: Path) -> None:
    shallow = Settings(project_dir=tmp_path, state_dir=Path("/tmp/wb"))
    assert shallow.haproxy_dir == Path("/tmp/wb/haproxy")
    deep = Settings(project_dir=tmp_path, state_dir=tmp_path / ("x" * 60) / ".workbench")
    other = Settings(project_dir=tmp_path, state_dir=tmp_path / ("y" * 60) / ".workbench")
    assert deep.haproxy_dir != other.haproxy_dir  # still one folder per state_dir
    for s in (deep, other):
        socket = s.haproxy_dir / ("n" * 56) / "metrics.sock"  # Ray adds the node id
        assert len(str(socket).encode()) <= 97  # HAProxy's limit for a log socket
