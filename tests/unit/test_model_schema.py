"""Signature types of training columns and frames conformed to a signature, checked against MLflow's own
schema validation (``mlflow.models.validate_schema``) and ``infer_signature`` as the oracles."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.types import ColSpec, DataType, Schema

from workbench.errors import InvalidInput
from workbench.model_schema import column_type, conform_frame
from workbench.training.export import input_schema

FRAME = pd.DataFrame({"count": np.array([0, 3, 7], dtype=np.int64), "amount": [1.5, 2.0, np.nan],
                      "flag": [True, False, True], "city": ["Köln", "Oslo", None],
                      "small": np.array([1, 2, 3], dtype=np.int32)})


def test_columns_are_typed_as_the_training_frame_holds_them_as_infer_signature_does() -> None:
    schema = input_schema(FRAME, list(FRAME.columns), nullable=["amount", "city"])
    types = {c.name: c.type for c in schema.inputs}
    assert types == {"count": DataType.long, "amount": DataType.double, "flag": DataType.boolean,
                     "city": DataType.string, "small": DataType.long}
    inferred = {c.name: c.type for c in mlflow.models.infer_signature(FRAME[["count", "amount", "flag"]]).inputs.inputs}
    assert {k: types[k] for k in inferred} == inferred  # MLflow's own inference agrees
    assert [c.name for c in schema.inputs if not c.required] == ["amount", "city"]
    mlflow.models.validate_schema(FRAME, schema)  # the training frame as it is fits its own signature


def test_integers_with_nulls_or_behind_a_feature_store_are_double() -> None:
    nullable_ints = pd.Series([1, None, 3], dtype="Int64")
    assert column_type(nullable_ints) == DataType.double
    assert column_type(FRAME["count"], nullable=True) == DataType.double
    assert column_type(FRAME["count"], long_integers=False) == DataType.double
    assert column_type(FRAME["flag"], long_integers=False) == DataType.boolean


def test_conform_casts_only_where_no_value_changes() -> None:
    schema = Schema([ColSpec(DataType.double, "count"), ColSpec(DataType.long, "whole"),
                     ColSpec(DataType.long, "fraction"), ColSpec(DataType.string, "city")])
    frame = pd.DataFrame({"count": np.array([1, 2], dtype=np.int64), "whole": [3.0, 4.0],
                          "fraction": [0.5, 1.0], "city": ["a", "b"]})
    with pytest.raises(MlflowException, match="int64 to float64"):  # what a user meets without conforming
        mlflow.models.validate_schema(frame.drop(columns=["fraction"]),
                                      Schema([c for c in schema.inputs if c.name != "fraction"]))
    out = conform_frame(schema, frame)
    assert str(out["count"].dtype) == "float64" and out["count"].tolist() == [1.0, 2.0]
    assert str(out["whole"].dtype) == "int64" and out["whole"].tolist() == [3, 4]
    assert out["fraction"].tolist() == [0.5, 1.0] and str(out["fraction"].dtype) == "float64"  # left to MLflow
    mlflow.models.validate_schema(out.drop(columns=["fraction"]),
                                  Schema([c for c in schema.inputs if c.name != "fraction"]))
    assert frame["count"].dtype == np.int64  # the caller's frame is untouched


def test_a_missing_value_in_an_integer_column_names_the_column() -> None:
    schema = Schema([ColSpec(DataType.long, "visits (n)")])
    with pytest.raises(InvalidInput, match=r"'visits \(n\)' holds missing values.*long"):
        conform_frame(schema, pd.DataFrame({"visits (n)": [1.0, np.nan]}))


def test_frames_without_a_named_schema_pass_through() -> None:
    assert conform_frame(None, FRAME) is FRAME
