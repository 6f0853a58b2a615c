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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads

from workbench.errors import InvalidInput

#: Hyper-parameters a sweep may vary, with the type each sampled value must have.
SWEEPABLE: dict[str, type] = {"lr": float, "weight_decay": float, "batch_size": int, "hidden_sizes": list,
                              "dropout": float}
#: Search-space distributions and their arguments: ``{"lr": {"loguniform": [1e-4, 1e-2]}}``.
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint")
SWEEP_METRICS = ("roc_auc", "pr_auc", "precision", "recall", "val_loss")


@dataclass(frozen=True)
class SweepSpec:
    """A Ray Tune search run inside the job; each trial becomes an MLflow child run of the spec's run."""

    search_space: dict[str, dict[str, list[Any]]]
    num_samples: int = 4
    metric: str = "roc_auc"
    mode: str = "max"
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
                if kind == "randint" and name != "batch_size":
                    raise InvalidInput(f"sweep.search_space[{name!r}]: randint applies to batch_size only")
                if name == "batch_size" and kind != "randint":
                    raise InvalidInput("sweep.search_space['batch_size'] takes 'choice' or 'randint'")
                _check_hyperparameter(name, low, f"sweep.search_space[{name!r}] low")
            space[name] = {kind: args}
        object.__setattr__(self, "search_space", space)
        if not _is_int(self.num_samples) or self.num_samples < 1:
            raise InvalidInput(f"sweep.num_samples must be an integer >= 1, got {self.num_samples!r}")
        if self.metric not in SWEEP_METRICS:
            raise InvalidInput(f"sweep.metric must be one of {SWEEP_METRICS}, got {self.metric!r}")
        if self.mode not in ("max", "min"):
            raise InvalidInput(f"sweep.mode must be 'max' or 'min', got {self.mode!r}")
        if not _is_int(self.max_concurrent_trials) or self.max_concurrent_trials < 1:
            raise InvalidInput(f"sweep.max_concurrent_trials must be an integer >= 1, got "
                               f"{self.max_concurrent_trials!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainingSpec:
    """Everything a training job needs: data, model, resources, tracking and lineage.

    ``use_gpu`` gives each Ray Train worker one GPU; ``gpus`` reserves GPUs for the job's driver process
    (job level, usually 0). ``memory_mb`` reserves driver memory (0: no reservation). ``driver_cpus``
    defaults to 0 because the driver mostly waits, and on a small cluster a reserved CPU would starve
    the workers. Empty ``experiment`` / ``checkpoint_dir`` mean "take it from Settings".
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

    def __post_init__(self) -> None:
        self._normalise()
        self._check_values()
        self._check_frame()

    # construction helpers -----------------------------------------------------------------------
    def _normalise(self) -> None:
        if isinstance(self.feature_columns, str) or not _is_sequence(self.feature_columns):
            raise InvalidInput("feature_columns must be a list of column names, got "
                               f"{self.feature_columns!r}")
        object.__setattr__(self, "feature_columns", tuple(self.feature_columns))
        if isinstance(self.hidden_sizes, str) or not _is_sequence(self.hidden_sizes):
            raise InvalidInput(f"hidden_sizes must be a list of layer widths, got {self.hidden_sizes!r}")
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        if isinstance(self.frame_path, Path):
            object.__setattr__(self, "frame_path", str(self.frame_path))
        if isinstance(self.checkpoint_dir, Path):
            object.__setattr__(self, "checkpoint_dir", str(self.checkpoint_dir))
        if not isinstance(self.tags, Mapping):
            raise InvalidInput(f"tags must be a mapping of strings, got {self.tags!r}")
        object.__setattr__(self, "tags", dict(self.tags))
        if isinstance(self.sweep, Mapping):
            object.__setattr__(self, "sweep", _sweep_from_dict(self.sweep))

    def _check_values(self) -> None:
        if not isinstance(self.frame_path, str) or not self.frame_path:
            raise InvalidInput("frame_path must name a Parquet file or folder")
        if not self.feature_columns or not all(isinstance(c, str) and c for c in self.feature_columns):
            raise InvalidInput(f"feature_columns must be non-empty column names, got {self.feature_columns!r}")
        if len(set(self.feature_columns)) != len(self.feature_columns):
            raise InvalidInput(f"feature_columns has duplicates: {list(self.feature_columns)}")
        if not isinstance(self.label_column, str) or not self.label_column:
            raise InvalidInput("label_column must be a column name")
        if self.label_column in self.feature_columns:
            raise InvalidInput(f"the label {self.label_column!r} is also a feature: that leaks the answer")
        _check_hyperparameter("hidden_sizes", self.hidden_sizes, "hidden_sizes")
        _check_hyperparameter("lr", self.lr, "lr")
        _check_hyperparameter("batch_size", self.batch_size, "batch_size")
        _check_hyperparameter("weight_decay", self.weight_decay, "weight_decay")
        _check_hyperparameter("dropout", self.dropout, "dropout")
        if not _is_int(self.epochs) or self.epochs < 1:
            raise InvalidInput(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise InvalidInput(f"seed must be an integer >= 0, got {self.seed!r}")
        if not _is_number(self.validation_fraction) or not 0 < self.validation_fraction < 1:
            raise InvalidInput(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        if not _is_number(self.threshold) or not 0 < self.threshold < 1:
            raise InvalidInput(f"threshold must be in (0, 1), got {self.threshold!r}")
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
        for name in ("experiment", "run_name", "dataset_version", "feature_service", "checkpoint_dir"):
            if not isinstance(getattr(self, name), str):
                raise InvalidInput(f"{name} must be a string, got {getattr(self, name)!r}")
        for key, value in self.tags.items():
            if not isinstance(key, str) or not key or not isinstance(value, str):
                raise InvalidInput(f"tags must map non-empty strings to strings, got {key!r}: {value!r}")
        if self.sweep is not None and not isinstance(self.sweep, SweepSpec):
            raise InvalidInput(f"sweep must be a SweepSpec or a mapping, got {type(self.sweep).__name__}")

    def _check_frame(self) -> None:
        path = Path(self.frame_path)
        if not path.exists():
            raise InvalidInput(f"frame_path {path} does not exist: build the training frame first "
                               "(workbench.features) or pass the path of a Parquet file or folder")
        try:
            schema = pads.dataset(str(path), format="parquet").schema
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(f"frame_path {path} is not readable as Parquet: {exc}") from exc
        wanted = [*self.feature_columns, self.label_column]
        missing = [c for c in wanted if c not in schema.names]
        if missing:
            raise InvalidInput(f"the training frame {path} lacks columns {missing}; it has {schema.names}")
        for name in wanted:
            dtype = schema.field(name).type
            if not (pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype)):
                raise InvalidInput(f"column {name!r} of {path} is {dtype}; the model takes numeric or boolean "
                                   "columns only (encode categories as features first)")

    # derived ------------------------------------------------------------------------------------
    @property
    def wants_gpu(self) -> bool:
        """Whether the spec asks for any GPU (workers or driver)."""
        return self.use_gpu or self.gpus > 0

    def hyperparameters(self) -> dict[str, Any]:
        """The values that shape the model and its training, as logged to MLflow params."""
        return {"hidden_sizes": list(self.hidden_sizes), "lr": self.lr, "batch_size": self.batch_size,
                "epochs": self.epochs, "weight_decay": self.weight_decay, "dropout": self.dropout,
                "seed": self.seed, "validation_fraction": self.validation_fraction, "threshold": self.threshold}

    def replace(self, **changes: Any) -> TrainingSpec:
        """A validated copy with some fields changed."""
        return TrainingSpec.from_dict({**self.to_dict(), **changes})

    # JSON ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["feature_columns"] = list(self.feature_columns)
        out["hidden_sizes"] = list(self.hidden_sizes)
        out["tags"] = dict(self.tags)
        out["sweep"] = self.sweep.to_dict() if self.sweep else None
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
    def from_json(cls, text: str) -> TrainingSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"a training spec must be JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> TrainingSpec:
        """Read a spec written by :meth:`save`."""
        try:
            return cls.from_json(Path(path).read_text())
        except FileNotFoundError as exc:
            raise InvalidInput(f"no training spec at {path}") from exc

    def save(self, path: str | Path) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self.to_json())
        return out


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
