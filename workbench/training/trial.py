"""What each Ray Tune trial of a sweep runs: the training loop with the trial's hyper-parameters.

Trials write their params, per-epoch metrics and end status as files (see
:mod:`workbench.training.metric_files`); the driver turns them into MLflow child runs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune

from workbench.training.checkpoint import TrainingState
from workbench.training.frame import load_training_data
from workbench.training.loop import train_model
from workbench.training.metric_files import STATUS_FILE, STREAM_FILE, write_epoch_metrics, write_json
from workbench.training.spec import TrainingSpec


def run_trial(config: dict[str, Any], base: dict[str, Any], trials_dir: str) -> None:
    """One trial: ``config`` holds the sampled values, ``base`` the spec they override."""
    sampled = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()}
    spec = TrainingSpec.from_dict({**base, **sampled, "sweep": None})
    torch.set_num_threads(max(1, int(spec.cpus_per_worker)))
    context = tune.get_context()
    stream = Path(trials_dir) / context.get_trial_id()
    write_json(stream / STREAM_FILE, {"trial_id": context.get_trial_id(),
                                      "run_name": f"{spec.run_name or 'sweep'}-{context.get_trial_name()}",
                                      "params": {**spec.hyperparameters(), **sampled}})
    try:
        data = load_training_data(spec)

        def on_epoch(state: TrainingState, metrics: dict[str, float]) -> None:
            with tempfile.TemporaryDirectory() as tmp:
                state.save(tmp)
                tune.report({**metrics, "epoch": state.epoch}, checkpoint=tune.Checkpoint.from_directory(tmp))
            write_epoch_metrics(stream, state.epoch, metrics)

        train_model(spec, data, on_epoch)
    except BaseException:
        write_json(stream / STATUS_FILE, {"status": "FAILED"})
        raise
    write_json(stream / STATUS_FILE, {"status": "FINISHED"})
