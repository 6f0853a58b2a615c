"""One epoch's training state on disk: what a stopped or failed job needs to carry on exactly there.

A checkpoint holds the model and optimizer state, the epoch it finished, the standardiser, the
architecture and that epoch's metrics (so a resumed job can fill in a metric that was checkpointed but
not yet logged). Checkpoint folders are named ``epoch_00007`` so the newest is found without Ray.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from workbench import locations
from workbench.training.model import FraudMLP, Standardizer

STATE_FILE = "state.pt"
_EPOCH_DIR = re.compile(r"^epoch_(\d{5,})$")


def epoch_dir_name(epoch: int) -> str:
    return f"epoch_{epoch:05d}"


@dataclass
class TrainingState:
    """Everything saved after an epoch (``epoch`` is the last *finished* epoch, counted from 0)."""

    epoch: int
    model_state: dict[str, Any]
    optimizer_state: dict[str, Any]
    scaler: Standardizer
    feature_columns: list[str]
    hidden_sizes: list[int]
    dropout: float
    metrics: dict[str, float] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    task: str = "binary"
    classes: list[Any] = field(default_factory=lambda: [0, 1])
    positive: Any = 1
    preprocessor: dict[str, Any] | None = None  # Preprocessor.to_dict(); None: raw numeric columns
    n_inputs: int = 0  # encoded width (0: one input per feature column)
    n_outputs: int = 1
    y_mean: float = 0.0  # regression: the model predicts (y - y_mean) / y_std
    y_std: float = 1.0

    def build_model(self) -> FraudMLP:
        """The model with this state's weights, on CPU, in eval mode."""
        model = FraudMLP(self.n_inputs or len(self.feature_columns), self.hidden_sizes, self.dropout,
                         self.n_outputs)
        model.load_state_dict(self.model_state)
        model.eval()
        return model

    def save(self, folder: str | Path) -> Path:
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        payload = {
            "epoch": self.epoch,
            "model_state": {k: v.detach().cpu() for k, v in self.model_state.items()},
            "optimizer_state": self.optimizer_state,
            "scaler": self.scaler.to_dict(),
            "feature_columns": list(self.feature_columns),
            "hidden_sizes": list(self.hidden_sizes),
            "dropout": float(self.dropout),
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "hyperparameters": self.hyperparameters,
            "task": self.task,
            "classes": list(self.classes),
            "positive": self.positive,
            "preprocessor": self.preprocessor,
            "n_inputs": int(self.n_inputs),
            "n_outputs": int(self.n_outputs),
            "y_mean": float(self.y_mean),
            "y_std": float(self.y_std),
        }
        tmp = out / (STATE_FILE + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(out / STATE_FILE)  # a reader never sees half a file
        return out

    @classmethod
    def load(cls, folder: str | Path) -> TrainingState:
        path = Path(folder) / STATE_FILE
        payload = torch.load(path, map_location="cpu", weights_only=True)
        return cls(
            epoch=int(payload["epoch"]),
            model_state=payload["model_state"],
            optimizer_state=payload["optimizer_state"],
            scaler=Standardizer.from_dict(payload["scaler"]),
            feature_columns=list(payload["feature_columns"]),
            hidden_sizes=[int(v) for v in payload["hidden_sizes"]],
            dropout=float(payload["dropout"]),
            metrics=dict(payload.get("metrics", {})),
            hyperparameters=dict(payload.get("hyperparameters", {})),
            task=str(payload.get("task", "binary")),
            classes=list(payload.get("classes", [0, 1])),
            positive=payload.get("positive", 1),
            preprocessor=payload.get("preprocessor"),
            n_inputs=int(payload.get("n_inputs", 0)),
            n_outputs=int(payload.get("n_outputs", 1)),
            y_mean=float(payload.get("y_mean", 0.0)),
            y_std=float(payload.get("y_std", 1.0)),
        )


def find_latest_checkpoint(root: str | Path) -> str | None:
    """The newest loadable ``epoch_*`` checkpoint folder anywhere under ``root`` (a local folder or an
    ``s3://`` prefix), or None.

    Folders whose state file is missing or unreadable (a job killed while writing) are skipped.
    """
    candidates = sorted(((int(m.group(1)), rel) for rel, folder in locations.list_tree(root)
                         if folder and (m := _EPOCH_DIR.match(rel.rsplit("/", 1)[-1]))), reverse=True)
    for _, rel in candidates:
        found = locations.join(root, rel)
        if not locations.exists(locations.join(found, STATE_FILE)):
            continue
        try:
            with locations.local_copy(found) as folder:
                TrainingState.load(folder)
        except Exception:  # noqa: BLE001 - any unreadable checkpoint is skipped, not fatal
            continue
        return found
    return None
