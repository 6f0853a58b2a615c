"""Record the expected outputs of the stage notebooks' checked cells (``# NBVAL_CHECK_OUTPUT``).

nbval compares a checked cell's fresh output with the output stored in the notebook, even under
``--nbval-lax``; every other cell only has to run. A checked cell is one whose output is the same on every
run with the default parameters (a dataset version is the hash of its content, so the same seed gives the
same version). After changing such a cell, or what it prints, run this against running services (the
``WORKBENCH_*`` variables of the caller say which) to store its new expected output::

    .venv/bin/python tools/record_checked_outputs.py [--upto 02_features.ipynb]

The notebooks run in order, unchanged, in a fresh state folder (a temp dir); only the checked cells'
outputs are written back, every other cell stays without outputs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["01_data.ipynb", "02_features.ipynb", "03_train.ipynb", "04_registry.ipynb", "05_deploy.ipynb",
          "06_monitor.ipynb"]
MARK = "# NBVAL_CHECK_OUTPUT"


def checked(cell: nbformat.NotebookNode) -> bool:
    """A code cell whose output nbval compares."""
    return cell.cell_type == "code" and any(line.strip() == MARK for line in cell.source.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upto", default="", help="the last notebook to run (default: the last with a checked cell)")
    args = parser.parse_args()
    sources = {name: nbformat.read(ROOT / "notebooks" / name, as_version=4) for name in STAGES}
    with_checks = [name for name in STAGES if any(checked(c) for c in sources[name].cells)]
    last = args.upto or (with_checks[-1] if with_checks else "")
    if not last:
        print("no checked cells")
        return
    with tempfile.TemporaryDirectory(prefix="wb-record-") as state:
        os.environ["WORKBENCH_STATE_DIR"] = state
        for name in STAGES[:STAGES.index(last) + 1]:
            run = nbformat.from_dict(sources[name])
            NotebookClient(run, timeout=1800, kernel_name="python3",
                           resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
            source = nbformat.read(ROOT / "notebooks" / name, as_version=4)
            for kept, ran in zip(source.cells, run.cells, strict=True):
                if kept.cell_type == "code":  # nbval refuses a stored output without its execution count
                    kept.outputs = ran.outputs if checked(kept) else []
                    kept.execution_count = ran.execution_count if checked(kept) else None
            nbformat.write(source, ROOT / "notebooks" / name)
            print(f"{name}: {sum(checked(c) for c in source.cells)} checked cell(s) recorded")


if __name__ == "__main__":
    main()
