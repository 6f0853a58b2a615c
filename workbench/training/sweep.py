"""Sweeps: a Ray Tune search over the spec's hyper-parameters, run inside the training job, for any
trainer that implements ``trial`` (the built-in MLP and XGBoost).

The spec's MLflow run is the parent; each trial becomes a child run (tag ``mlflow.parentRunId``) with
its sampled params and per-step metrics, created by the driver's metric relay. Trials run the trainer's
own in-process training, one process each (a sweep of small tabular models gains more from trials in
parallel than from data parallelism inside a trial). The best trial's params and metrics, and its
model, go on the parent run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.search.basic_variant import BasicVariantGenerator

from workbench import locations
from workbench.training.joblog import say
from workbench.training.relay import MetricRelay
from workbench.training.spec import METRICS_BY_TASK, SweepSpec
from workbench.training.tracking import TAG_BEST_CHILD, log_epoch_metrics, log_params, set_tags, tracking_client
from workbench.training.trainers import JobContext, TrainOutcome, get_trainer
from workbench.training.trial import run_trial

SWEEP_DIR = "sweep"
TRIALS_DIR = "trials"


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


def run_sweep(job: JobContext) -> TrainOutcome:
    """Run the spec's sweep; log the best trial's params, metrics and model on the parent run."""
    spec = job.spec
    sweep = spec.sweep
    if sweep is None:
        raise ValueError("run_sweep needs a spec with a sweep section")
    trainer = get_trainer(spec.trainer)
    run_id = job.run_id
    run_dir = locations.join(spec.checkpoint_dir, run_id)
    trials_dir = locations.join(run_dir, TRIALS_DIR)
    client = tracking_client(job.tracking_uri)
    relay = MetricRelay(client, run_id, trials_dir, trials=True, experiment_id=job.experiment_id,
                        lineage={"dataset_version": spec.dataset_version, "feature_service": spec.feature_service})
    storage_path, storage_fs = locations.ray_storage(run_dir)
    resources = {"cpu": spec.cpus_per_worker, "gpu": 1.0 if spec.use_gpu else 0.0}
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=spec.to_dict(), trials_dir=str(trials_dir)), resources)
    say(f"sweep of run {run_id} ({spec.trainer}): {sweep.num_samples} trials over {sorted(sweep.search_space)}, "
        f"optimising {sweep.metric} ({sweep.mode})")
    tuner = tune.Tuner(
        trainable,
        param_space=search_space(sweep),
        tune_config=tune.TuneConfig(metric=sweep.metric, mode=sweep.mode, num_samples=sweep.num_samples,
                                    max_concurrent_trials=sweep.max_concurrent_trials,
                                    search_alg=BasicVariantGenerator(random_state=spec.seed)),
        run_config=tune.RunConfig(storage_path=storage_path, storage_filesystem=storage_fs, name=SWEEP_DIR,

                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1), verbose=1),
    )
    began = time.perf_counter()
    relay.start()
    try:
        results = tuner.fit()
    finally:
        relay.stop()
        relay.close_open_children("FAILED")
    say(f"timing sweep_s={time.perf_counter() - began:.3f}")
    if results.num_errors == len(results):
        raise RuntimeError(f"every trial of the sweep failed; the first error: {results.errors[0]!r}")
    best = results.get_best_result(metric=sweep.metric, mode=sweep.mode, scope="last")
    if best.checkpoint is None:
        raise RuntimeError("the best trial left no checkpoint")
    best_config, best_metrics = dict(best.config or {}), dict(best.metrics or {})
    best_child = relay.child_run_id(str(best_metrics.get("trial_id", ""))) or ""
    step = int(best_metrics.get("epoch", 0))
    wanted = {*METRICS_BY_TASK[spec.task], "loss", "val_loss", "threshold"}
    final = {k: float(v) for k, v in best_metrics.items() if k in wanted and isinstance(v, int | float)}
    log_params(client, run_id, {f"best_{k}": v for k, v in best_config.items()})
    log_epoch_metrics(client, run_id, {**final, f"best_{sweep.metric}": final[sweep.metric]}, step)
    set_tags(client, run_id, {TAG_BEST_CHILD: best_child, "workbench.sweep_trials": str(len(results)),
                              "workbench.sweep_failed_trials": str(results.num_errors)})
    say(f"best trial: {best_config} {sweep.metric}={final[sweep.metric]:.4f} (child run {best_child})")
    with best.checkpoint.as_directory() as folder:
        return trainer.log_checkpoint(Path(folder), job)
