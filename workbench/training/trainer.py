"""Ray Train: the per-worker function and the driver call that runs it as a ``TorchTrainer``.

Runs inside the job. Each epoch every worker reports its metrics, rank 0 also a checkpoint, through
``ray.train.report``; rank 0 logs the metrics to MLflow only *after* the report returned, i.e. after
the checkpoint is persisted, so a job stopped at any moment never leaves a metric step that a resumed
job would log a second time (and a checkpoint whose metrics were not logged yet is logged on resume).
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from mlflow.tracking import MlflowClient
from ray.train import Checkpoint, CheckpointConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from workbench.training.checkpoint import TrainingState, epoch_dir_name, find_latest_checkpoint
from workbench.training.frame import load_training_data
from workbench.training.loop import train_model
from workbench.training.spec import TrainingSpec
from workbench.training.tracking import log_epoch_metrics, logged_steps, tracking_client

#: Checkpoints kept per run; older ones are deleted by Ray Train (the newest is all a resume needs).
CHECKPOINTS_TO_KEEP = 2


def say(message: str) -> None:
    """A line in the job log (the driver's and the workers' stdout both end up there).

    Written to ``sys.stdout`` directly: Ray Train patches ``print`` in workers and would log it twice.
    """
    sys.stdout.write(f"workbench: {message}\n")
    sys.stdout.flush()


def _warm_up(client: MlflowClient, run_id: str) -> threading.Thread:
    """Make the first MLflow request in the background: it imports every MLflow plugin (seconds)."""
    def ask() -> None:
        try:
            client.get_run(run_id)
        except Exception:  # noqa: BLE001 - the real calls report errors; this only pre-pays imports
            pass

    thread = threading.Thread(target=ask, name="mlflow-warm-up", daemon=True)
    thread.start()
    return thread


def _sum_over_workers(value: torch.Tensor) -> torch.Tensor:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    device = ray.train.torch.get_device()
    reduced = value.to(device)
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
        candidates.append(TrainingState.load(fallback))
    return max(candidates, key=lambda s: s.epoch) if candidates else None


def log_checkpointed_metrics(client: MlflowClient, run_id: str, state: TrainingState) -> None:
    """Log a checkpoint's metrics if the job that wrote it stopped before logging them."""
    if state.epoch not in logged_steps(client, run_id):
        log_epoch_metrics(client, run_id, state.metrics, state.epoch)


def train_worker(config: dict[str, Any]) -> None:
    """The function every Ray Train worker runs (``config`` is TorchTrainer's ``train_loop_config``)."""
    spec = TrainingSpec.from_dict(config["spec"])
    run_id: str = config["run_id"]
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(max(1, int(spec.cpus_per_worker)))
    started = time.perf_counter()
    client = tracking_client(config["tracking_uri"]) if rank == 0 else None
    warming = _warm_up(client, run_id) if client is not None else None
    start = _resume_state(config.get("resume_from"))
    if start is not None and client is not None:
        say(f"worker resumed from the checkpoint of epoch {start.epoch}")
        log_checkpointed_metrics(client, run_id, start)
    data = load_training_data(spec)
    if rank == 0:
        say(f"timing worker_setup_s={time.perf_counter() - started:.3f} rows_train={len(data.x_train)} "
            f"rows_val={len(data.x_val)} world_size={world_size}")

    def on_epoch(state: TrainingState, metrics: dict[str, float]) -> None:
        began = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if rank == 0:
                state.save(tmp)
                checkpoint = Checkpoint.from_directory(tmp)
            ray.train.report({**metrics, "epoch": state.epoch}, checkpoint=checkpoint,
                             checkpoint_dir_name=epoch_dir_name(state.epoch))
        reported = time.perf_counter()
        if client is not None:
            if warming is not None:
                warming.join()
            log_epoch_metrics(client, run_id, metrics, state.epoch)
            say(f"epoch {state.epoch} loss={metrics['loss']:.4f} roc_auc={metrics['roc_auc']:.4f} | timing "
                f"train_s={metrics['epoch_time_s']:.3f} checkpoint_report_s={reported - began:.3f} "
                f"mlflow_log_s={time.perf_counter() - reported:.3f}")

    train_model(spec, data, on_epoch, start=start, rank=rank, world_size=world_size,
                prepare_model=ray.train.torch.prepare_model, device=ray.train.torch.get_device(),
                all_reduce_sum=_sum_over_workers)


def run_training(spec: TrainingSpec, run_id: str, tracking_uri: str) -> TrainingState:
    """Train with a ``TorchTrainer`` (resuming from this run's newest checkpoint); return the final state."""
    storage = Path(spec.checkpoint_dir)
    latest = find_latest_checkpoint(storage / run_id)
    if latest is not None:
        state = TrainingState.load(latest)
        say(f"resuming run {run_id} from the checkpoint of epoch {state.epoch} ({latest}); "
            f"next epoch {state.epoch + 1} of {spec.epochs}")
        if state.epoch >= spec.epochs - 1:
            say("every epoch is already checkpointed: only the model is left to log")
            log_checkpointed_metrics(tracking_client(tracking_uri), run_id, state)
            return state
    else:
        say(f"starting run {run_id}: {spec.epochs} epochs on {spec.num_workers} worker(s), "
            f"use_gpu={spec.use_gpu}")
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"spec": spec.to_dict(), "run_id": run_id, "tracking_uri": tracking_uri,
                           "resume_from": str(latest) if latest else None},
        scaling_config=ScalingConfig(num_workers=spec.num_workers, use_gpu=spec.use_gpu,
                                     resources_per_worker={"CPU": spec.cpus_per_worker}),
        run_config=RunConfig(storage_path=str(storage), name=run_id,
                             checkpoint_config=CheckpointConfig(num_to_keep=CHECKPOINTS_TO_KEEP)),
    )
    began = time.perf_counter()
    result = trainer.fit()
    say(f"timing fit_s={time.perf_counter() - began:.3f}")
    if result.checkpoint is not None:
        with result.checkpoint.as_directory() as folder:
            return TrainingState.load(folder)
    newest = find_latest_checkpoint(storage / run_id)
    if newest is None:
        raise RuntimeError(f"training of run {run_id} ended without any checkpoint under {storage / run_id}")
    return TrainingState.load(newest)
