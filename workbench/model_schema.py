"""The column types of a model's MLflow input schema, and frames made to fit them.

MLflow's schema enforcement casts a column only when no value can change: it refuses int64 for a double
column (a double holds integers exactly only up to 2**53) and float64 for a long one. A frame read back
from Parquet or a feature store often holds exactly those (counts as int64; integer features as float64
once a join has left a hole), so a user's ``mlflow.pyfunc.load_model(uri).predict(frame)`` would fail on the
very data the model was trained on. Two rules avoid it:

* :func:`column_type`: the workbench trainers declare each column as the training frame holds it (as
  ``mlflow.models.infer_signature`` does): integers without nulls ``long``, other numbers ``double``
  (optional when training saw nulls), booleans ``boolean``, the rest ``string``. A model with a feature
  service takes its numbers as double: the store answers a missing value for an entity it has not seen.
* :func:`conform_frame`: readers that score stored frames (the registry's holdout guard, monitoring's
  reference outputs) cast ints to double and whole-number floats to long first.

Nothing here imports the serving layer or MLflow's server parts; domain code of every stage may use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.types import DataType

from workbench.errors import InvalidInput

_NUMPY = {"double": np.float64, "float": np.float32, "long": np.int64, "integer": np.int32}


def column_type(series: pd.Series, nullable: bool = False, long_integers: bool = True) -> DataType:
    """The signature type of a training column (``nullable``: it holds nulls somewhere in training).

    ``long_integers=False`` declares integers double too: for a model whose inputs a feature store fills,
    where an entity it has never seen gets a missing value that a long column could not carry (MLflow's
    own advice for integer columns that may miss values).
    """
    if pd.api.types.is_bool_dtype(series):
        return DataType.boolean
    if long_integers and pd.api.types.is_integer_dtype(series) and not nullable and not series.isna().any():
        return DataType.long
    if pd.api.types.is_numeric_dtype(series):
        return DataType.double
    return DataType.string


def conform_frame(schema: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with columns cast, where no value changes, to the types the MLflow input ``schema`` declares.

    Ints go to double/float; floats that are all whole numbers go to long/integer; a float column with
    missing values where the schema wants long/integer is an :class:`InvalidInput` naming the column (an
    integer column cannot hold a null). Anything else is left for MLflow to accept or refuse.
    """
    if schema is None or not schema.has_input_names():
        return frame
    casts: dict[str, Any] = {}
    for spec in schema.inputs:
        kind = getattr(spec.type, "name", None)
        if spec.name not in frame.columns or kind not in _NUMPY:
            continue
        values = frame[spec.name]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            continue
        if kind in ("double", "float") and pd.api.types.is_integer_dtype(values):
            casts[spec.name] = _NUMPY[kind]
        elif kind in ("long", "integer") and pd.api.types.is_float_dtype(values):
            if values.isna().any():
                raise InvalidInput(
                    f"column {spec.name!r} holds missing values, but the model's signature declares it {kind} "
                    f"(it had none in training): fill them, or train on a frame with nulls in {spec.name!r} "
                    "so that the model takes it as an optional double")
            if bool((values == np.round(values)).all()):
                casts[spec.name] = _NUMPY[kind]
    return frame.astype(casts) if casts else frame
