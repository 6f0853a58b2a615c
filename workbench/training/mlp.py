"""The built-in "mlp" trainer: a PyTorch MLP on Ray Train (``TorchTrainer``), for every task kind.

Categorical columns are one-hot encoded and numeric nulls imputed (with a missing indicator) by the
logged model itself; the loss follows the task (see :mod:`workbench.training.loop`). Resumable from the
newest per-epoch checkpoint; sweeps run the same loop in Tune trials.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.training.trainers import JobContext, Trainer, TrainOutcome, TrialReport

if TYPE_CHECKING:
    from workbench.training.checkpoint import TrainingState
    from workbench.training.spec import TrainingSpec


class MLPTrainer(Trainer):
    hyperparameters = ("hidden_sizes", "lr", "batch_size", "epochs", "weight_decay", "dropout")
    resumable = True

    def total_steps(self, spec: TrainingSpec) -> int:
        return spec.epochs

    def train(self, job: JobContext) -> TrainOutcome:
        from workbench.training.trainer import run_training

        state = run_training(job.spec, job.run_id, job.tracking_uri)
        return self.log_state(state, job)

    def trial(self, spec: TrainingSpec, report: TrialReport) -> None:
        import torch

        from workbench.training.frame import load_training_data
        from workbench.training.loop import train_model

        torch.set_num_threads(max(1, int(spec.cpus_per_worker)))
        data = load_training_data(spec)

        def on_epoch(state: TrainingState, metrics: dict[str, float]) -> None:
            save: Callable[[Path], Any] = state.save
            report(state.epoch, metrics, save)

        train_model(spec, data, on_epoch)

    def log_checkpoint(self, folder: Path, job: JobContext) -> TrainOutcome:
        from workbench.training.checkpoint import TrainingState

        return self.log_state(TrainingState.load(folder), job)

    @staticmethod
    def log_state(state: TrainingState, job: JobContext) -> TrainOutcome:
        import tempfile

        from workbench.training.evaluation import finish_model
        from workbench.training.export import write_model_artifacts

        with tempfile.TemporaryDirectory() as tmp:
            artifacts = write_model_artifacts(state, Path(tmp))
            return finish_model(job, artifacts, state.epoch, set(state.metrics))
