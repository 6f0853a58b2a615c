"""The Open Inference Protocol (KServe v2) documents: model metadata and ``infer`` responses.

Shaped as MLServer's MLflow runtime shapes them (what KServe runs for ``modelFormat: mlflow``), so a v2
client reads our deployment and the exported ``InferenceService`` alike: one input per request column
(``shape [-1, 1]`` in the metadata; a request may send ``[n]`` or ``[n, 1]``); a 1-D prediction comes
back as output ``output-1`` of shape ``[n, 1]``, a DataFrame as one output per column with
``{"content_type": "pd"}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.serving.payload import RequestSchema
from workbench.serving.signature import ModelSignature

TENSOR_OUTPUT = "output-1"


def v2_metadata(name: str, version: str, signature: ModelSignature, schema: RequestSchema) -> dict[str, Any]:
    """``GET /v2/models/<name>``: the inputs a request carries and the outputs it gets back."""
    inputs = [{"name": f.name, "datatype": f.v2_datatype, "shape": [-1, 1],  # a column, as MLServer lists it
               "parameters": {"content_type": "str" if f.v2_datatype == "BYTES" else "np", "required": f.required,
                              "nullable": f.nullable}} for f in schema.fields]
    if signature.outputs:
        outputs = [{"name": f.name, "datatype": f.v2_datatype, "shape": [-1, 1]} for f in signature.outputs]
    else:
        outputs = [{"name": TENSOR_OUTPUT, "datatype": signature.output_tensor, "shape": [-1, 1]}]
    return {"name": name, "versions": [version], "platform": "mlflow", "inputs": inputs, "outputs": outputs,
            "parameters": {"content_type": "pd"}}


def _datatype(values: Sequence[Any], declared: str | None = None) -> str:
    """The v2 datatype of ``values``: what they are, narrowed to the signature's type when that agrees."""
    present = [v for v in values if v is not None]
    if not present:
        return declared or "FP64"
    if all(isinstance(v, bool) for v in present):
        inferred = "BOOL"
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        inferred = "INT64"
    elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        inferred = "FP64"
    else:
        return "BYTES"
    if declared and ((declared.startswith("FP") and inferred in ("INT64", "FP64"))
                     or (declared.startswith(("INT", "UINT")) and inferred == "INT64")):
        return declared
    return inferred


def v2_response(name: str, version: str, request_id: str | None, rows: Sequence[Any], signature: ModelSignature,
                row_ids: Sequence[str]) -> dict[str, Any]:
    """The ``infer`` answer for the raw prediction rows of one request (see :mod:`workbench.serving.contract`)."""
    n = len(rows)
    outputs: list[dict[str, Any]] = []
    parameters: dict[str, Any] = {"request_ids": list(row_ids)}
    if rows and all(isinstance(r, dict) for r in rows):
        declared = {f.name: f.v2_datatype for f in signature.outputs}
        for column in rows[0]:
            data = [r.get(column) for r in rows]
            outputs.append({"name": column, "shape": [n, 1], "datatype": _datatype(data, declared.get(column)),
                            "data": data})
        parameters["content_type"] = "pd"
    elif rows and all(isinstance(r, list) for r in rows):
        width = len(rows[0])
        flat = [v for r in rows for v in r]
        outputs.append({"name": TENSOR_OUTPUT, "shape": [n, width], "datatype": _datatype(flat), "data": flat})
        parameters["content_type"] = "np"
    else:
        outputs.append({"name": TENSOR_OUTPUT, "shape": [n, 1],
                        "datatype": _datatype(list(rows), signature.output_tensor), "data": list(rows)})
        parameters["content_type"] = "np"
    body: dict[str, Any] = {"model_name": name, "model_version": version, "outputs": outputs,
                            "parameters": parameters}
    if request_id is not None:
        body["id"] = request_id
    return body
