"""The built-in "xgboost" trainer: gradient-boosted trees, one Ray task, or Ray Train's ``XGBoostTrainer``
when the spec asks for several workers.

Each worker reads the frame itself (Ray Data shards through ``datasets=`` materialised ~500x slower on
a small machine, where the training worker holds the CPU the data tasks need), encodes it with the
model's preprocessor (categories as ordinal codes, nulls left to XGBoost's own missing-value routing)
and trains on its shard of the train split; XGBoost's collective (set up by Ray Train) combines them.
Per-round train/validation loss goes to MLflow through metric files, as for the MLP; the full task
metrics come from the logged model at the end (:mod:`workbench.training.evaluation`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench import locations
from workbench.training.trainers import JobContext, Trainer, TrainOutcome, TrialReport

if TYPE_CHECKING:
    import xgboost

    from workbench.training.frame import TrainingData
    from workbench.training.spec import TrainingSpec

BOOSTER_FILE = "booster.json"
STATE_FILE = "xgb_state.json"
METRICS_DIR = "metrics"
#: task → (objective, the eval metric logged as loss / val_loss per round)
OBJECTIVES = {"binary": ("binary:logistic", "logloss"), "multiclass": ("multi:softprob", "mlogloss"),
              "regression": ("reg:squarederror", "rmse")}

RoundCallback = Callable[[int, dict[str, float]], None]


def booster_params(spec: TrainingSpec, n_classes: int) -> dict[str, Any]:
    objective, metric = OBJECTIVES[spec.task]
    params: dict[str, Any] = {
        "objective": objective, "eval_metric": metric, "max_depth": spec.max_depth, "eta": spec.learning_rate,
        "subsample": spec.subsample, "colsample_bytree": spec.colsample_bytree,
        "min_child_weight": spec.min_child_weight, "lambda": spec.reg_lambda, "seed": spec.seed,
        "tree_method": "hist", "nthread": max(1, int(spec.cpus_per_worker))}
    if spec.task == "multiclass":
        params["num_class"] = n_classes
    if spec.use_gpu:
        params["device"] = "cuda"
    return params


def fit_booster(spec: TrainingSpec, data: TrainingData, on_round: RoundCallback | None = None,
                rows: np.ndarray | None = None, extra_callbacks: list[Any] | None = None) -> xgboost.Booster:
    """Train on ``data`` (ordinal encoding; ``rows`` of the train split, default all) in this process."""
    import xgboost

    _, metric = OBJECTIVES[spec.task]
    x_train, y_train = (data.x_train, data.y_train) if rows is None else (data.x_train[rows], data.y_train[rows])
    dtrain = xgboost.DMatrix(x_train, label=y_train, missing=np.nan)
    dval = xgboost.DMatrix(data.x_val, label=data.y_val, missing=np.nan)

    class _Rounds(xgboost.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            if on_round is not None:
                on_round(epoch, {"loss": float(evals_log["train"][metric][-1]),
                                 "val_loss": float(evals_log["validation"][metric][-1])})
            return False

    booster = xgboost.train(booster_params(spec, len(data.coding.classes)), dtrain,
                            num_boost_round=spec.n_estimators, evals=[(dtrain, "train"), (dval, "validation")],
                            early_stopping_rounds=spec.early_stopping_rounds or None, verbose_eval=False,
                            callbacks=[_Rounds(), *(extra_callbacks or [])])
    if spec.early_stopping_rounds and getattr(booster, "best_iteration", None) is not None:
        booster = booster[: int(booster.best_iteration) + 1]
    return booster


def save_bundle(folder: Path, booster: xgboost.Booster, data: TrainingData, spec: TrainingSpec,
                metrics: dict[str, float] | None = None) -> Path:
    """The model's artifacts (booster, meta) and the last step in ``folder`` (a checkpoint)."""
    from workbench.training.export import write_meta

    folder.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(folder / BOOSTER_FILE))
    assert data.preprocessor is not None
    write_meta(folder, {"model": "xgboost", "feature_columns": list(spec.feature_columns), "task": spec.task,
                        "classes": list(data.coding.classes), "positive": data.coding.positive,
                        "preprocessor": data.preprocessor.to_dict(), "rounds": booster.num_boosted_rounds()})
    (folder / STATE_FILE).write_text(json.dumps({"step": booster.num_boosted_rounds() - 1,
                                                 "metrics": metrics or {}}))
    return folder


