"""The tabular MLP: a standardiser fitted on the training split and a small MLP producing logits (one for
binary and regression, one per class for multiclass).

The standardiser is part of the model (it is saved in every checkpoint and in the logged MLflow model),
because a model fed unscaled features at serving time silently predicts nonsense.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Standardizer:
    """Per-feature mean and standard deviation; constant columns get std 1 so they map to 0."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(mean.astype(np.float32), std.astype(np.float32))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> Standardizer:
        return cls(np.asarray(data["mean"], dtype=np.float32), np.asarray(data["std"], dtype=np.float32))


class FraudMLP(nn.Module):
    """Linear → ReLU (→ Dropout) blocks, then ``n_outputs`` outputs (one: squeezed to a vector; a sigmoid
    makes it a probability)."""

    def __init__(self, n_features: int, hidden_sizes: Sequence[int], dropout: float = 0.0,
                 n_outputs: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden_sizes:
            layers.append(nn.Linear(width, size))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)
        self.n_outputs = n_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out.squeeze(-1) if self.n_outputs == 1 else out


TabularMLP = FraudMLP


def linear_layers(model: nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (weight, bias) of each Linear layer in order: all a plain forward pass needs at serving time."""
    return [(m.weight.detach().cpu().numpy().astype(np.float32), m.bias.detach().cpu().numpy().astype(np.float32))
            for m in model.modules() if isinstance(m, nn.Linear)]


def logits_of(model: nn.Module, scaler: Standardizer, x: np.ndarray, batch_size: int = 65_536) -> np.ndarray:
    """The model's raw outputs for unscaled (encoded) rows, in eval mode without gradients."""
    model.eval()
    device = next(model.parameters()).device
    scaled = scaler.transform(x)
    out = []
    with torch.no_grad():
        for start in range(0, len(scaled), batch_size):
            out.append(model(torch.from_numpy(scaled[start:start + batch_size]).to(device)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def outputs_for_task(task: str, logits: np.ndarray, y_mean: float = 0.0, y_std: float = 1.0) -> np.ndarray:
    """Logits → the task's output: P(positive), class probabilities, or the value on the label's scale."""
    z = np.asarray(logits, dtype=np.float64)
    if task == "binary":
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0))))
    if task == "multiclass":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True))
    return np.asarray(z * y_std + y_mean)


def predict_proba(model: nn.Module, scaler: Standardizer, x: np.ndarray, batch_size: int = 65_536) -> np.ndarray:
    """Binary probabilities for raw (unscaled) feature rows, computed in eval mode without gradients."""
    model.eval()
    device = next(model.parameters()).device
    scaled = scaler.transform(x)
    out = []
    with torch.no_grad():
        for start in range(0, len(scaled), batch_size):
            chunk = torch.from_numpy(scaled[start:start + batch_size]).to(device)
            out.append(torch.sigmoid(model(chunk)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
