"""Sweeps: a Ray Tune search over the spec's hyper-parameters, run inside the training job.

The spec's MLflow run is the parent; each trial is a child run (tag ``mlflow.parentRunId``) with its
sampled params and per-epoch metrics, so the MLflow UI groups them. Trials run the same loop as Ray
Train workers, one process each (a sweep of small tabular models gains more from trials in parallel
than from data parallelism inside a trial). The best trial's params and metrics, and its model, are
put on the parent run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune
from ray.tune.search.basic_variant import BasicVariantGenerator

from workbench.training.checkpoint import TrainingState
from workbench.training.frame import load_training_data
from workbench.training.loop import train_model
from workbench.training.spec import SweepSpec, TrainingSpec
from workbench.training.tracking import (
    TAG_BEST_CHILD,
    TAG_DATASET_VERSION,
    TAG_FEATURE_SERVICE,
    TAG_KIND,
    TAG_PARENT,
    log_epoch_metrics,
    log_params,
    set_tags,
    tracking_client,
)
from workbench.training.trainer import say

SWEEP_DIR = "sweep"


def search_space(sweep: SweepSpec) -> dict[str, Any]:
    """The spec's JSON search space as Ray Tune domains."""
    space: dict[str, Any] = {}
    for name, domain in sweep.search_space.items():
        kind, args = next(iter(domain.items()))
        if kind == "choice":
            space[name] = tune.choice(args)
        elif kind == "uniform":
            space[name] = tune.uniform(args[0], args[1])
        elif kind == "loguniform":
            space[name] = tune.loguniform(args[0], args[1])
        else:  # randint: inclusive bounds in the spec, exclusive upper bound in Tune
            space[name] = tune.randint(int(args[0]), int(args[1]) + 1)
    return space


def trial(config: dict[str, Any], base: dict[str, Any], parent_run_id: str, experiment_id: str,
          tracking_uri: str) -> None:
    """One Tune trial: a child MLflow run, the training loop, a report and checkpoint per epoch."""
    sampled = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()}
    spec = TrainingSpec.from_dict({**base, **sampled, "sweep": None})
    torch.set_num_threads(max(1, int(spec.cpus_per_worker)))
    client = tracking_client(tracking_uri)
    context = tune.get_context()
    child = client.create_run(
        experiment_id, run_name=f"{spec.run_name or parent_run_id[:8]}-{context.get_trial_name()}",
        tags={TAG_PARENT: parent_run_id, TAG_KIND: "sweep-trial", "workbench.trial_id": context.get_trial_id(),
              TAG_DATASET_VERSION: spec.dataset_version, TAG_FEATURE_SERVICE: spec.feature_service})
    child_id = child.info.run_id
    try:
        log_params(client, child_id, spec.hyperparameters())
        data = load_training_data(spec)

        def on_epoch(state: TrainingState, metrics: dict[str, float]) -> None:
            log_epoch_metrics(client, child_id, metrics, state.epoch)
            with tempfile.TemporaryDirectory() as tmp:
                state.save(tmp)
                tune.report({**metrics, "epoch": state.epoch, "child_run_id": child_id},
                            checkpoint=tune.Checkpoint.from_directory(tmp))

        train_model(spec, data, on_epoch)
    except BaseException:
        client.set_terminated(child_id, "FAILED")
        raise
    client.set_terminated(child_id, "FINISHED")


def run_sweep(spec: TrainingSpec, run_id: str, experiment_id: str, tracking_uri: str) -> TrainingState:
    """Run the spec's sweep; log the best trial on the parent run; return the best trial's final state."""
    sweep = spec.sweep
    if sweep is None:
        raise ValueError("run_sweep needs a spec with a sweep section")
    resources = {"cpu": spec.cpus_per_worker, "gpu": 1.0 if spec.use_gpu else 0.0}
    trainable = tune.with_resources(
        tune.with_parameters(trial, base=spec.to_dict(), parent_run_id=run_id, experiment_id=experiment_id,
                             tracking_uri=tracking_uri), resources)
    say(f"sweep of run {run_id}: {sweep.num_samples} trials over {sorted(sweep.search_space)}, "
        f"optimising {sweep.metric} ({sweep.mode})")
    tuner = tune.Tuner(
        trainable,
        param_space=search_space(sweep),
        tune_config=tune.TuneConfig(metric=sweep.metric, mode=sweep.mode, num_samples=sweep.num_samples,
                                    max_concurrent_trials=sweep.max_concurrent_trials,
                                    search_alg=BasicVariantGenerator(random_state=spec.seed)),
        run_config=tune.RunConfig(storage_path=str(Path(spec.checkpoint_dir) / run_id), name=SWEEP_DIR,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1), verbose=1),
    )
    results = tuner.fit()
    if results.num_errors == len(results):
        raise RuntimeError(f"every trial of the sweep failed; the first error: {results.errors[0]!r}")
    best = results.get_best_result(metric=sweep.metric, mode=sweep.mode, scope="last")
    if best.checkpoint is None:
        raise RuntimeError("the best trial left no checkpoint")
    with best.checkpoint.as_directory() as folder:
        state = TrainingState.load(folder)
    best_config, best_metrics = dict(best.config or {}), dict(best.metrics or {})
    client = tracking_client(tracking_uri)
    log_params(client, run_id, {f"best_{k}": v for k, v in best_config.items()})
    final = {k: float(v) for k, v in best_metrics.items() if k in state.metrics}
    log_epoch_metrics(client, run_id, {**final, f"best_{sweep.metric}": final[sweep.metric]}, state.epoch)
    set_tags(client, run_id, {TAG_BEST_CHILD: str(best_metrics["child_run_id"]),
                              "workbench.sweep_trials": str(len(results)),
                              "workbench.sweep_failed_trials": str(results.num_errors)})
    say(f"best trial: {best_config} {sweep.metric}={final[sweep.metric]:.4f} "
        f"(child run {best_metrics['child_run_id']})")
    return state