def _boost(spec_dict: dict[str, Any], metrics_dir: str, rank: int, world_size: int) -> tuple[Any, Any, Any]:
    """Read, encode and train one worker's share; rank 0 writes the per-round metric files."""
    from workbench.training.frame import load_training_data, shard
    from workbench.training.joblog import say
    from workbench.training.metric_files import write_epoch_metrics
    from workbench.training.spec import TrainingSpec

    began = time.perf_counter()
    spec = TrainingSpec.from_dict(spec_dict)
    data = load_training_data(spec, mode="ordinal")
    rows = shard(len(data.x_train), rank, world_size) if world_size > 1 else None
    if rank == 0:
        say(f"timing worker_setup_s={time.perf_counter() - began:.3f} rows_train={len(data.x_train)} "
            f"rows_val={len(data.x_val)} world_size={world_size}")
    if world_size > 1:
        say(f"worker {rank} of {world_size} trains on {len(rows) if rows is not None else 0} of "
            f"{len(data.x_train)} train rows; XGBoost's collective combines the shards")

    def on_round(epoch: int, metrics: dict[str, float]) -> None:
        if rank == 0:
            write_epoch_metrics(metrics_dir, epoch, metrics)

    fit_began = time.perf_counter()
    booster = fit_booster(spec, data, on_round, rows)
    if rank == 0:
        say(f"timing boost_s={time.perf_counter() - fit_began:.3f} rounds={booster.num_boosted_rounds()}")
    return spec, data, booster


def xgb_worker(config: dict[str, Any]) -> None:
    """What every Ray Train worker runs (``train_loop_config``: ``spec``, ``metrics_dir``)."""
    import ray.train

    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    spec, data, booster = _boost(config["spec"], config["metrics_dir"], rank, world_size)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            save_bundle(Path(tmp), booster, data, spec)
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report({"rounds": booster.num_boosted_rounds()}, checkpoint=checkpoint)


def boost_task(spec_dict: dict[str, Any], metrics_dir: str) -> dict[str, bytes]:
    """One worker as a plain Ray task: the bundle's files come back through the object store."""
    spec, data, booster = _boost(spec_dict, metrics_dir, 0, 1)
    with tempfile.TemporaryDirectory() as tmp:
        save_bundle(Path(tmp), booster, data, spec)
        return {p.name: p.read_bytes() for p in Path(tmp).iterdir()}


