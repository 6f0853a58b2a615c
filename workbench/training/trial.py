"""What each Ray Tune trial of a sweep runs: the spec's trainer with the trial's hyper-parameters.

Trials write their params, per-step metrics and end status as files (see
:mod:`workbench.training.metric_files`); the driver turns them into MLflow child runs. A step that
comes with a checkpoint is also reported to Tune (so Tune ranks trials on it); the others only to the
trial's metric stream.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune

from workbench import locations
from workbench.training.metric_files import STATUS_FILE, STREAM_FILE, write_epoch_metrics, write_json
from workbench.training.spec import TrainingSpec
from workbench.training.trainers import get_trainer


def run_trial(config: dict[str, Any], base: dict[str, Any], trials_dir: str) -> None:
    """One trial: ``config`` holds the sampled values, ``base`` the spec they override."""
    sampled = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()}
    spec = TrainingSpec.from_dict({**base, **sampled, "sweep": None})
    context = tune.get_context()
    stream = locations.join(trials_dir, context.get_trial_id())
    write_json(locations.join(stream, STREAM_FILE), {"trial_id": context.get_trial_id(),
                                      "run_name": f"{spec.run_name or 'sweep'}-{context.get_trial_name()}",
                                      "params": {**spec.hyperparameters(), **sampled}})

    def report(step: int, metrics: dict[str, float], save: Callable[[Path], Any] | None) -> None:
        if save is not None:
            with tempfile.TemporaryDirectory() as tmp:
                save(Path(tmp))
                tune.report({**metrics, "epoch": step}, checkpoint=tune.Checkpoint.from_directory(tmp))
        write_epoch_metrics(stream, step, metrics)

    try:
        get_trainer(spec.trainer).trial(spec, report)
    except BaseException:
        write_json(locations.join(stream, STATUS_FILE), {"status": "FAILED"})
        raise
    write_json(locations.join(stream, STATUS_FILE), {"status": "FINISHED"})
