"""What a training job should do, as one validated, JSON-serialisable object.

The spec travels from the notebook to the Ray job as a JSON file, is logged as an MLflow artifact and
is read back to resume a run, so it must round-trip exactly and must fail *before* submission, with a
message naming the field, when a value cannot work (a job that dies a minute later in a log is much
harder to act on).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads

from workbench import locations
from workbench.data.task import TASK_KINDS, Task
from workbench.errors import InvalidInput
from workbench.training.trainers import get_trainer

#: Hyper-parameters a sweep may vary, with the type each sampled value must have (each trainer takes
#: the ones in its ``hyperparameters``).
SWEEPABLE: dict[str, type] = {"lr": float, "weight_decay": float, "batch_size": int, "hidden_sizes": list,
                              "dropout": float, "n_estimators": int, "max_depth": int, "learning_rate": float,
                              "subsample": float, "colsample_bytree": float, "min_child_weight": float,
                              "reg_lambda": float}
INTEGER_HYPERPARAMETERS = ("batch_size", "n_estimators", "max_depth")
#: Search-space distributions and their arguments: ``{"lr": {"loguniform": [1e-4, 1e-2]}}``.
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint")
#: Validation metrics logged per task; a sweep optimises one of its task's.
METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "val_loss"),
    "multiclass": ("accuracy", "macro_f1", "log_loss", "val_loss"),
    "regression": ("rmse", "mae", "r2", "val_loss"),
}
SWEEP_METRICS = tuple(dict.fromkeys(m for names in METRICS_BY_TASK.values() for m in names))
#: Metrics where larger is better (the rest are losses or errors).
MAXIMISED = frozenset({"roc_auc", "pr_auc", "precision", "recall", "accuracy", "macro_f1", "r2"})
#: What a sweep optimises when the spec does not say.
DEFAULT_SWEEP_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
THRESHOLD_RULES = ("max_f1", "fixed")


@dataclass(frozen=True)
class SweepSpec:
    """A Ray Tune search run inside the job; each trial becomes an MLflow child run of the spec's run."""

    search_space: dict[str, dict[str, list[Any]]]
    num_samples: int = 4
    metric: str = ""  # empty: the task's default (DEFAULT_SWEEP_METRIC), filled in by TrainingSpec
    mode: str = ""  # empty: "max" for scores, "min" for losses and errors
    max_concurrent_trials: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.search_space, Mapping) or not self.search_space:
            raise InvalidInput("sweep.search_space must be a non-empty mapping such as "
                               "{'lr': {'loguniform': [1e-4, 1e-2]}}")
        space: dict[str, dict[str, list[Any]]] = {}
        for name, domain in self.search_space.items():
            if name not in SWEEPABLE:
                raise InvalidInput(f"sweep.search_space: {name!r} cannot be swept; choose from {sorted(SWEEPABLE)}")
            if not isinstance(domain, Mapping) or len(domain) != 1:
                raise InvalidInput(f"sweep.search_space[{name!r}] must be one distribution such as "
                                   f"{{'choice': [...]}}; got {domain!r}")
            kind, args = next(iter(domain.items()))
            if kind not in DISTRIBUTIONS:
                raise InvalidInput(f"sweep.search_space[{name!r}]: distribution must be one of {DISTRIBUTIONS}, "
                                   f"got {kind!r}")
            args = list(args) if isinstance(args, list | tuple) else args
            if not isinstance(args, list) or not args:
                raise InvalidInput(f"sweep.search_space[{name!r}][{kind!r}] must be a non-empty list")
            if kind == "choice":
                for value in args:
                    _check_hyperparameter(name, value, f"sweep.search_space[{name!r}] choice")
                args = [list(v) if isinstance(v, list | tuple) else v for v in args]
            else:
                if name in ("hidden_sizes",) or len(args) != 2 or not all(_is_number(a) for a in args):
                    raise InvalidInput(f"sweep.search_space[{name!r}][{kind!r}] needs [low, high] numbers "
                                       "(hidden_sizes takes 'choice' only)")
                low, high = args
                if not low < high:
                    raise InvalidInput(f"sweep.search_space[{name!r}]: low must be < high, got {args}")
                if kind == "loguniform" and low <= 0:
                    raise InvalidInput(f"sweep.search_space[{name!r}]: loguniform needs low > 0, got {low}")
                if kind == "randint" and name not in INTEGER_HYPERPARAMETERS:
                    raise InvalidInput(f"sweep.search_space[{name!r}]: randint applies to "
                                       f"{list(INTEGER_HYPERPARAMETERS)} only")
                if name in INTEGER_HYPERPARAMETERS and kind != "randint":
                    raise InvalidInput(f"sweep.search_space[{name!r}] takes 'choice' or 'randint'")
                _check_hyperparameter(name, low, f"sweep.search_space[{name!r}] low")
            space[name] = {kind: args}
        object.__setattr__(self, "search_space", space)
        if not _is_int(self.num_samples) or self.num_samples < 1:
            raise InvalidInput(f"sweep.num_samples must be an integer >= 1, got {self.num_samples!r}")
        if self.metric != "" and self.metric not in SWEEP_METRICS:
            raise InvalidInput(f"sweep.metric must be one of {SWEEP_METRICS}, got {self.metric!r}")
        if self.mode not in ("max", "min", ""):
            raise InvalidInput(f"sweep.mode must be 'max' or 'min', got {self.mode!r}")
        if self.metric and not self.mode:
            object.__setattr__(self, "mode", "max" if self.metric in MAXIMISED else "min")
        if not _is_int(self.max_concurrent_trials) or self.max_concurrent_trials < 1:
            raise InvalidInput(f"sweep.max_concurrent_trials must be an integer >= 1, got "
                               f"{self.max_concurrent_trials!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def for_task(self, task: str) -> SweepSpec:
        """This sweep with its metric (and mode) defaulted for ``task``; refused if the metric is not one
        the task logs."""
        metric = self.metric or DEFAULT_SWEEP_METRIC[task]
        if metric not in METRICS_BY_TASK[task]:
            raise InvalidInput(f"sweep.metric {metric!r} is not logged for a {task} task; choose from "
                               f"{list(METRICS_BY_TASK[task])}")
        mode = self.mode or ("max" if metric in MAXIMISED else "min")
        return dataclasses.replace(self, metric=metric, mode=mode)


@dataclass(frozen=True)
class TrainingSpec:
    """Everything a training job needs: data, task, trainer, model, resources, tracking and lineage.

    ``trainer`` names a registered trainer ("mlp", "xgboost", "custom"; see
    :mod:`workbench.training.trainers`); ``task`` is the prediction kind (``workbench.data.task``):
    ``classes`` (label values, in the order of the model's outputs) and ``positive`` (binary) are taken
    from the data when empty. ``categorical_columns`` None means "the frame's string columns"; the
    logged model encodes them itself, so it takes raw values (and nulls). ``threshold_rule`` "max_f1"
    picks the binary decision threshold that maximises F1 on the validation split; "fixed" keeps
    ``threshold``.

    ``early_stopping_rounds`` (xgboost) stops boosting once the validation loss has not improved for
    that many rounds and keeps the best round's trees (0: boost all ``n_estimators``). It is on by
    default: on rare-positive data, deep trees boosted for every round overfit the train split
    (benchmarks/bench_quality.py: ROC-AUC 0.63 without, 0.70 with, at 100k fraud rows).

    ``use_gpu`` gives each Ray Train worker one GPU; ``gpus`` reserves GPUs for the job's driver process
    (job level, usually 0). ``memory_mb`` reserves driver memory (0: no reservation). ``driver_cpus``
    defaults to 0 because the driver mostly waits, and on a small cluster a reserved CPU would starve
    the workers. Empty ``experiment`` / ``checkpoint_dir`` mean "take it from Settings".

    The "custom" trainer runs ``entrypoint`` (a ``script.py`` relative to ``working_dir``, or
    ``package.module:function``) with ``args``, in ``working_dir`` shipped through Ray's runtime_env,
    logging into the run the workbench created (``MLFLOW_RUN_ID``); its driver reserves ``cpus_per_worker``
    CPUs, one GPU with ``use_gpu`` (plus ``gpus``) and ``memory_mb``.
    """

    frame_path: str
    feature_columns: tuple[str, ...]
    label_column: str = "is_fraud"
    hidden_sizes: tuple[int, ...] = (64, 32)
    lr: float = 1e-3
    batch_size: int = 256
    epochs: int = 5
    weight_decay: float = 0.0
    dropout: float = 0.0
    seed: int = 0
    validation_fraction: float = 0.2
    threshold: float = 0.5
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    gpus: float = 0.0
    memory_mb: int = 0
    driver_cpus: float = 0.0
    allow_cpu_fallback: bool = False
    experiment: str = ""
    run_name: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    dataset_version: str = ""
    feature_service: str = ""
    checkpoint_dir: str = ""
    sweep: SweepSpec | None = None
    trainer: str = "mlp"
    task: str = "binary"
    classes: tuple[Any, ...] = ()
    positive: Any = None
    categorical_columns: tuple[str, ...] | None = None
    threshold_rule: str = "max_f1"
    n_estimators: int = 100
    max_depth: int = 6
    learning_rate: float = 0.1
    subsample: float = 1.0
    colsample_bytree: float = 1.0
    min_child_weight: float = 1.0
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 20  # xgboost: stop when validation loss has not improved for 20 rounds
    entrypoint: str = ""
    working_dir: str = ""
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._normalise()
        self._check_values()
        self._check_task()
        self._check_frame()
        get_trainer(self.trainer).check(self)
        self._check_sweep()

    # construction helpers -----------------------------------------------------------------------
    def _normalise(self) -> None:
        if isinstance(self.feature_columns, str) or not _is_sequence(self.feature_columns):
            raise InvalidInput("feature_columns must be a list of column names, got "
                               f"{self.feature_columns!r}")
        object.__setattr__(self, "feature_columns", tuple(self.feature_columns))
        if isinstance(self.hidden_sizes, str) or not _is_sequence(self.hidden_sizes):
            raise InvalidInput(f"hidden_sizes must be a list of layer widths, got {self.hidden_sizes!r}")
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        for name in ("frame_path", "checkpoint_dir", "working_dir"):
            if isinstance(getattr(self, name), Path):
                object.__setattr__(self, name, str(getattr(self, name)))
        if not isinstance(self.tags, Mapping):
            raise InvalidInput(f"tags must be a mapping of strings, got {self.tags!r}")
        object.__setattr__(self, "tags", dict(self.tags))
        if isinstance(self.sweep, Mapping):
            object.__setattr__(self, "sweep", _sweep_from_dict(self.sweep))
        for name in ("classes", "args"):
            value = getattr(self, name)
            if isinstance(value, str) or not _is_sequence(value):
                raise InvalidInput(f"{name} must be a list, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        if self.categorical_columns is not None:
            if isinstance(self.categorical_columns, str) or not _is_sequence(self.categorical_columns):
                raise InvalidInput(f"categorical_columns must be a list of feature columns or None (detect the "
                                   f"frame's string columns), got {self.categorical_columns!r}")
            object.__setattr__(self, "categorical_columns", tuple(self.categorical_columns))

    def _check_values(self) -> None:
        trainer = get_trainer(self.trainer)  # names the field when the trainer is unknown
        if not isinstance(self.frame_path, str) or (trainer.uses_frame and not self.frame_path):
            raise InvalidInput("frame_path must name a Parquet file or folder")
        if not all(isinstance(c, str) and c for c in self.feature_columns) or (
                trainer.uses_frame and not self.feature_columns):
            raise InvalidInput(f"feature_columns must be non-empty column names, got {self.feature_columns!r}")
        if len(set(self.feature_columns)) != len(self.feature_columns):
            raise InvalidInput(f"feature_columns has duplicates: {list(self.feature_columns)}")
        if not isinstance(self.label_column, str) or not self.label_column:
            raise InvalidInput("label_column must be a column name")
        if self.label_column in self.feature_columns:
            raise InvalidInput(f"the label {self.label_column!r} is also a feature: that leaks the answer")
        for name in ("hidden_sizes", "lr", "batch_size", "weight_decay", "dropout", "n_estimators", "max_depth",
                     "learning_rate", "subsample", "colsample_bytree", "min_child_weight", "reg_lambda"):
            _check_hyperparameter(name, getattr(self, name), name)
        if not _is_int(self.epochs) or self.epochs < 1:
            raise InvalidInput(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not _is_int(self.early_stopping_rounds) or self.early_stopping_rounds < 0:
            raise InvalidInput(f"early_stopping_rounds must be an integer >= 0 (0: off), got "
                               f"{self.early_stopping_rounds!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise InvalidInput(f"seed must be an integer >= 0, got {self.seed!r}")
        if not _is_number(self.validation_fraction) or not 0 < self.validation_fraction < 1:
            raise InvalidInput(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        if not _is_number(self.threshold) or not 0 < self.threshold < 1:
            raise InvalidInput(f"threshold must be in (0, 1), got {self.threshold!r}")
        if self.threshold_rule not in THRESHOLD_RULES:
            raise InvalidInput(f"threshold_rule must be one of {THRESHOLD_RULES}, got {self.threshold_rule!r}")
        if not _is_int(self.num_workers) or self.num_workers < 1:
            raise InvalidInput(f"num_workers must be an integer >= 1, got {self.num_workers!r}")
        for name in ("use_gpu", "allow_cpu_fallback"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInput(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not _is_number(self.cpus_per_worker) or self.cpus_per_worker <= 0:
            raise InvalidInput(f"cpus_per_worker must be > 0, got {self.cpus_per_worker!r}")
        if not _is_number(self.gpus) or self.gpus < 0:
            raise InvalidInput(f"gpus must be >= 0, got {self.gpus!r}")
        if not _is_number(self.driver_cpus) or self.driver_cpus < 0:
            raise InvalidInput(f"driver_cpus must be >= 0, got {self.driver_cpus!r}")
        if not _is_int(self.memory_mb) or self.memory_mb < 0:
            raise InvalidInput(f"memory_mb must be an integer >= 0 (0: no reservation), got {self.memory_mb!r}")
        for name in ("experiment", "run_name", "dataset_version", "feature_service", "checkpoint_dir",
                     "entrypoint", "working_dir"):
            if not isinstance(getattr(self, name), str):
                raise InvalidInput(f"{name} must be a string, got {getattr(self, name)!r}")
        for key, value in self.tags.items():
            if not isinstance(key, str) or not key or not isinstance(value, str):
                raise InvalidInput(f"tags must map non-empty strings to strings, got {key!r}: {value!r}")
        if not all(isinstance(a, str) for a in self.args):
            raise InvalidInput(f"args must be a list of strings, got {list(self.args)!r}")
        if self.sweep is not None and not isinstance(self.sweep, SweepSpec):
            raise InvalidInput(f"sweep must be a SweepSpec or a mapping, got {type(self.sweep).__name__}")

    def _check_task(self) -> None:
        if self.task not in TASK_KINDS:
            raise InvalidInput(f"task must be one of {TASK_KINDS}, got {self.task!r}")
        trainer = get_trainer(self.trainer)
        if self.task not in trainer.tasks:
            raise InvalidInput(f"trainer {self.trainer!r} cannot train a {self.task} task (it takes "
                               f"{list(trainer.tasks)}); choose another trainer or task")
        for value in (*self.classes, self.positive):
            if value is not None and not isinstance(value, str | int | float | bool):
                raise InvalidInput(f"classes and positive must be label values (strings or numbers), got {value!r}")
        if len(set(self.classes)) != len(self.classes):
            raise InvalidInput(f"classes has duplicates: {list(self.classes)}")
        if self.task == "regression" and (self.classes or self.positive is not None):
            raise InvalidInput("classes and positive apply to classification only; a regression task has neither")
        if self.task == "binary" and self.classes and len(self.classes) != 2:
            raise InvalidInput(f"classes of a binary task must be exactly 2 label values, got {list(self.classes)}")
        if self.task == "multiclass" and self.positive is not None:
            raise InvalidInput("positive applies to a binary task only")
        if self.task == "multiclass" and len(self.classes) == 1:
            raise InvalidInput(f"classes of a multiclass task must be 2 or more label values, got {list(self.classes)}")
        if self.positive is not None and self.classes and self.positive not in self.classes:
            raise InvalidInput(f"positive {self.positive!r} is not one of classes {list(self.classes)}")
        if self.categorical_columns is not None:
            unknown = [c for c in self.categorical_columns if c not in self.feature_columns]
            if unknown:
                raise InvalidInput(f"categorical_columns {unknown} are not feature columns "
                                   f"{list(self.feature_columns)}")

    def _check_frame(self) -> None:
        if not self.frame_path:  # a custom trainer that reads its own data
            if self.categorical_columns is None:
                object.__setattr__(self, "categorical_columns", ())
            return
        path = self.frame_path
        try:
            fs, where = locations.resolve(path)
            if not locations.exists(path):
                raise InvalidInput(f"frame_path {path} does not exist: build the training frame first "
                                   "(workbench.features) or pass the path of a Parquet file or folder")
            schema = pads.dataset(where, filesystem=fs, format="parquet").schema
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(f"frame_path {path} is not readable as Parquet: {exc}") from exc
        wanted = [*self.feature_columns, self.label_column]
        missing = [c for c in wanted if c not in schema.names]
        if missing:
            raise InvalidInput(f"the training frame {path} lacks columns {missing}; it has {schema.names}")
        detected = []
        for name in self.feature_columns:
            dtype = schema.field(name).type
            if _is_text(dtype):
                detected.append(name)
            elif not _is_numeric(dtype):
                raise InvalidInput(f"column {name!r} of {path} is {dtype}; the model takes numeric, boolean or "
                                   "string (categorical) columns only: convert or drop it")
        if self.categorical_columns is None:
            object.__setattr__(self, "categorical_columns", tuple(detected))
        else:
            undeclared = [c for c in detected if c not in self.categorical_columns]
            if undeclared:
                raise InvalidInput(f"feature columns {undeclared} hold strings but are not in categorical_columns "
                                   f"{list(self.categorical_columns)}: add them (or leave categorical_columns None)")
        label_type = schema.field(self.label_column).type
        if self.task == "regression" and not (_is_numeric(label_type) and not pa.types.is_boolean(label_type)):
            raise InvalidInput(f"label_column {self.label_column!r} of {path} holds {label_type} values, but a "
                               "regression needs numbers: choose task 'binary' or 'multiclass', or convert it")
        if not (_is_numeric(label_type) or _is_text(label_type)):
            raise InvalidInput(f"label_column {self.label_column!r} of {path} is {label_type}; a label must hold "
                               "numbers, booleans or strings")

    def _check_sweep(self) -> None:
        if self.sweep is None:
            return
        trainer = get_trainer(self.trainer)
        for name in self.sweep.search_space:
            if name not in trainer.hyperparameters:
                raise InvalidInput(f"sweep.search_space: {name!r} is not a hyper-parameter of trainer "
                                   f"{self.trainer!r}; choose from "
                                   f"{[h for h in trainer.hyperparameters if h in SWEEPABLE]}")
        object.__setattr__(self, "sweep", self.sweep.for_task(self.task))

    # derived ------------------------------------------------------------------------------------
    @property
    def wants_gpu(self) -> bool:
        """Whether the spec asks for any GPU (workers or driver)."""
        return self.use_gpu or self.gpus > 0

    def hyperparameters(self) -> dict[str, Any]:
        """The values that shape the model and its training (the trainer's own and the common ones), as
        logged to MLflow params."""
        own = {name: getattr(self, name) for name in get_trainer(self.trainer).hyperparameters}
        own = {k: list(v) if isinstance(v, tuple) else v for k, v in own.items()}
        return {**own, "seed": self.seed, "validation_fraction": self.validation_fraction,
                "threshold": self.threshold, "threshold_rule": self.threshold_rule, "task": self.task,
                "trainer": self.trainer}

    def replace(self, **changes: Any) -> TrainingSpec:
        """A validated copy with some fields changed (new ``feature_columns`` without new
        ``categorical_columns`` re-detect the categorical ones)."""
        if "feature_columns" in changes and "categorical_columns" not in changes:
            changes["categorical_columns"] = None
        return TrainingSpec.from_dict({**self.to_dict(), **changes})

    def _repr_html_(self) -> str:
        """A short card for notebooks (the dataclass repr is one unreadable line of ~40 fields): what
        is trained on what, and the settings that differ from the defaults."""
        from workbench.monitoring import reprs

        fields: dict[str, Any] = {"trainer": self.trainer, "task": self.task, "label": self.label_column,
                                  "inputs": ", ".join(self.feature_columns), "frame": self.frame_path}
        skip = {"frame_path", "feature_columns", "label_column", "trainer", "task", "tags", "categorical_columns"}
        for f in dataclasses.fields(self):
            default = (f.default if f.default is not dataclasses.MISSING else
                       f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            value = getattr(self, f.name)
            if f.name not in skip and value != default:
                fields[f.name] = value
        return reprs.card("Training spec", fields)

    # JSON ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["feature_columns"] = list(self.feature_columns)
        out["hidden_sizes"] = list(self.hidden_sizes)
        out["tags"] = dict(self.tags)
        out["sweep"] = self.sweep.to_dict() if self.sweep else None
        out["classes"] = list(self.classes)
        out["args"] = list(self.args)
        out["categorical_columns"] = None if self.categorical_columns is None else list(self.categorical_columns)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingSpec:
        if not isinstance(data, Mapping):
            raise InvalidInput(f"a training spec must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"unknown training spec fields {unknown}; known: {sorted(known)}")
        try:
            return cls(**dict(data))
        except TypeError as exc:  # a required field is missing
            raise InvalidInput(f"incomplete training spec: {exc}") from exc

    @classmethod
    def from_task(cls, task: Task, frame_path: str | Path, feature_columns: Sequence[str] | None = None,
                  **changes: Any) -> TrainingSpec:
        """A spec for a dataset's :class:`~workbench.data.task.Task`: its label, kind, classes and positive;
        the features default to the frame's columns that are not label, keys, timestamp or excluded."""
        if feature_columns is None:
            fs, where = locations.resolve(frame_path)
            names = (pads.dataset(where, filesystem=fs, format="parquet").schema.names
                     if locations.exists(frame_path) else [])
            feature_columns = task.feature_columns(names)
        base: dict[str, Any] = {"frame_path": str(frame_path), "feature_columns": list(feature_columns),
                                "label_column": task.label, "task": task.kind, "classes": list(task.classes),
                                "positive": task.positive if task.kind == "binary" else None}
        return cls.from_dict({**base, **changes})

    @classmethod
    def from_json(cls, text: str) -> TrainingSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"a training spec must be JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> TrainingSpec:
        """Read a spec written by :meth:`save` (a local path or an ``s3://`` URI)."""
        try:
            return cls.from_json(locations.read_text(path))
        except FileNotFoundError as exc:
            raise InvalidInput(f"no training spec at {path}") from exc

    def save(self, path: str | Path) -> str:
        """Write the spec to a local path or an ``s3://`` URI; return where it is."""
        locations.write_text(path, self.to_json())
        return str(path)


def _sweep_from_dict(data: Mapping[str, Any]) -> SweepSpec:
    known = {f.name for f in dataclasses.fields(SweepSpec)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidInput(f"unknown sweep fields {unknown}; known: {sorted(known)}")
    try:
        return SweepSpec(**dict(data))
    except TypeError as exc:
        raise InvalidInput(f"incomplete sweep spec: {exc}") from exc


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def _is_sequence(value: Any) -> bool:
    return isinstance(value, list | tuple)


def _is_text(dtype: pa.DataType) -> bool:
    if pa.types.is_dictionary(dtype):
        return _is_text(dtype.value_type)
    return bool(pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype))


def _is_numeric(dtype: pa.DataType) -> bool:
    return bool(pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype)
                or pa.types.is_decimal(dtype))


def _check_hyperparameter(name: str, value: Any, where: str) -> None:
    """Raise InvalidInput unless ``value`` is usable for hyper-parameter ``name``."""
    if name == "hidden_sizes":
        if (not _is_sequence(value) or not value
                or not all(_is_int(v) and v >= 1 for v in value)):
            raise InvalidInput(f"{where} must be a non-empty list of layer widths >= 1, got {value!r}")
    elif name == "lr":
        if not _is_number(value) or value <= 0:
            raise InvalidInput(f"{where} (learning rate) must be > 0, got {value!r}")
    elif name == "batch_size":
        if not _is_int(value) or value < 1:
            raise InvalidInput(f"{where} must be an integer >= 1, got {value!r}")
    elif name == "weight_decay":
        if not _is_number(value) or value < 0:
            raise InvalidInput(f"{where} must be >= 0, got {value!r}")
    elif name == "dropout":
        if not _is_number(value) or not 0 <= value < 1:
            raise InvalidInput(f"{where} must be in [0, 1), got {value!r}")
    elif name in ("n_estimators", "max_depth"):
        if not _is_int(value) or value < 1:
            raise InvalidInput(f"{where} must be an integer >= 1, got {value!r}")
    elif name in ("learning_rate",):
        if not _is_number(value) or value <= 0:
            raise InvalidInput(f"{where} must be > 0, got {value!r}")
    elif name in ("subsample", "colsample_bytree"):
        if not _is_number(value) or not 0 < value <= 1:
            raise InvalidInput(f"{where} must be in (0, 1], got {value!r}")
    elif name in ("min_child_weight", "reg_lambda"):
        if not _is_number(value) or value < 0:
            raise InvalidInput(f"{where} must be >= 0, got {value!r}")
