import subprocess
import sys
from pathlib import Path

import psutil

from workbench.services._process import stop_strays


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
