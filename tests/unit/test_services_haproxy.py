"""The launcher that keeps Ray's HAProxy stats and metrics binds on the configured host."""

from __future__ import annotations

import subprocess
from pathlib import Path

from workbench.config import Settings
from workbench.services.haproxy import bind_on_host, real_haproxy, write_launcher

RAY_LIKE_CONFIG = """global
    maxconn 1000
defaults
    mode http
    timeout connect 5s
    timeout client 5s
    timeout server 5s
frontend prometheus
    bind :{metrics}
    http-request use-service prometheus-exporter if {{ path /metrics }}
frontend http_frontend
    bind 127.0.0.1:{serve}
    default_backend replicas
backend replicas
    server r1 127.0.0.1:30001
listen stats
  bind *:{stats}
  stats enable
  stats uri /stats
"""


def test_wildcard_binds_move_to_the_host_and_explicit_ones_stay() -> None:
    config = RAY_LIKE_CONFIG.format(metrics=9101, serve=8000, stats=8404)
    moved = bind_on_host(config, "127.0.0.1")
    assert "bind 127.0.0.1:9101" in moved and "bind 127.0.0.1:8404" in moved
    assert "bind 127.0.0.1:8000" in moved and "*:" not in moved and "bind :" not in moved
    assert bind_on_host("  bind 0.0.0.0:1\n  bind :::2\n  bind 10.0.0.5:3\n", "127.0.0.1") == (
        "  bind 127.0.0.1:1\n  bind 127.0.0.1:2\n  bind 10.0.0.5:3\n")


def test_the_launcher_rewrites_rays_config_then_runs_the_real_haproxy(tmp_path: Path) -> None:
    settings = Settings(project_dir=tmp_path, short_dir_root=str(tmp_path / "t"), serve_ingress="haproxy")
    launcher = write_launcher(settings)
    assert str(launcher) == settings.serve_ingress_env()["RAY_SERVE_HAPROXY_BINARY_PATH"]
    config = tmp_path / "haproxy.cfg"
    original = RAY_LIKE_CONFIG.format(metrics=39101, serve=38000, stats=38404)
    config.write_text(original)
    # `-c` makes HAProxy check the config and exit: the real binary, on the rewritten file
    done = subprocess.run([str(launcher), "-c", "-f", str(config)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert config.read_text() == bind_on_host(original, "127.0.0.1")  # the shell rule equals the Python one
    assert Path(real_haproxy()).is_file()