class XGBoostTreesTrainer(Trainer):
    hyperparameters = ("n_estimators", "max_depth", "learning_rate", "subsample", "colsample_bytree",
                       "min_child_weight", "reg_lambda", "early_stopping_rounds")

    def total_steps(self, spec: TrainingSpec) -> int:
        return spec.n_estimators

    def train(self, job: JobContext) -> TrainOutcome:
        """One worker: a Ray task (a worker group's controller and placement group cost more than these
        models take to train); several: Ray Train's ``XGBoostTrainer``, which sets up XGBoost's collective."""
        from workbench.training.joblog import say
        from workbench.training.relay import MetricRelay
        from workbench.training.tracking import tracking_client

        spec = job.spec
        metrics_dir = locations.join(spec.checkpoint_dir, job.run_id, METRICS_DIR)
        relay = MetricRelay(tracking_client(job.tracking_uri), job.run_id, metrics_dir)
        say(f"starting run {job.run_id}: xgboost, {spec.n_estimators} rounds on {spec.num_workers} worker(s), "
            f"use_gpu={spec.use_gpu}")
        began = time.perf_counter()
        relay.start()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                if spec.num_workers == 1:
                    self._fit_in_task(spec, metrics_dir, folder)
                else:
                    self._fit_on_ray_train(job, metrics_dir, folder)
                relay.stop()
                say(f"timing fit_s={time.perf_counter() - began:.3f}")
                logged = {k for _, metrics in _read_rounds(metrics_dir) for k in metrics}
                return self._log_folder(folder, job, logged)
        finally:
            relay.stop()

    @staticmethod
    def _fit_in_task(spec: TrainingSpec, metrics_dir: str, folder: Path) -> None:
        import ray

        task = ray.remote(num_cpus=spec.cpus_per_worker, num_gpus=1 if spec.use_gpu else 0, max_retries=0)(boost_task)
        for name, content in ray.get(task.remote(spec.to_dict(), metrics_dir)).items():
            (folder / name).write_bytes(content)

    @staticmethod
    def _fit_on_ray_train(job: JobContext, metrics_dir: str, folder: Path) -> None:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.xgboost import XGBoostTrainer

        spec = job.spec
        storage_path, storage_fs = locations.ray_storage(spec.checkpoint_dir)
        trainer = XGBoostTrainer(
            xgb_worker,
            train_loop_config={"spec": spec.to_dict(), "metrics_dir": metrics_dir},
            scaling_config=ScalingConfig(num_workers=spec.num_workers, use_gpu=spec.use_gpu,
                                         resources_per_worker={"CPU": spec.cpus_per_worker}),
            run_config=RunConfig(storage_path=storage_path, storage_filesystem=storage_fs, name=job.run_id),
        )
        result = trainer.fit()
        if result.checkpoint is None:
            raise RuntimeError(f"xgboost training of run {job.run_id} ended without a model checkpoint")
        with result.checkpoint.as_directory() as saved:
            for path in Path(saved).iterdir():
                if path.is_file():
                    shutil.copy(path, folder / path.name)

    def trial(self, spec: TrainingSpec, report: TrialReport) -> None:
        from workbench.training.frame import load_training_data
        from workbench.training.metrics import choose_threshold, task_metrics

        data = load_training_data(spec, mode="ordinal")
        booster = fit_booster(spec, data, lambda epoch, metrics: report(epoch, metrics, None))
        import xgboost

        output = booster.predict(xgboost.DMatrix(data.x_val, missing=np.nan))
        threshold = (choose_threshold(data.y_val, output, spec.threshold_rule, spec.threshold)
                     if spec.task == "binary" else spec.threshold)
        metrics = task_metrics(spec.task, data.y_val, output, threshold)
        step = booster.num_boosted_rounds()

        def save(folder: Path) -> None:
            save_bundle(Path(folder), booster, data, spec, metrics)

        report(step, metrics, save)

    def log_checkpoint(self, folder: Path, job: JobContext) -> TrainOutcome:
        state = json.loads((Path(folder) / STATE_FILE).read_text())
        return self._log_folder(Path(folder), job, set(state.get("metrics", {})))

    @staticmethod
    def _log_folder(folder: Path, job: JobContext, logged: set[str]) -> TrainOutcome:
        from workbench.training.evaluation import finish_model

        state = json.loads((folder / STATE_FILE).read_text())
        with tempfile.TemporaryDirectory() as tmp:
            for name in (BOOSTER_FILE, "meta.json"):
                shutil.copy(folder / name, Path(tmp) / name)
            artifacts = {"booster": Path(tmp) / BOOSTER_FILE, "meta": Path(tmp) / "meta.json"}
            step = int(state["step"]) + (1 if state.get("metrics") else 0)
            return finish_model(job, artifacts, step, logged)


def _read_rounds(metrics_dir: str) -> list[tuple[int, dict[str, float]]]:
    from workbench.training.metric_files import read_epoch_metrics

    return read_epoch_metrics(metrics_dir)
