import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from workbench.services.processes import stop_strays


def _sleeper(arg: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", str(arg)])


def test_stop_strays_stops_what_names_the_folder_and_nothing_else(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "haproxy", tmp_path / "haproxy-other"
    stray, bystander = _sleeper(ours / "node" / "haproxy.cfg"), _sleeper(theirs / "haproxy.cfg")
    try:
        assert stop_strays(ours) == [stray.pid]
        assert stray.wait(timeout=10) is not None
        assert psutil.pid_exists(bystander.pid) and bystander.poll() is None  # a sibling folder's name is not ours
        assert stop_strays(ours) == []
    finally:
        for proc in (stray, bystander):
            proc.kill()
            proc.wait()


def test_started_engines_get_a_chosen_environment_not_the_callers() -> None:
    from workbench.services.processes import engine_environment

    caller = {"PATH": "/usr/bin", "HOME": "/root", "PROMETHEUS_MULTIPROC_DIR": "/tmp/feast-gone",
              "PROMETHEUS_MULTIPROCESS_DIR": "/tmp/feast-gone", "JPY_SESSION_NAME": "x", "LC_ALL": "C.UTF-8",
              "WORKBENCH_FEAST_ONLINE_STORE_CONNECTION": "secret", "OPENBLAS_CORETYPE": "Haswell",
              "MLFLOW_EXPERIMENT_ID": "7", "MLFLOW_RUN_ID": "abc"}  # what set_experiment / a run leaves behind
    env = engine_environment({"MLFLOW_TRACKING_URI": "http://127.0.0.1:1"}, base=caller)
    assert env == {"PATH": "/usr/bin", "HOME": "/root", "LC_ALL": "C.UTF-8", "OPENBLAS_CORETYPE": "Haswell",
                   "WORKBENCH_FEAST_ONLINE_STORE_CONNECTION": "secret", "MLFLOW_TRACKING_URI": "http://127.0.0.1:1"}


def test_a_missing_engine_program_is_service_unavailable(tmp_path: Path) -> None:
    from workbench.errors import ServiceUnavailable
    from workbench.services.processes import spawn

    with pytest.raises(ServiceUnavailable, match="'/no/such/mlflow' is not installed.*make setup"):
        spawn("mlflow", ["/no/such/mlflow", "server"], tmp_path / "log", {}, tmp_path)


def test_loopback_addresses_include_ipv4_mapped_ones() -> None:
    from workbench.services.processes import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.1.2.3")


def test_a_record_survives_a_step_of_the_wall_clock_but_not_a_reused_pid(tmp_path: Path) -> None:
    """psutil's start times move with the boot time it derives from the wall clock (NTP, resume): a service
    recorded before the clock was stepped by 50 s is still recognised; another process on the same PID is not."""
    import os

    import psutil

    from workbench.services.processes import ProcessRecord

    me = psutil.Process(os.getpid())
    started, boot = me.create_time(), psutil.boot_time()
    base = {"name": "x", "pid": me.pid, "port": 1, "url": "", "log": "", "command": []}
    assert ProcessRecord(**base, create_time=started, boot_time=boot).process() is not None
    stepped = ProcessRecord(**base, create_time=started - 50.0, boot_time=boot - 50.0)  # recorded before a step
    assert stepped.process() is not None
    reused = ProcessRecord(**base, create_time=started - 50.0, boot_time=boot)  # an older process had this PID
    assert reused.process() is None
    saved = tmp_path / "rec"
    stepped.save(saved)
    assert ProcessRecord.load(saved, "x") == stepped
