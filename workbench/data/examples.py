"""The built-in example problems: data generated here, with the Task each supports.

``fraud`` (binary, card transactions) is the default of ``make demo``. ``deliveries`` is a regression of
food-delivery times whose columns look like a user's own export: names with spaces, dots and non-ASCII
letters, a categorical column with nulls, a numeric column with nulls, an id to exclude. It keeps the
code honest: nothing in the lifecycle may assume the fraud columns.

Both are generated (nothing is downloaded), deterministic per seed, and written as Parquet by
:func:`write_example`, which returns the path and the Task for the data stage to register.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.data.generator import generate_transactions
from workbench.data.task import Task
from workbench.errors import InvalidInput

WEATHER = ("sunny", "cloudy", "rain", "snow")
_WEATHER_P = np.array([0.45, 0.3, 0.2, 0.05])
_WEATHER_MINUTES = np.array([0.0, 1.5, 6.0, 14.0])
DELIVERY_LABEL = "delivery minutes"


def generate_deliveries(n_rows: int, seed: int = 0, n_couriers: int | None = None, start: str = "2026-01-01",
                        days: int = 30) -> pd.DataFrame:
    """Food deliveries, sorted by ``ordered at`` (UTC); the label ``delivery minutes`` is a noisy function of
    distance, items, weather, rush hour, preparation time and the courier's own speed (so a courier's past
    deliveries say something about the next one).
    """
    if n_rows < 1:
        raise InvalidInput(f"n_rows must be >= 1, got {n_rows}")
    rng = np.random.default_rng(seed)
    n = n_rows
    n_couriers = n_couriers or max(10, n // 50)
    speed = rng.lognormal(0.0, 0.18, n_couriers)  # >1: slower than typical
    courier = rng.integers(0, n_couriers, n)
    start_ns = pd.Timestamp(start, tz="UTC").value
    seconds = np.sort(rng.integers(0, days * 86_400, n))
    hour = (seconds // 3600) % 24
    rush = ((hour >= 11) & (hour < 14)) | ((hour >= 18) & (hour < 21))
    distance = np.round(rng.gamma(2.0, 1.6, n), 2)
    items = rng.integers(1, 9, n)
    weather = rng.choice(len(WEATHER), size=n, p=_WEATHER_P)
    prep = np.round(rng.normal(12.0, 4.0, n).clip(2.0, None), 1)
    minutes = (8.0 + 3.2 * distance * speed[courier] + 0.9 * items + _WEATHER_MINUTES[weather]
               + 7.0 * rush + 0.8 * prep + 2.5 * np.sqrt(distance) * rush + rng.normal(0.0, 2.5, n))
    weather_col = np.array(WEATHER, dtype=object)[weather]
    weather_col[rng.random(n) < 0.06] = None  # a form field some clients leave empty
    prep_col = prep.astype(np.float64)
    prep_col[rng.random(n) < 0.04] = np.nan
    return pd.DataFrame({
        "order id": np.arange(1, n + 1, dtype=np.int64),
        "courier_id": courier.astype(np.int64),
        "ordered at": pd.DatetimeIndex((start_ns + seconds * 1_000_000_000).view("datetime64[ns]")).tz_localize("UTC"),
        "distance km": distance,
        "items.count": items.astype(np.int64),
        "météo": weather_col,
        "rush hour": rush,
        "prep minutes": prep_col,
        DELIVERY_LABEL: np.round(minutes, 2),
    })


@dataclass(frozen=True)
class Example:
    """A built-in problem: how to generate it, and the task it supports."""

    name: str
    generate: Callable[..., pd.DataFrame]
    task: Task
    description: str


EXAMPLES: dict[str, Example] = {
    "fraud": Example("fraud", generate_transactions,
                     Task(label="is_fraud", kind="binary", entity_keys=("user_id", "merchant_id"),
                          timestamp="event_timestamp", exclude=("transaction_id",)),
                     "card transactions; is this one fraud? (binary)"),
    "deliveries": Example("deliveries", generate_deliveries,
                          Task(label=DELIVERY_LABEL, kind="regression", entity_keys=("courier_id",),
                               timestamp="ordered at", exclude=("order id",)),
                          "food deliveries; how many minutes will this one take? (regression)"),
}


def write_example(name: str, folder: str | Path, n_rows: int, seed: int = 0) -> tuple[Path, Task]:
    """Generate example ``name`` into ``folder/<name>.parquet``; returns the path and its Task."""
    if name not in EXAMPLES:
        raise InvalidInput(f"unknown example {name!r}; built-in examples: {sorted(EXAMPLES)}")
    example = EXAMPLES[name]
    frame = example.generate(n_rows, seed=seed)
    path = Path(folder) / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path, example.task
