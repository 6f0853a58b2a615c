"""The wheel a user installs carries the JupyterLab extension, both halves, with no Node on their side.

Builds the wheel from this checkout (hatchling + hatch-jupyter-builder, --no-build-isolation: the backend
comes with the test extra, so no package index is needed), installs it with --no-deps into a fresh virtual
environment, and asks that environment's own Jupyter what it sees. The fresh environment borrows the main
venv's packages (JupyterLab, Jupyter Server, workbench's dependencies) through a .pth line, which site
appends after its own site-packages: the freshly installed workbench wins, and only the wheel's shared data
(``share/jupyter``, ``etc/jupyter`` of the fresh prefix) can make the extension appear.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LABEXTENSION = ROOT / "workbench" / "labextension"
EXTENSION_NAME = "jupyterlab-workbench"
SERVER_EXTENSION = "workbench.server"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (LABEXTENSION / "package.json").is_file(),
        reason=f"!!! WHEEL NOT TESTED: the labextension is not built ({LABEXTENSION}/package.json is missing); "
               "`make extension` builds it (make test does) !!!"),
]


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> tuple[str, str]:
    """Run a command; return its stdout and stderr without colour codes (Jupyter's listings use both
    streams). A failure shows the whole output, not just the exit code."""
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    return ANSI.sub("", done.stdout), ANSI.sub("", done.stderr)


def _listed_under(streams: tuple[str, str], header: str) -> list[str]:
    """The indented lines that follow ``header`` in a `... extension list` listing: what Jupyter found in
    that one directory, so an extension enabled somewhere else on the machine cannot pass for the wheel's."""
    found: list[str] = []
    for stream in streams:
        lines = stream.splitlines()
        for i, line in enumerate(lines):
            if line.strip() == header:
                for row in lines[i + 1:]:
                    if not row[:1].isspace():
                        break
                    found.append(row.strip())
    return found


def _isolated_env(tmp_path: Path) -> dict[str, str]:
    """The environment with every Jupyter/IPython location inside tmp_path, so neither the user's nor the
    project's Jupyter config (the Makefile points JUPYTER_CONFIG_DIR into .workbench) is read."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("JUPYTER", "PYTHON", "VIRTUAL_ENV", "PIP_"))}
    jupyter = tmp_path / "jupyter"
    env.update(JUPYTER_CONFIG_DIR=str(jupyter / "config"), JUPYTER_DATA_DIR=str(jupyter / "data"),
               JUPYTER_RUNTIME_DIR=str(jupyter / "runtime"), IPYTHONDIR=str(tmp_path / "ipython"),
               JUPYTER_PLATFORM_DIRS="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
    return env


def test_wheel_carries_and_enables_both_extensions(tmp_path: Path) -> None:
    if importlib.util.find_spec("hatchling") is None or importlib.util.find_spec("hatch_jupyter_builder") is None:
        pytest.fail("hatchling and hatch-jupyter-builder (the test extra) are not installed in this venv: "
                    "run `make setup`")
    env = _isolated_env(tmp_path)

    started = time.perf_counter()
    dist = tmp_path / "dist"
    # skip-if-exists: the built labextension is used as it is, so no Node or jlpm runs here
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)],
         env, cwd=ROOT)
    wheels = sorted(dist.glob("workbench-*.whl"))
    assert len(wheels) == 1, f"expected one workbench wheel in {dist}: {wheels}"
    wheel_path = wheels[0]
    build_s = time.perf_counter() - started

    with zipfile.ZipFile(wheel_path) as wheel:
        names = set(wheel.namelist())
    name, version = wheel_path.name.split("-")[:2]
    data = f"{name}-{version}.data/data"
    built = sorted(p.relative_to(LABEXTENSION).as_posix() for p in LABEXTENSION.rglob("*") if p.is_file())
    assert "package.json" in built and any(re.fullmatch(r"static/remoteEntry\.\w+\.js", f) for f in built), built
    missing = [f for f in built if f"{data}/share/jupyter/labextensions/{EXTENSION_NAME}/{f}" not in names]
    assert not missing, f"the wheel lacks these files of the built labextension: {missing}"
    assert f"{data}/etc/jupyter/jupyter_server_config.d/workbench.json" in names, sorted(names)
    assert {"workbench/server/__init__.py", "workbench/py.typed", "workbench/widgets/static/data_browser.js"} <= names
    stage_notebooks = sorted(p.relative_to(ROOT / "notebooks").as_posix() for p in (ROOT / "notebooks").rglob("*.ipynb")
                             if ".ipynb_checkpoints" not in p.parts)
    assert len(stage_notebooks) >= 6
    missing = [n for n in stage_notebooks if f"workbench/templates/{n}" not in names]
    assert not missing, f"the wheel lacks the stage notebooks the sidebar copies as templates: {missing}"
    assert not any(n.startswith("workbench/labextension/") for n in names), \
        "the labextension belongs in the shared data only, not a second time inside the package"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env, cwd=tmp_path)
    python = str(venv / "bin" / "python")
    site_packages = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                              env, cwd=tmp_path)[0].strip())
    # appended after the fresh site-packages: the main venv supplies the dependencies, never workbench itself
    # (its editable install's .pth files are not processed from a plain path entry)
    (site_packages / "zz_main_venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", str(wheel_path)],
         env, cwd=tmp_path)
    install_s = time.perf_counter() - started - build_s

    imported, prefix = _run([python, "-c", "import sys, workbench; print(workbench.__file__); print(sys.prefix)"],
                            env, cwd=tmp_path)[0].split()
    assert Path(imported).is_relative_to(site_packages), f"workbench came from {imported}, not the wheel's copy"
    assert Path(prefix) == venv
    # the installed package finds its templates (the sidebar's "Open template" / "New lifecycle project")
    found = _run([python, "-c", "from workbench.server.templates import default_template_dir as d; print(d())"],
                 env, cwd=tmp_path)[0].strip()
    assert Path(found) == site_packages / "workbench" / "templates", found
    assert sorted(p.name for p in Path(found).glob("*.ipynb")) == sorted(n for n in stage_notebooks if "/" not in n)

    # The apps' modules, not `python -m jupyter labextension`: that looks for a jupyter-labextension script,
    # which the fresh venv lacks (and the main venv's would report the main prefix).
    labextensions = _run([python, "-m", "jupyterlab.labextensions", "list"], env, cwd=tmp_path)
    rows = [r for r in _listed_under(labextensions, f"{venv}/share/jupyter/labextensions")
            if r.split()[0] == EXTENSION_NAME]
    assert rows, f"{EXTENSION_NAME} not listed under the fresh venv's share/jupyter:\n{''.join(labextensions)}"
    assert re.fullmatch(rf"{EXTENSION_NAME} v\S+ enabled OK \(python, workbench\)", rows[0].strip()), rows[0]

    servers = _run([python, "-m", "jupyter_server.extension.serverextension", "list"], env, cwd=tmp_path)
    rows = _listed_under(servers, f"Config dir: {venv}/etc/jupyter")
    assert f"{SERVER_EXTENSION} enabled" in rows, f"not enabled by the wheel's config:\n{''.join(servers)}"
    assert any(re.fullmatch(rf"{re.escape(SERVER_EXTENSION)}\s+(\S+\s+)?OK", r) for r in rows), \
        f"{SERVER_EXTENSION} did not validate (import or extension points):\n{''.join(servers)}"
    print(f"wheel built in {build_s:.1f} s, venv + install in {install_s:.1f} s, "
          f"listings in {time.perf_counter() - started - build_s - install_s:.1f} s")
