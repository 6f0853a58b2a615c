"""The logged MLflow model: raw feature columns in, the task's output out (see ``workbench.data.task``).

Logged as "models from code": MLflow copies this one file next to the artifacts, so a serving process
loads it with ``mlflow.pyfunc.load_model(uri).predict(frame)`` without torch, Ray or the workbench
package. Keep it self-contained: standard library, numpy, pandas, mlflow (and xgboost for a boosted
model, imported only when one is loaded).

The preprocessing lives here, inside the model, because a model that expects its inputs encoded or
imputed by the caller silently predicts nonsense when the caller forgets: numeric columns are coerced
to float (nulls imputed with the training mean plus a missing-indicator column for the MLP, left NaN for
XGBoost, which routes them itself), categorical columns are one-hot (MLP) or ordinal (XGBoost) over the
categories seen in training; an unknown category or a null maps to "none of them" (all zeros / NaN).

Artifacts: ``meta`` (JSON: task, classes, preprocessor, model kind) and ``weights`` (MLP, an .npz with
``mean``, ``std``, ``w0``, ``b0``, …) or ``booster`` (XGBoost's JSON model).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

MAX_CATEGORIES = 100
"""Categories kept per column (the most frequent); rarer ones are treated as unknown."""


def category_key(value: Any) -> str | None:
    """The category a raw value stands for: None for a null; 3, 3.0 and "3" all map to "3"."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating):
        if math.isnan(float(value)):
            return None
        if float(value).is_integer():
            return str(int(value))
        return repr(float(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


class Preprocessor:
    """Raw columns → a float matrix. ``mode`` "onehot" (MLP: impute + indicators + one-hot) or "ordinal"
    (trees: NaN stays NaN, categories become codes)."""

    def __init__(self, columns: Sequence[str], categories: dict[str, list[str]], fill: dict[str, float],
                 indicators: Sequence[str], mode: str = "onehot") -> None:
        self.columns = list(columns)
        self.categories = {k: list(v) for k, v in categories.items()}
        self.fill = dict(fill)
        self.indicators = list(indicators)
        self.mode = mode

    @classmethod
    def fit(cls, frame: pd.DataFrame, columns: Sequence[str], categorical: Sequence[str], mode: str = "onehot",
            max_categories: int = MAX_CATEGORIES) -> Preprocessor:
        categories: dict[str, list[str]] = {}
        fill: dict[str, float] = {}
        indicators: list[str] = []
        for name in columns:
            if name in categorical:
                counts = frame[name].map(category_key).dropna().value_counts()
                ranked = sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
                categories[name] = [str(k) for k, _ in ranked[:max_categories]]
            else:
                values = _numeric(frame[name])
                mean = float(np.nanmean(values)) if np.isfinite(values).any() else 0.0
                fill[name] = mean
                if np.isnan(values).any():
                    indicators.append(name)
        return cls(columns, categories, fill, indicators, mode)

    @property
    def output_names(self) -> list[str]:
        names: list[str] = []
        for name in self.columns:
            if name in self.categories:
                if self.mode == "onehot":
                    names.extend(f"{name}={c}" for c in self.categories[name])
                else:
                    names.append(name)
            else:
                names.append(name)
        if self.mode == "onehot":
            names.extend(f"{name} is missing" for name in self.indicators)
        return names

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        parts: list[np.ndarray] = []
        for name in self.columns:
            if name in self.categories:
                index = {c: i for i, c in enumerate(self.categories[name])}
                codes = np.array([index.get(k, -1) if k is not None else -1  # type: ignore[arg-type]
                                  for k in frame[name].map(category_key)], dtype=np.int64)
                if self.mode == "onehot":
                    block = np.zeros((len(codes), len(index)), dtype=np.float64)
                    known = codes >= 0
                    block[np.flatnonzero(known), codes[known]] = 1.0
                    parts.append(block)
                else:
                    parts.append(np.where(codes >= 0, codes, np.nan).astype(np.float64)[:, None])
            else:
                values = _numeric(frame[name])
                if self.mode == "onehot":
                    values = np.where(np.isnan(values), self.fill[name], values)
                parts.append(values[:, None])
        if self.mode == "onehot":
            for name in self.indicators:
                parts.append(np.isnan(_numeric(frame[name]))[:, None].astype(np.float64))
        return np.hstack(parts) if parts else np.zeros((len(frame), 0))

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "categories": self.categories, "fill": self.fill,
                "indicators": self.indicators, "mode": self.mode}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        return cls(data["columns"], data.get("categories", {}), data.get("fill", {}), data.get("indicators", []),
                   data.get("mode", "onehot"))


def _numeric(series: pd.Series) -> np.ndarray:
    if series.dtype == object:
        series = pd.to_numeric(series, errors="coerce")
    return np.asarray(series.astype("float64"), dtype=np.float64)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0))))


