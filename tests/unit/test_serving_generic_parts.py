"""The generic serving parts without a cluster: signature fields, the three wire forms, task answers, v2
documents and the prediction log row. The integration test (test_serving_generic.py) runs them for real."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature

from workbench.errors import InvalidInput
from workbench.serving.client import v2_request
from workbench.serving.contract import ModelContract, contract_from_metadata, score_rows
from workbench.serving.lookup import request_schema
from workbench.serving.payload import PayloadError, RequestSchema, parse_invocations, parse_payload, parse_v2
from workbench.serving.prediction_log import log_record
from workbench.serving.protocols import v2_metadata, v2_response
from workbench.serving.signature import column, read_signature

FRAME = pd.DataFrame({"a b": [1.0, 2.0], "c.d": [1, 2], "héllo": ["x", None], "flag": [True, False],
                      "when": pd.to_datetime(["2026-01-01", "2026-01-02"])})
SIGNATURE = read_signature(infer_signature(FRAME, np.array([0.5, 0.7])), "models:/m/1")
SCHEMA = request_schema(SIGNATURE, None)


def test_the_signature_becomes_typed_fields_in_column_order() -> None:
    assert SCHEMA.names == ["a b", "c.d", "héllo", "flag", "when"]
    kinds = {f.name: (f.kind, f.required, f.nullable) for f in SCHEMA.fields}
    assert kinds == {"a b": ("double", True, False), "c.d": ("long", True, False),
                     "héllo": ("string", False, True), "flag": ("boolean", True, False),
                     "when": ("datetime", True, False)}


def test_a_model_without_a_usable_signature_is_refused_saying_how_to_log_one() -> None:
    with pytest.raises(InvalidInput, match="no signature.*infer_signature"):
        read_signature(None, "models:/m/1")
    with pytest.raises(InvalidInput, match="tensor"):
        read_signature(infer_signature(np.zeros((2, 3)), np.zeros(2)), "models:/m/1")


def good() -> dict[str, Any]:
    return {"a b": 1.5, "c.d": 3, "héllo": None, "flag": True, "when": "2026-03-01T04:30:00Z"}


def test_every_wire_form_gives_the_same_checked_rows() -> None:
    rows = parse_payload({"instances": [good(), dict(good(), **{"héllo": "ü"})]}, SCHEMA)
    records = parse_invocations({"dataframe_records": [good(), dict(good(), **{"héllo": "ü"})]}, SCHEMA)
    names = SCHEMA.names
    split = parse_invocations({"dataframe_split": {"columns": names, "data": [
        [good()[n] for n in names], [dict(good(), **{"héllo": "ü"})[n] for n in names]]}}, SCHEMA)
    v2, request_id = parse_v2(v2_request([good(), dict(good(), **{"héllo": "ü"})], request_id="abc"), SCHEMA)
    assert request_id == "abc" and [r.request_id for r in v2] == ["abc-0", "abc-1"]
    for form in (records, split, v2):
        assert [r.values for r in form] == [r.values for r in rows]
    assert rows[0].values["when"] == datetime(2026, 3, 1, 4, 30, tzinfo=UTC)
    assert rows[0].values["héllo"] is None and rows[1].values["héllo"] == "ü"


def test_a_missing_optional_column_is_null_and_frames_take_mlflows_dtypes() -> None:
    row = good()
    del row["héllo"]
    parsed = parse_payload({"instances": [row, good()]}, SCHEMA)
    assert parsed[0].values["héllo"] is None
    frame = pd.DataFrame({f.name: column(f, [r.values[f.name] for r in parsed]) for f in SCHEMA.fields})
    assert [str(t) for t in frame.dtypes] == ["float64", "int64", "object", "bool", "datetime64[ns]"]
    assert frame["when"][0] == pd.Timestamp("2026-03-01 04:30:00")  # UTC, zone dropped as MLflow wants


def test_a_looked_up_integer_feature_without_a_value_is_refused_not_cast_to_a_huge_integer() -> None:
    counts = next(f for f in SCHEMA.fields if f.kind == "long")
    assert column(counts, np.array([2.0, 5.0])).tolist() == [2, 5]
    with pytest.raises(InvalidInput, match=f"{counts.name}: no value was found"):
        column(counts, np.array([2.0, np.nan]))


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"c.d": "3"}, "instances[0].c.d", "integer"),
    ({"c.d": 2.5}, "instances[0].c.d", "integer"),
    ({"c.d": None}, "instances[0].c.d", "null"),
    ({"a b": True}, "instances[0].a b", "number"),
    ({"a b": float("inf")}, "instances[0].a b", "finite"),
    ({"flag": 1}, "instances[0].flag", "true or false"),
    ({"héllo": 7}, "instances[0].héllo", "string"),
    ({"when": "soon"}, "instances[0].when", "ISO 8601"),
    ({"extra col": 1}, "instances[0].extra col", "not a known field"),
    ({"request_id": ""}, "instances[0].request_id", "non-empty"),
])
def test_bad_values_name_the_field(change: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_payload({"instances": [dict(good(), **change)]}, SCHEMA)
    assert caught.value.field == field and words in str(caught.value)


def test_a_missing_required_column_is_named() -> None:
    row = good()
    del row["flag"]
    with pytest.raises(PayloadError, match="is required") as caught:
        parse_payload({"instances": [row]}, SCHEMA)
    assert caught.value.field == "instances[0].flag"


@pytest.mark.parametrize(("body", "field"), [
    ({"dataframe_split": {"columns": ["a b"], "data": [[1.0, 2.0]]}}, "dataframe_split.data[0]"),
    ({"dataframe_split": {"columns": ["a b", "a b"], "data": [[1.0, 2.0]]}}, "dataframe_split.columns"),
    ({"dataframe_records": []}, "dataframe_records"),
    ({"instances": [{}]}, "instances"),
    ({"dataframe_records": [good()], "params": {"k": 1}}, "params"),
])
def test_bad_invocations_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_invocations(body, SCHEMA)
    assert caught.value.field == field


@pytest.mark.parametrize(("change", "field"), [
    (lambda b: b["inputs"][0].update(shape=[5]), "inputs[a b].shape"),
    (lambda b: b["inputs"][1].update(data=["x"]), "inputs[c.d].data[0]"),
    (lambda b: b["inputs"][1].update(data=[1, 2]), "inputs[c.d].shape"),
    (lambda b: b["inputs"][0].pop("datatype"), "inputs[a b].datatype"),
    (lambda b: b["inputs"].pop(3), "inputs[flag].data[0]"),
    (lambda b: b.update(id=5), "id"),
    (lambda b: b.update(inputs=[]), "inputs"),
])
def test_bad_v2_requests_name_the_input(change: Any, field: str) -> None:
    body = v2_request([good()])
    change(body)
    with pytest.raises(PayloadError) as caught:
        parse_v2(body, SCHEMA)
    assert caught.value.field == field


def test_a_v2_column_may_be_written_n_by_one() -> None:
    body = v2_request([good(), good()])
    body["inputs"][0].update(shape=[2, 1], data=[[1.0], [2.0]])
    rows, _ = parse_v2(body, SCHEMA)
    assert [r.values["a b"] for r in rows] == [1.0, 2.0]


def test_binary_answers_a_score_and_the_label_at_the_logged_threshold() -> None:
    contract = contract_from_metadata({"workbench": {"task": "binary", "classes": ["no", "yes"], "positive": "yes",
                                                     "threshold": 0.3}})
    answers = score_rows(contract, np.array([0.1, 0.3, 0.9]), 3)
    assert [a.outputs for a in answers] == [{"score": 0.1, "label": "no"}, {"score": 0.3, "label": "yes"},
                                            {"score": 0.9, "label": "yes"}]
    assert [a.raw for a in answers] == [0.1, 0.3, 0.9]


def test_multiclass_answers_the_most_likely_class_with_all_probabilities() -> None:
    contract = contract_from_metadata({"workbench": {"task": "multiclass", "classes": [0, 1, 2]}})
    raw = pd.DataFrame({"proba_0": [0.2, 0.1], "proba_1": [0.5, 0.1], "proba_2": [0.3, 0.8]})
    answers = score_rows(contract, raw, 2)
    assert answers[0].outputs == {"label": 1, "probabilities": {"0": 0.2, "1": 0.5, "2": 0.3}}
    assert answers[1].outputs["label"] == 2 and answers[1].raw == {"proba_0": 0.1, "proba_1": 0.1, "proba_2": 0.8}


def test_the_task_falls_back_to_the_run_tag_then_to_the_signature() -> None:
    assert contract_from_metadata(None, run_task="regression").task == "regression"
    assert contract_from_metadata({}, fallback_task="binary").classes == (0, 1)
    plain = contract_from_metadata({"other": 1})
    assert plain.task is None and score_rows(plain, np.array([[1, 2], [3, 4]]), 2)[1].outputs == {"prediction": [3, 4]}
    with pytest.raises(Exception, match="2 rows for 3 inputs"):
        score_rows(plain, np.array([1.0, 2.0]), 3)
    assert ModelContract.from_dict(contract_from_metadata({"workbench": {"task": "binary"}}).to_dict()).positive == 1


def test_v2_documents_have_one_input_per_request_column() -> None:
    meta = v2_metadata("sv", "3", SIGNATURE, SCHEMA)
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("a b", "FP64"), ("c.d", "INT64"), ("héllo", "BYTES"), ("flag", "BOOL"), ("when", "BYTES")]
    assert meta["outputs"] == [{"name": "output-1", "datatype": "FP64", "shape": [-1, 1]}]
    out = v2_response("sv", "3", "r", [0.5, 1], SIGNATURE, ["r-0", "r-1"])
    assert out["outputs"][0] == {"name": "output-1", "shape": [2, 1], "datatype": "FP64", "data": [0.5, 1]}
    frame = v2_response("sv", "3", None, [{"p": 1.0, "q": "x"}], SIGNATURE, ["a"])
    assert [(o["name"], o["datatype"]) for o in frame["outputs"]] == [("p", "FP64"), ("q", "BYTES")]
    assert "id" not in frame and frame["parameters"]["content_type"] == "pd"


def test_a_log_row_keeps_bookkeeping_outputs_and_inputs_apart() -> None:
    record = log_record(request_id="r", timestamp="t", deployment="d", model_version="1", latency_ms=1.0,
                        event_timestamp="e", task="binary", outputs={"score": 0.4, "label": 0},
                        inputs={"a b": 1.0, "score": 7, "deployment": "x"})
    assert record["predicted_label"] == 0 and "label" not in record  # ``label`` is the ground truth, later
    assert record["a b"] == 1.0 and record["input:score"] == 7 and record["input:deployment"] == "x"
    assert record["score"] == 0.4 and record["deployment"] == "d"


def test_extras_give_way_to_model_columns_of_the_same_name() -> None:
    schema = RequestSchema(tuple(read_signature(infer_signature(pd.DataFrame({"timestamp": [1.0]})), "m").inputs))
    assert schema.extras == ("request_id",)
    row = parse_payload({"instances": [{"timestamp": 2.0}]}, schema)[0]
    assert row.values == {"timestamp": 2.0}
