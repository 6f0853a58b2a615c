"""Trainers, registered by name: the built-in MLP and gradient-boosted trees, and the user's own code.

Like papermill's engines, a trainer is an object registered under a name (``register_trainer``); the
spec, the submitter and the job driver ask it what they need (which tasks and hyper-parameters it
takes, what its job ships, how it trains, how a sweep trial runs) instead of branching on the name.
Heavy imports (torch, xgboost, Ray Train) happen inside the methods, so validating a spec stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.data.task import TASK_KINDS
from workbench.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

    from workbench.training.spec import TrainingSpec

#: Called by a sweep trial after each epoch/round: (step, metrics, save) where ``save(folder)`` writes
#: a checkpoint the driver can log the model from (None: no checkpoint at this step).
TrialReport = Callable[[int, dict[str, float], Callable[[Path], Any] | None], None]


@dataclass
class JobContext:
    """What the job driver hands a trainer: the spec, the MLflow run it logs into, and an input example."""

    spec: TrainingSpec
    run_id: str
    tracking_uri: str
    experiment_id: str = ""
    example: pd.DataFrame | None = None


@dataclass
class TrainOutcome:
    """What a trainer reports back: the logged model (if any), the last step and its metrics."""

    model_uri: str = ""
    step: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


class Trainer:
    """The interface every trainer implements; the defaults suit a trainer without sweeps."""

    tasks: tuple[str, ...] = TASK_KINDS
    hyperparameters: tuple[str, ...] = ()
    """Spec fields that shape the model: logged as params, and the ones a sweep may vary."""
    uses_frame: bool = True
    """Whether the job reads the spec's frame (and checks its labels) before training."""
    resumable: bool = False
    """Whether a stopped job can continue from its checkpoints (``resume_training_job``)."""

    def check(self, spec: TrainingSpec) -> None:
        """Extra validation of a spec for this trainer (InvalidInput naming the field)."""

    def total_steps(self, spec: TrainingSpec) -> int:
        """Epochs or boosting rounds the job will log (0: unknown), for progress bars."""
        return 0

    def runtime_env(self, spec: TrainingSpec) -> dict[str, Any]:
        """Extra Ray ``runtime_env`` entries of the job (a working dir to ship, for example)."""
        return {}

    def job_resources(self, spec: TrainingSpec) -> dict[str, float]:
        """Resources the job's driver process reserves: ``num_cpus``, ``num_gpus``, ``memory`` (bytes)."""
        out: dict[str, float] = {}
        if spec.driver_cpus > 0:
            out["num_cpus"] = spec.driver_cpus
        if spec.gpus > 0:
            out["num_gpus"] = spec.gpus
        if spec.memory_mb > 0:
            out["memory"] = spec.memory_mb * 1024 * 1024
        return out

    def job_env(self, spec: TrainingSpec, run_id: str, experiment_id: str, tracking_uri: str) -> dict[str, str]:
        """Extra environment variables of the job's processes."""
        return {}

    def train(self, job: JobContext) -> TrainOutcome:
        """Train in the job driver (Ray is initialised) and log into ``job.run_id``."""
        raise NotImplementedError

    def trial(self, spec: TrainingSpec, report: TrialReport) -> None:
        """Run one sweep trial in-process (inside a Tune trial), reporting every step."""
        raise InvalidInput(f"trainer {spec.trainer!r} does not support sweeps")

    def log_checkpoint(self, folder: Path, job: JobContext) -> TrainOutcome:
        """Log the model saved by a trial's ``save(folder)`` into the job's run."""
        raise InvalidInput(f"trainer {job.spec.trainer!r} does not support sweeps")


_TRAINERS: dict[str, Trainer] = {}
_BUILTINS_LOADED = False


def register_trainer(name: str, trainer: Trainer) -> None:
    """Make ``trainer`` available as ``TrainingSpec(trainer=name)`` (replaces one of the same name)."""
    if not isinstance(name, str) or not name:
        raise InvalidInput("a trainer needs a non-empty name")
    _TRAINERS[name] = trainer


def trainer_names() -> list[str]:
    _register_builtins()
    return sorted(_TRAINERS)


def get_trainer(name: str) -> Trainer:
    _register_builtins()
    try:
        return _TRAINERS[name]
    except (KeyError, TypeError):
        raise InvalidInput(f"trainer must be one of {trainer_names()}, got {name!r} (register your own with "
                           "workbench.training.register_trainer)") from None


def _register_builtins() -> None:
    """Register the built-in trainers on first use (their modules import this one); a trainer the user
    registered under a built-in's name first is kept."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    from workbench.training.custom import CustomTrainer
    from workbench.training.mlp import MLPTrainer
    from workbench.training.xgb import XGBoostTreesTrainer

    for name, trainer in (("mlp", MLPTrainer()), ("xgboost", XGBoostTreesTrainer()), ("custom", CustomTrainer())):
        _TRAINERS.setdefault(name, trainer)