def _softmax(z: np.ndarray) -> np.ndarray:
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


def _load_mlp(model: TabularModel, artifacts: dict[str, str]) -> None:
    weights = np.load(artifacts["weights"])
    model.mean = weights["mean"].astype(np.float64)
    model.std = weights["std"].astype(np.float64)
    model.layers = [(weights[f"w{i}"].astype(np.float64), weights[f"b{i}"].astype(np.float64))
                    for i in range(int(model.meta["n_layers"]))]


def _score_mlp(model: TabularModel, x: np.ndarray) -> np.ndarray:
    hidden = (x - model.mean) / model.std
    for index, (weight, bias) in enumerate(model.layers):
        hidden = hidden @ weight.T + bias
        if index < len(model.layers) - 1:
            hidden = np.maximum(hidden, 0.0)
    if model.task == "binary":
        return _sigmoid(hidden[:, 0])
    if model.task == "multiclass":
        return _softmax(hidden)
    return np.asarray(hidden[:, 0] * float(model.meta.get("y_std", 1.0)) + float(model.meta.get("y_mean", 0.0)))


def _load_xgboost(model: TabularModel, artifacts: dict[str, str]) -> None:
    import xgboost

    model.booster = xgboost.Booster()
    model.booster.load_model(artifacts["booster"])


def _score_xgboost(model: TabularModel, x: np.ndarray) -> np.ndarray:
    import xgboost

    out = model.booster.predict(xgboost.DMatrix(x, missing=np.nan))
    return np.asarray(out, dtype=np.float64)


#: model kind → (load artifacts, score an encoded matrix); the score is already the task's output.
SCORERS: dict[str, tuple[Callable[[Any, dict[str, str]], None], Callable[[Any, np.ndarray], np.ndarray]]] = {
    "mlp": (_load_mlp, _score_mlp),
    "xgboost": (_load_xgboost, _score_xgboost),
}


class TabularModel(PythonModel):
    """``predict(frame)``: binary → P(positive) per row; multiclass → a frame of ``proba_<class>``;
    regression → the value (float64)."""

    mean: np.ndarray
    std: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]
    booster: Any

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["meta"]) as handle:
            self.meta: dict[str, Any] = json.load(handle)
        self.feature_columns: list[str] = list(self.meta["feature_columns"])
        self.task: str = self.meta.get("task", "binary")
        self.classes: list[Any] = list(self.meta.get("classes", [0, 1]))
        pre = self.meta.get("preprocessor") or {"columns": self.feature_columns}
        self.preprocessor = Preprocessor.from_dict(pre)
        self.kind: str = self.meta.get("model", "mlp")
        SCORERS[self.kind][0](self, dict(context.artifacts))

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> np.ndarray | pd.DataFrame:
        frame = pd.DataFrame(model_input)
        missing = [c for c in self.feature_columns if c not in frame.columns]
        if missing:
            raise ValueError(f"the input lacks feature columns {missing}; the model needs {self.feature_columns}")
        scores = SCORERS[self.kind][1](self, self.preprocessor.transform(frame))
        if self.task == "multiclass":
            return pd.DataFrame(scores.reshape(len(frame), len(self.classes)),
                                columns=[f"proba_{c}" for c in self.classes], index=frame.index)
        return np.asarray(scores, dtype=np.float64).reshape(-1)


FraudProbabilityModel = TabularModel  # the name models logged before the task contract used

mlflow.models.set_model(TabularModel())
