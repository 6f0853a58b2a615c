"""The job driver's side of Ray Train: run the ``TorchTrainer`` and relay its metrics to MLflow.

Resuming needs nothing from the caller: the run's storage folder is ``<checkpoint_dir>/<run_id>``
(Ray Train's ``RunConfig(storage_path, name=run_id)``), Ray restores its newest checkpoint itself, and
the driver also looks for the newest ``epoch_*`` folder on disk, so a job stopped before Ray recorded
its last checkpoint still resumes from it.
"""

from __future__ import annotations

import time

from ray.train import CheckpointConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from workbench import locations
from workbench.training.checkpoint import TrainingState, find_latest_checkpoint
from workbench.training.joblog import say
from workbench.training.metric_files import read_epoch_metrics, write_epoch_metrics
from workbench.training.relay import MetricRelay
from workbench.training.spec import TrainingSpec
from workbench.training.tracking import tracking_client
from workbench.training.worker import train_worker

#: Checkpoints kept per run; older ones are deleted by Ray Train (the newest is all a resume needs).
CHECKPOINTS_TO_KEEP = 2
METRICS_DIR = "metrics"


def run_directory(spec: TrainingSpec, run_id: str) -> str:
    """The run's storage folder: a local path, or an ``s3://`` URI on a cluster sharing no disk."""
    return locations.join(spec.checkpoint_dir, run_id)


def run_training(spec: TrainingSpec, run_id: str, tracking_uri: str) -> TrainingState:
    """Train with a ``TorchTrainer`` (resuming from this run's newest checkpoint); return the final state."""
    run_dir = run_directory(spec, run_id)
    metrics_dir = locations.join(run_dir, METRICS_DIR)
    relay = MetricRelay(tracking_client(tracking_uri), run_id, metrics_dir)
    latest = find_latest_checkpoint(run_dir)
    if latest is not None:
        with locations.local_copy(latest) as folder:
            state = TrainingState.load(folder)
        if state.epoch not in {epoch for epoch, _ in read_epoch_metrics(metrics_dir)}:
            write_epoch_metrics(metrics_dir, state.epoch, state.metrics)  # checkpointed, then stopped
        say(f"resuming run {run_id} from the checkpoint of epoch {state.epoch} ({latest}); "
            f"next epoch {state.epoch + 1} of {spec.epochs}")
        relay.flush()  # what the stopped job checkpointed but did not log
        if state.epoch >= spec.epochs - 1:
            say("every epoch is already checkpointed: only the model is left to log")
            return state
    else:
        say(f"starting run {run_id}: {spec.epochs} epochs on {spec.num_workers} worker(s), "
            f"use_gpu={spec.use_gpu}")
    storage_path, storage_fs = locations.ray_storage(spec.checkpoint_dir)
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"spec": spec.to_dict(), "metrics_dir": metrics_dir,
                           "resume_from": str(latest) if latest else None},
        scaling_config=ScalingConfig(num_workers=spec.num_workers, use_gpu=spec.use_gpu,
                                     resources_per_worker={"CPU": spec.cpus_per_worker}),
        run_config=RunConfig(storage_path=storage_path, storage_filesystem=storage_fs, name=run_id,

                             checkpoint_config=CheckpointConfig(num_to_keep=CHECKPOINTS_TO_KEEP)),
    )
    began = time.perf_counter()
    say(f"timing fit_started_unix={time.time():.3f}")
    relay.start()
    try:
        result = trainer.fit()
    finally:
        relay.stop()
    say(f"timing fit_s={time.perf_counter() - began:.3f}")
    if result.checkpoint is not None:
        with result.checkpoint.as_directory() as folder:
            return TrainingState.load(folder)
    newest = find_latest_checkpoint(run_dir)
    if newest is None:
        raise RuntimeError(f"training of run {run_id} ended without any checkpoint under {run_dir}")
    with locations.local_copy(newest) as folder:
        return TrainingState.load(folder)
