"""Lines the job writes for people (and the benchmark) to read in ``job_logs``."""

from __future__ import annotations

import sys


def say(message: str) -> None:
    """A ``workbench: ...`` line in the job log (driver and worker stdout both end up there).

    Written to ``sys.stdout`` directly: Ray Train patches ``print`` in workers and would log it twice.
    """
    sys.stdout.write(f"workbench: {message}\n")
    sys.stdout.flush()
