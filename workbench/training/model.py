"""The tabular fraud model: a standardiser fitted on the training split and a small MLP producing logits.

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
    """Linear → ReLU (→ Dropout) blocks, then one output logit (apply a sigmoid for a probability)."""

    def __init__(self, n_features: int, hidden_sizes: Sequence[int], dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden_sizes:
            layers.append(nn.Linear(width, size))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def linear_layers(model: nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (weight, bias) of each Linear layer in order: all a plain forward pass needs at serving time."""
    return [(m.weight.detach().cpu().numpy().astype(np.float32), m.bias.detach().cpu().numpy().astype(np.float32))
            for m in model.modules() if isinstance(m, nn.Linear)]


def predict_proba(model: nn.Module, scaler: Standardizer, x: np.ndarray, batch_size: int = 65_536) -> np.ndarray:
    """Fraud probabilities for raw (unscaled) feature rows, computed in eval mode without gradients."""
    model.eval()
    device = next(model.parameters()).device
    scaled = scaler.transform(x)
    out = []
    with torch.no_grad():
        for start in range(0, len(scaled), batch_size):
            chunk = torch.from_numpy(scaled[start:start + batch_size]).to(device)
            out.append(torch.sigmoid(model(chunk)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
