"""The JupyterLab extension's front end, checked by its own tools: eslint, strict tsc and the vitest unit tests.

The TypeScript logic (status lines, metric formatting, the poller that runs only while a panel is shown, the
API client's error mapping) is tested in TypeScript, next to it; this module is how `make test` runs those
checks, so a failing front-end test fails the suite like any other. They need the extension's node_modules,
which `make extension` installs (`jlpm install --immutable`) before the tests; without them the checks skip
and say why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "extensions" / "jupyterlab-workbench"
# jlpm comes with JupyterLab, in the environment that runs the tests (`.venv/bin`).
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(
    not (EXTENSION / "node_modules").is_dir(),
    reason=f"{EXTENSION / 'node_modules'} is missing: run `make extension` (jlpm install) to check the front end",
)


def _jlpm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `jlpm <args>` in the extension folder, uncoloured, and fail with the output's tail if it fails."""
    jlpm = BIN / "jlpm"
    assert jlpm.exists(), f"no jlpm next to {sys.executable}: JupyterLab is not installed in this environment"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1",
           "FORCE_COLOR": "0", "CI": "1"}
    result = subprocess.run([str(jlpm), *args], cwd=EXTENSION, env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    output = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, f"jlpm {' '.join(args)} exited with {result.returncode}:\n{output}"
    return result


def test_eslint_finds_nothing() -> None:
    """typescript-eslint's type-checked rules (floating promises, unsafe any) on the sources and the tests."""
    _jlpm("lint")


def test_typescript_compiles_strictly() -> None:
    """`strict` tsc over the sources (the build's tsconfig) and the tests (tsconfig.test.json)."""
    _jlpm("typecheck")


def test_vitest_unit_tests_pass(tmp_path: Path) -> None:
    """The unit tests pass, and there are some: an empty or all-skipped run would pass silently otherwise."""
    report = tmp_path / "vitest.json"
    result = _jlpm("test", "--reporter=default", "--reporter=json", f"--outputFile.json={report}")
    summary = json.loads(report.read_text())
    tail = (result.stdout + result.stderr)[-2000:]
    assert summary["success"] is True, tail
    assert summary["numFailedTests"] == 0, tail
    assert summary["numPassedTests"] > 0, f"vitest ran no test:\n{tail}"
    assert summary["numPassedTests"] == summary["numTotalTests"], f"skipped or pending tests:\n{tail}"
