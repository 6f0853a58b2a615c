"""The training loop itself, free of Ray: the same code runs in a Ray Train worker, a Tune trial and the
in-process benchmark baseline, so they can be compared and unit-tested on a laptop.

Each epoch's batch order and dropout draws are seeded by (seed, epoch), so a job resumed from the
checkpoint of epoch k runs epoch k+1 exactly as an uninterrupted job would.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from workbench.training.checkpoint import TrainingState
from workbench.training.frame import TrainingData, shard
from workbench.training.metrics import choose_threshold, task_metrics
from workbench.training.model import FraudMLP, Standardizer, logits_of, outputs_for_task
from workbench.training.spec import TrainingSpec

#: Called after every epoch with the new state and that epoch's metrics; reports, checkpoints and logs.
EpochCallback = Callable[[TrainingState, dict[str, float]], None]


def _identity(model: nn.Module) -> nn.Module:
    return model


def train_model(
    spec: TrainingSpec,
    data: TrainingData,
    on_epoch: EpochCallback,
    *,
    start: TrainingState | None = None,
    rank: int = 0,
    world_size: int = 1,
    prepare_model: Callable[[nn.Module], nn.Module] = _identity,
    device: torch.device | None = None,
    all_reduce_sum: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> TrainingState | None:
    """Train from ``start`` (or from scratch) up to ``spec.epochs``; return the last state (None if none ran).

    ``prepare_model`` wraps the model for data parallelism (Ray Train's ``prepare_model``); every worker
    trains on its own equal shard of the train split and evaluates the whole validation split.
    ``all_reduce_sum`` sums a tensor over workers so the reported loss is the global mean.

    The loss follows the task: binary cross-entropy without class weights (so the scores stay
    probabilities), softmax cross-entropy, or mean squared error on the standardised target.
    """
    device = device or torch.device("cpu")
    torch.manual_seed(spec.seed)
    coding = data.coding
    task = coding.task
    n_outputs = len(coding.classes) if task == "multiclass" else 1
    scaler = start.scaler if start is not None else Standardizer.fit(data.x_train)
    if start is not None:
        y_mean, y_std = start.y_mean, start.y_std
    elif task == "regression":
        y_mean, y_std = float(np.mean(data.y_train)), float(np.std(data.y_train)) or 1.0
    else:
        y_mean, y_std = 0.0, 1.0
    model = FraudMLP(data.x_train.shape[1], spec.hidden_sizes, spec.dropout, n_outputs)
    if start is not None:
        model.load_state_dict(start.model_state)
    model.to(device)
    trained = prepare_model(model)
    optimizer = torch.optim.AdamW(trained.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    if start is not None:
        optimizer.load_state_dict(start.optimizer_state)
    loss_fn = _LOSSES[task]()

    def target(y: np.ndarray) -> torch.Tensor:
        if task == "multiclass":
            return torch.from_numpy(y.astype(np.int64))
        return torch.from_numpy(((y.astype(np.float64) - y_mean) / y_std).astype(np.float32))

    rows = shard(len(data.x_train), rank, world_size)
    x_train = torch.from_numpy(scaler.transform(data.x_train[rows]))
    y_train = target(data.y_train[rows])
    x_val = scaler.transform(data.x_val)
    y_val = target(data.y_val)
    first_epoch = start.epoch + 1 if start is not None else 0
    state: TrainingState | None = None
    for epoch in range(first_epoch, spec.epochs):
        began = time.perf_counter()
        torch.manual_seed(spec.seed * 1_000_003 + epoch)
        order = torch.randperm(len(x_train))
        trained.train()
        total = torch.zeros(2, dtype=torch.float64)
        for begin in range(0, len(order), spec.batch_size):
            batch = order[begin:begin + spec.batch_size]
            xb, yb = x_train[batch].to(device), y_train[batch].to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(trained(xb), yb)
            loss.backward()
            optimizer.step()
            total += torch.tensor([float(loss.detach()) * len(batch), len(batch)], dtype=torch.float64)
        if all_reduce_sum is not None:
            total = all_reduce_sum(total)
        model.eval()
        with torch.no_grad():
            val_logits = model(torch.from_numpy(x_val).to(device))
            val_loss = float(loss_fn(val_logits, y_val.to(device)))
        outputs = outputs_for_task(task, val_logits.cpu().numpy(), y_mean, y_std)
        threshold = (choose_threshold(data.y_val, outputs, spec.threshold_rule, spec.threshold)
                     if task == "binary" else spec.threshold)
        metrics = {"loss": float(total[0]) / max(float(total[1]), 1.0), "val_loss": val_loss,
                   **task_metrics(task, data.y_val, outputs, threshold),
                   "epoch_time_s": time.perf_counter() - began}
        state = TrainingState(
            epoch=epoch,
            model_state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            optimizer_state=optimizer.state_dict(),
            scaler=scaler,
            feature_columns=list(spec.feature_columns),
            hidden_sizes=list(spec.hidden_sizes),
            dropout=spec.dropout,
            metrics=metrics,
            hyperparameters=spec.hyperparameters(),
            task=task,
            classes=list(coding.classes),
            positive=coding.positive,
            preprocessor=data.preprocessor.to_dict() if data.preprocessor is not None else None,
            n_inputs=int(data.x_train.shape[1]),
            n_outputs=n_outputs,
            y_mean=y_mean,
            y_std=y_std,
        )
        on_epoch(state, metrics)
    return state


_LOSSES: dict[str, Callable[[], nn.Module]] = {
    "binary": nn.BCEWithLogitsLoss, "multiclass": nn.CrossEntropyLoss, "regression": nn.MSELoss}


def state_outputs(state: TrainingState, x: np.ndarray) -> np.ndarray:
    """The task's outputs for encoded rows under a saved state."""
    return outputs_for_task(state.task, logits_of(state.build_model(), state.scaler, x), state.y_mean, state.y_std)


def validation_probabilities(state: TrainingState, data: TrainingData) -> np.ndarray:
    """The task's outputs on the validation split under a saved state (binary: probabilities)."""
    return state_outputs(state, data.x_val)
