"""What each Ray Train worker runs: resume, train, and per epoch report + checkpoint (+ metric file).

Every worker reports through ``ray.train.report`` each epoch (it is a barrier); rank 0 attaches the
checkpoint and, once the report returned (checkpoint persisted), writes the epoch's metric file for
the driver to log. No MLflow here: see :mod:`workbench.training.metric_files`.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from ray.train import Checkpoint

from workbench import locations
from workbench.training.checkpoint import TrainingState, epoch_dir_name
from workbench.training.frame import load_training_data
from workbench.training.joblog import say
from workbench.training.loop import train_model
from workbench.training.metric_files import write_epoch_metrics
from workbench.training.spec import TrainingSpec

HEADLINE = ("roc_auc", "accuracy", "rmse")  # the metric worth a glance in the log, by task


def _sum_over_workers(value: torch.Tensor) -> torch.Tensor:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    reduced = value.to(ray.train.torch.get_device())
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced.cpu()


def _resume_state(fallback: str | None) -> TrainingState | None:
    """The newest of Ray Train's restored checkpoint and the one the driver found on disk."""
    candidates: list[TrainingState] = []
    restored = ray.train.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as folder:
            candidates.append(TrainingState.load(folder))
    if fallback:
        with locations.local_copy(fallback) as folder:
            candidates.append(TrainingState.load(folder))
    return max(candidates, key=lambda s: s.epoch) if candidates else None


def train_worker(config: dict[str, Any]) -> None:
    """The function every worker runs; ``config`` is the TorchTrainer's ``train_loop_config``:
    ``spec`` (dict), ``metrics_dir`` and ``resume_from`` (a checkpoint folder or None)."""
    began, started_unix = time.perf_counter(), time.time()
    spec = TrainingSpec.from_dict(config["spec"])
    metrics_dir = str(config["metrics_dir"])
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(max(1, int(spec.cpus_per_worker)))
    start = _resume_state(config.get("resume_from"))
    data = load_training_data(spec)
    if rank == 0:
        resumed = f", resumed after epoch {start.epoch}" if start is not None else ""
        say(f"timing worker_setup_s={time.perf_counter() - began:.3f} rows_train={len(data.x_train)} "
            f"rows_val={len(data.x_val)} world_size={world_size} started_unix={started_unix:.3f}{resumed}")

    def on_epoch(state: TrainingState, metrics: dict[str, float]) -> None:
        reporting = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if rank == 0:
                state.save(tmp)
                checkpoint = Checkpoint.from_directory(tmp)
            ray.train.report({**metrics, "epoch": state.epoch}, checkpoint=checkpoint,
                             checkpoint_dir_name=epoch_dir_name(state.epoch))
        if rank == 0:
            write_epoch_metrics(metrics_dir, state.epoch, metrics)
            headline = next((f" {k}={metrics[k]:.4f}" for k in HEADLINE if k in metrics), "")
            say(f"epoch {state.epoch} loss={metrics['loss']:.4f}{headline} | timing "
                f"train_s={metrics['epoch_time_s']:.3f} checkpoint_report_s={time.perf_counter() - reporting:.3f} "
                f"at_unix={time.time():.3f}")

    train_model(spec, data, on_epoch, start=start, rank=rank, world_size=world_size,
                prepare_model=ray.train.torch.prepare_model, device=ray.train.torch.get_device(),
                all_reduce_sum=_sum_over_workers)
