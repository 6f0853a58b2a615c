"""Any registered MLflow pyfunc model with a signature, served on the real Ray head and MLflow server.

Three small models are logged and registered here, none with a feature service (so Feast is never
asked): a regression (sklearn ``LinearRegression`` through ``mlflow.sklearn``), a three-class pyfunc
returning ``proba_<class>`` columns, and a model served "as its signature says" whose columns have
spaces, dots and non-ASCII letters, a nullable string and a datetime. Each is deployed once; served
answers are compared with ``mlflow.pyfunc.load_model(...).predict`` computed here on the same rows,
through ``/predict``, ``/invocations`` (both forms) and the v2 ``infer``; the prediction log is checked
row by row; bad payloads are 422s naming the field; a model without a signature is refused.

Peers as oracles: MLflow's own scoring server (what ``mlflow models serve`` runs) answers the same
``/invocations`` bodies, and MLServer with its MLflow runtime (KServe's ``modelFormat: mlflow``, from a
virtual environment of its own; skipped when that is not installed) answers the same v2 requests sent
with a real v2 client (``tritonclient.http``).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from mlflow.models import infer_signature
from sklearn.linear_model import LinearRegression, LogisticRegression

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound
from workbench.serving import (
    Resources,
    delete_deployment,
    deploy,
    endpoint_url,
    list_deployments,
    predict,
    read_predictions,
    request_fields,
)
from workbench.serving.client import v2_request

pytestmark = pytest.mark.integration

EXPERIMENT = "sv-serving-generic"
CLASSES = ["setosa", "versicolor", "virginica"]
ODD = ["petal width", "ratio.a", "größe", "colour", "when"]  # double, double, long, optional string, datetime

MULTICLASS_CODE = '''
import joblib
import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class Classes(PythonModel):
    def load_context(self, context):
        self.clf = joblib.load(context.artifacts["clf"])

    def predict(self, context, model_input, params=None):
        proba = self.clf.predict_proba(model_input[["sepal", "petal"]].to_numpy())
        return pd.DataFrame(proba, columns=[f"proba_{c}" for c in self.clf.classes_])


mlflow.models.set_model(Classes())
'''

ODD_CODE = '''
import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class Odd(PythonModel):
    def predict(self, context, model_input, params=None):
        colour = model_input["colour"].fillna("").astype(str).str.len()
        hours = pd.to_datetime(model_input["when"]).dt.hour
        return (model_input["petal width"] * 2.0 + model_input["ratio.a"] * 0.5 + model_input["größe"]
                + colour * 10.0 + hours / 100.0).to_numpy()


mlflow.models.set_model(Odd())
'''


@dataclass(frozen=True)
class Served:
    name: str  # deployment name
    uri: str  # models:/<registered>/<version>
    version: str
    frame: pd.DataFrame  # rows to score, in the model's input types
    dtypes: dict[str, Any]

    def rows(self, n: int, start: int = 0) -> list[dict[str, Any]]:
        """JSON instances for frame rows start..start+n (NaN as null, times as ISO strings)."""
        out = []
        for record in self.frame.iloc[start:start + n].to_dict(orient="records"):
            out.append({k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else
                            v.isoformat() if isinstance(v, pd.Timestamp) else
                            v.item() if isinstance(v, np.generic) else v) for k, v in record.items()})
        return out

    def expected(self, rows: list[dict[str, Any]]) -> Any:
        """What the registered model predicts for ``rows``, computed here with MLflow alone."""
        frame = pd.DataFrame(rows, columns=list(self.dtypes))
        for name, dtype in self.dtypes.items():
            frame[name] = pd.to_datetime(frame[name]) if dtype == "datetime" else frame[name].astype(dtype)
        return mlflow.pyfunc.load_model(self.uri).predict(frame)


def _register(settings: Settings, info: Any, name: str) -> str:
    return str(mlflow.register_model(info.model_uri, name).version)


@pytest.fixture(scope="module")
def settings(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    state = tmp_path_factory.mktemp("sv-generic")
    mlflow.set_tracking_uri(services.mlflow_uri)
    mlflow.set_registry_uri(services.mlflow_uri)
    mlflow.set_experiment(EXPERIMENT)
    return services.replace(state_dir=state)  # own prediction logs; the session's MLflow and Ray


@pytest.fixture(scope="module")
def models(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    rng = np.random.default_rng(7)
    tag = uuid.uuid4().hex[:6]
    work = tmp_path_factory.mktemp("sv-models")
    served: dict[str, Served] = {}

    # regression: sklearn flavor, signature inferred from a frame
    x = pd.DataFrame({"x1": rng.normal(size=200), "x2": rng.uniform(0, 10, size=200)})
    y = 3.0 * x.x1 - 0.5 * x.x2 + rng.normal(scale=0.1, size=200)
    reg = LinearRegression().fit(x, y)
    with mlflow.start_run(run_name="sv-regression"):
        info = mlflow.sklearn.log_model(reg, name="model", signature=infer_signature(x, reg.predict(x)),
                                        input_example=x.head(3), metadata={"workbench": {
                                            "task": "regression", "feature_columns": ["x1", "x2"]}})
    name = f"sv-regression-{tag}"
    version = _register(settings, info, name)
    served["reg"] = Served("sv-reg", f"models:/{name}/{version}", version, x.head(40).reset_index(drop=True),
                           {"x1": "float64", "x2": "float64"})

    # multiclass: a pyfunc returning one proba_<class> column per class
    centers = {"setosa": (0.0, 0.0), "versicolor": (3.0, 1.0), "virginica": (6.0, 3.0)}
    labels = rng.choice(CLASSES, size=300)
    xm = pd.DataFrame({"sepal": [centers[c][0] for c in labels] + rng.normal(size=300),
                       "petal": [centers[c][1] for c in labels] + rng.normal(size=300)})
    clf = LogisticRegression(max_iter=500).fit(xm.to_numpy(), labels)
    joblib.dump(clf, work / "clf.joblib")
    (work / "classes.py").write_text(MULTICLASS_CODE)
    proba = pd.DataFrame(clf.predict_proba(xm.to_numpy()), columns=[f"proba_{c}" for c in clf.classes_])
    with mlflow.start_run(run_name="sv-multiclass"):
        info = mlflow.pyfunc.log_model(name="model", python_model=str(work / "classes.py"),
                                       artifacts={"clf": str(work / "clf.joblib")},
                                       signature=infer_signature(xm, proba), input_example=xm.head(3),
                                       metadata={"workbench": {"task": "multiclass", "classes": CLASSES,
                                                               "positive": None, "threshold": None,
                                                               "feature_columns": ["sepal", "petal"]}})
        mlflow.set_tag("workbench.task", "multiclass")
    name = f"sv-multiclass-{tag}"
    version = _register(settings, info, name)
    served["multi"] = Served("sv-multi", f"models:/{name}/{version}", version, xm.head(40).reset_index(drop=True),
                             {"sepal": "float64", "petal": "float64"})

    # odd column names, a nullable string and a datetime; no workbench metadata: served as the signature says
    n = 60
    odd = pd.DataFrame({"petal width": rng.uniform(0, 3, n), "ratio.a": rng.normal(size=n),
                        "größe": rng.integers(0, 100, n).astype(np.int64),
                        "colour": pd.Series(rng.choice(["red", "green", None], n), dtype=object),
                        "when": pd.date_range("2026-01-01", periods=n, freq="37min")})
    (work / "odd.py").write_text(ODD_CODE)
    with mlflow.start_run(run_name="sv-odd-columns"):
        signature = infer_signature(odd, np.zeros(n))
        info = mlflow.pyfunc.log_model(name="model", python_model=str(work / "odd.py"), signature=signature)
    assert not next(c for c in signature.inputs.inputs if c.name == "colour").required  # nulls make it optional
    name = f"sv-odd-{tag}"
    version = _register(settings, info, name)
    served["odd"] = Served("sv-odd", f"models:/{name}/{version}", version, odd,
                           {"petal width": "float64", "ratio.a": "float64", "größe": "int64", "colour": "object",
                            "when": "datetime"})

    for model in served.values():
        if model.name in [d.name for d in list_deployments(settings)]:  # a kept stack may hold an earlier run's
            delete_deployment(settings, model.name)
        deploy(settings, model.uri, model.name, resources=Resources(num_cpus=0),  # schedulable on a busy head
               progress=False)
    yield served
    for model in served.values():
        if model.name in [d.name for d in list_deployments(settings)]:
            delete_deployment(settings, model.name)


def _log(settings: Settings, name: str) -> pd.DataFrame:
    return read_predictions(settings, name).set_index("request_id")


def _post(url: str, body: Any) -> requests.Response:
    return requests.post(url, json=body, timeout=60)


def test_regression_answers_the_models_predictions_on_every_protocol(settings: Settings,
                                                                     models: dict[str, Served]) -> None:
    model = models["reg"]
    rows = model.rows(12)
    for i, row in enumerate(rows):
        row["request_id"] = f"sv-reg-{uuid.uuid4().hex[:6]}-{i}"
    expected = np.asarray(model.expected([{k: v for k, v in r.items() if k != "request_id"} for r in rows]))

    body = predict(settings, model.name, rows)
    assert body["model_version"] == model.version
    assert [p["request_id"] for p in body["predictions"]] == [r["request_id"] for r in rows]
    assert set(body["predictions"][0]) == {"request_id", "prediction"}
    np.testing.assert_allclose([p["prediction"] for p in body["predictions"]], expected, rtol=1e-12)

    bare = [{k: v for k, v in r.items() if k != "request_id"} for r in rows]
    records = _post(endpoint_url(settings, model.name, "invocations"), {"dataframe_records": bare})
    split = _post(endpoint_url(settings, model.name, "invocations"),
                  {"dataframe_split": {"columns": ["x2", "x1"], "data": [[r["x2"], r["x1"]] for r in bare]}})
    for response in (records, split):
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["predictions"], expected, rtol=1e-12)

    v2 = _post(endpoint_url(settings, model.name, "v2"), v2_request(bare, request_id="sv-v2-reg"))
    assert v2.status_code == 200, v2.text
    out = v2.json()
    assert out["id"] == "sv-v2-reg" and out["model_version"] == model.version
    assert out["outputs"][0]["shape"] == [len(rows), 1]
    np.testing.assert_allclose(out["outputs"][0]["data"], expected, rtol=1e-12)

    log = _log(settings, model.name)
    for row, value in zip(rows, expected, strict=True):
        line = log.loc[row["request_id"]]
        assert line["prediction"] == pytest.approx(value, rel=1e-12)
        assert line["x1"] == row["x1"] and line["x2"] == row["x2"]
        assert str(line["model_version"]) == model.version and line["task"] == "regression"
        assert line["latency_ms"] > 0
    v2_ids = [f"sv-v2-reg-{i}" for i in range(len(rows))]
    assert out["parameters"]["request_ids"] == v2_ids
    assert log.loc[v2_ids, "prediction"].to_numpy() == pytest.approx(expected, rel=1e-12)


def test_a_reader_of_another_project_finds_the_log_where_the_deployment_writes_it(
        settings: Settings, models: dict[str, Served], tmp_path: Path) -> None:
    """Monitoring from another project (or the JupyterLab root's dashboard) reads the deploying project's log."""
    from workbench.monitoring.deployment import read_window

    model = models["reg"]
    predict(settings, model.name, model.rows(3, start=10))
    elsewhere = settings.replace(state_dir=tmp_path / "another-project" / ".workbench")
    assert not (elsewhere.predictions_dir / model.name).exists()
    mine = read_predictions(settings, model.name)
    theirs = read_predictions(elsewhere, model.name)
    assert theirs.request_id.tolist() == mine.request_id.tolist() and len(mine) >= 3
    assert read_window(elsewhere, model.name).rows == read_window(settings, model.name).rows
    with pytest.raises(NotFound, match="no predictions logged for deployment .sv-no-such."):
        read_predictions(elsewhere, "sv-no-such")


def test_every_answered_prediction_is_logged_exactly_once_whatever_the_protocol(
        settings: Settings, models: dict[str, Served]) -> None:
    model = models["reg"]
    before = len(read_predictions(settings, model.name)) if (settings.predictions_dir / model.name).is_dir() else 0
    bare = model.rows(5, start=20)
    for protocol in ("predict", "invocations", "v2"):
        predict(settings, model.name, bare, protocol=protocol)
    assert len(read_predictions(settings, model.name)) == before + 15
    assert read_predictions(settings, model.name).request_id.is_unique


def test_a_replicas_log_rotates_and_compacts_while_it_serves(settings: Settings, models: dict[str, Served]) -> None:
    """Part 6 of the reliability issue: with 2 kB segments, a replica's log becomes Parquet segments as it
    serves, and the log still holds every answered prediction exactly once, with the answer it gave."""
    model = models["reg"]
    small = settings.replace(prediction_log_segment_mb=2 / 1024)
    name = "sv-rotating"
    if name in [d.name for d in list_deployments(small)]:
        delete_deployment(small, name)
    deploy(small, model.uri, name, resources=Resources(num_cpus=0), progress=False)
    try:
        answers = {}
        for i in range(30):
            rows = model.rows(1, start=i)
            body = predict(small, name, [{**rows[0], "request_id": f"rot-{i}"}])
            answers.update({p["request_id"]: p["prediction"] for p in body["predictions"]})
        folder = small.predictions_dir / name
        deadline = time.monotonic() + 60  # compaction runs in the replica's background thread
        while len(list(folder.glob("*.parquet"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(list(folder.glob("*.parquet"))) >= 3, sorted(p.name for p in folder.iterdir())
        log = read_predictions(small, name)
        assert log.request_id.is_unique and set(log.request_id) == set(answers)
        assert log.set_index("request_id")["prediction"].to_dict() == pytest.approx(answers)
    finally:
        delete_deployment(small, name)


def test_end_to_end_latency_at_the_ingress_covers_the_replicas_own(settings: Settings,
                                                                   models: dict[str, Served]) -> None:
    """Part 6 of the reliability issue: latency inside the replica (the log) and end to end at the ingress."""
    from workbench.monitoring.deployment import INGRESS_LATENCY_METRIC, ingress_latency_ms
    from workbench.monitoring.performance import metric_total, scrape_metrics

    model = models["reg"]

    def counted() -> float:  # HTTP requests Serve's ingress histogram has seen for this application
        try:
            return metric_total(scrape_metrics(settings.ray_metrics_url), INGRESS_LATENCY_METRIC + "_count",
                                {"application": model.name})
        except Exception:  # noqa: BLE001 - not exported yet
            return 0.0

    before = counted()
    for i in range(10):  # ten HTTP requests of one instance each (the log counts instances, not requests)
        predict(settings, model.name, model.rows(1, start=i))
    log = read_predictions(settings, model.name)
    deadline = time.monotonic() + 120  # Ray exports metrics every few seconds
    while counted() < before + 10 and time.monotonic() < deadline:
        time.sleep(1)
    assert counted() >= before + 10, f"Serve's ingress histogram counted {counted() - before} of 10 requests"
    ingress = ingress_latency_ms(settings, model.name)
    assert set(ingress) == {"ingress_p50_ms", "ingress_p90_ms", "ingress_p99_ms"}
    assert 0 < ingress["ingress_p50_ms"] <= ingress["ingress_p90_ms"] <= ingress["ingress_p99_ms"]
    # every request's end-to-end time includes its time in the replica
    assert ingress["ingress_p99_ms"] >= float(log["latency_ms"].min())


def test_multiclass_answers_a_label_and_a_probability_per_class(settings: Settings,
                                                                 models: dict[str, Served]) -> None:
    model = models["multi"]
    rows = model.rows(20)
    expected = model.expected(rows)
    assert list(expected.columns) == [f"proba_{c}" for c in CLASSES]

    body = predict(settings, model.name, rows)
    for answer, (_, probs) in zip(body["predictions"], expected.iterrows(), strict=True):
        assert set(answer) == {"request_id", "label", "probabilities"}
        assert answer["probabilities"] == pytest.approx({c: probs[f"proba_{c}"] for c in CLASSES}, rel=1e-12)
        assert answer["label"] == CLASSES[int(np.argmax(probs.to_numpy()))]

    raw = predict(settings, model.name, rows, protocol="invocations")["predictions"]
    assert pd.DataFrame(raw).to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-12)  # mlflow's records form

    v2 = predict(settings, model.name, rows, protocol="v2")
    assert [o["name"] for o in v2["outputs"]] == list(expected.columns)
    for output in v2["outputs"]:
        assert output["shape"] == [len(rows), 1] and output["datatype"] == "FP64"
        assert output["data"] == pytest.approx(expected[output["name"]].tolist(), rel=1e-12)

    log = _log(settings, model.name)
    for answer in body["predictions"]:
        line = log.loc[answer["request_id"]]
        assert line["predicted_label"] == answer["label"] and line["task"] == "multiclass"
        assert {c: line["probabilities"][c] for c in CLASSES} == pytest.approx(answer["probabilities"], rel=1e-12)


def test_odd_column_names_nulls_and_times_are_served_as_the_signature_says(settings: Settings,
                                                                           models: dict[str, Served]) -> None:
    model = models["odd"]
    rows = model.rows(30)
    assert any(r["colour"] is None for r in rows)
    expected = np.asarray(model.expected(rows))

    fields = request_fields(settings, model.name)["fields"]
    assert [f["name"] for f in fields] == ODD
    assert {f["name"]: f["type"] for f in fields}["größe"] == "long"
    assert [f["name"] for f in fields if f["nullable"]] == ["colour"]

    body = predict(settings, model.name, rows)
    np.testing.assert_allclose([p["prediction"] for p in body["predictions"]], expected, rtol=1e-12)
    split = {"dataframe_split": {"columns": ODD, "data": [[r[c] for c in ODD] for r in rows]}}
    response = _post(endpoint_url(settings, model.name, "invocations"), split)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["predictions"], expected, rtol=1e-12)
    v2 = predict(settings, model.name, rows, protocol="v2")
    np.testing.assert_allclose(v2["outputs"][0]["data"], expected, rtol=1e-12)

    metadata = requests.get(f"{settings.serve_url}/{model.name}/v2/models/{model.name}", timeout=30).json()
    assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == [
        ("petal width", "FP64"), ("ratio.a", "FP64"), ("größe", "INT64"), ("colour", "BYTES"), ("when", "BYTES")]
    assert requests.get(f"{settings.serve_url}/{model.name}/v2/health/ready", timeout=30).json() == {"ready": True}

    log = _log(settings, model.name)
    for answer, row in zip(body["predictions"], rows, strict=True):
        line = log.loc[answer["request_id"]]
        assert line["prediction"] == pytest.approx(answer["prediction"], rel=1e-12)
        assert line["größe"] == row["größe"] and line["petal width"] == row["petal width"]
        assert (line["colour"] if isinstance(line["colour"], str) else None) == row["colour"]
        assert pd.Timestamp(line["when"]).tz_localize(None) == pd.Timestamp(row["when"])
        assert pd.isna(line["task"])


@pytest.mark.parametrize(("change", "field"), [
    (lambda r: r.update({"größe": "many"}), "instances[0].größe"),
    (lambda r: r.update({"größe": 1.5}), "instances[0].größe"),
    (lambda r: r.update({"petal width": True}), "instances[0].petal width"),
    (lambda r: r.update({"when": "noon"}), "instances[0].when"),
    (lambda r: r.update({"ratio.b": 1.0}), "instances[0].ratio.b"),
    (lambda r: r.pop("ratio.a"), "instances[0].ratio.a"),
    (lambda r: r.update({"ratio.a": None}), "instances[0].ratio.a"),
    (lambda r: r.update({"colour": 3}), "instances[0].colour"),
])
def test_bad_payloads_are_422s_naming_the_field(settings: Settings, models: dict[str, Served], change: Any,
                                               field: str) -> None:
    model = models["odd"]
    before = len(read_predictions(settings, model.name))
    row = model.rows(1)[0]
    change(row)
    response = _post(endpoint_url(settings, model.name), {"instances": [row]})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field and field in response.json()["error"]
    with pytest.raises(InvalidInput, match="refused"):
        predict(settings, model.name, [row], protocol="invocations")
    v2 = _post(endpoint_url(settings, model.name, "v2"), v2_request([row]))
    assert v2.status_code == 422, v2.text
    assert v2.json()["field"].startswith("inputs")
    assert len(read_predictions(settings, model.name)) == before  # nothing scored, nothing logged


def test_a_null_where_the_signature_allows_it_is_scored(settings: Settings, models: dict[str, Served]) -> None:
    model = models["odd"]
    row = dict(model.rows(1)[0], colour=None)
    body = predict(settings, model.name, [row])
    assert body["predictions"][0]["prediction"] == pytest.approx(float(model.expected([row])[0]), rel=1e-12)


@pytest.mark.parametrize(("path", "body", "field"), [
    ("invocations", {"dataframe_split": {"columns": ["x1"], "data": [[1.0, 2.0]]}}, "dataframe_split.data[0]"),
    ("invocations", {"dataframe_split": {"columns": ["x1"], "data": [[1.0]]}}, "dataframe_split.data[0].x2"),
    ("invocations", {"dataframe_records": [{"x1": 1.0, "x2": "2"}]}, "dataframe_records[0].x2"),
    ("invocations", {"inputs": [1.0]}, "inputs"),
    ("v2", {"inputs": [{"name": "x1", "shape": [1], "datatype": "FP64", "data": [1.0]}]}, "inputs[x2].data[0]"),
    ("v2", {"inputs": [{"name": "x1", "shape": [2], "datatype": "FP64", "data": [1.0]}]}, "inputs[x1].shape"),
    ("v2", {"inputs": [{"name": "x1", "shape": [1], "datatype": "FP64", "data": [1.0]},
                       {"name": "x2", "shape": [1], "datatype": "FP64", "data": [None]}]}, "inputs[x2].data[0]"),
])
def test_the_other_protocols_name_the_bad_field_too(settings: Settings, models: dict[str, Served], path: str,
                                                    body: dict[str, Any], field: str) -> None:
    response = _post(endpoint_url(settings, models["reg"].name, path), body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_a_body_that_is_not_json_is_a_400_on_every_protocol(settings: Settings, models: dict[str, Served]) -> None:
    for path in ("predict", "invocations", "v2"):
        response = requests.post(endpoint_url(settings, models["reg"].name, path), data=b"{nope", timeout=30,
                                 headers={"content-type": "application/json"})
        assert response.status_code == 400, (path, response.text)


def test_a_model_without_a_signature_is_refused_saying_how_to_log_one(settings: Settings,
                                                                      models: dict[str, Served]) -> None:
    x = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    with mlflow.start_run(run_name="sv-no-signature"):
        info = mlflow.sklearn.log_model(LinearRegression().fit(x, [1.0, 2.0, 3.0]), name="model")
    name = f"sv-nosig-{uuid.uuid4().hex[:6]}"
    version = _register(settings, info, name)
    with pytest.raises(InvalidInput, match="signature") as caught:
        deploy(settings, f"models:/{name}/{version}", "sv-nosig", progress=False)
    assert "infer_signature" in str(caught.value)
    assert "sv-nosig" not in [d.name for d in list_deployments(settings)]


def test_the_deployment_says_what_it_serves(settings: Settings, models: dict[str, Served], tmp_path: Path) -> None:
    model = models["multi"]
    info = requests.get(f"{settings.serve_url}/{model.name}/", timeout=30).json()
    assert info["feature_service"] is None and info["model_version"] == model.version
    assert info["task"]["task"] == "multiclass" and info["task"]["classes"] == CLASSES
    unknown = requests.get(f"{settings.serve_url}/{model.name}/v2/models/nope", timeout=30)
    assert unknown.status_code == 404


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def mlflow_models_serve() -> Any:
    """MLflow's own scoring server (the app ``mlflow models serve`` runs under uvicorn) for a model URI, called
    in-process: starting the CLI costs minutes of imports on a loaded machine, the answers are the app's."""
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    def serve(uri: str) -> TestClient:
        return TestClient(scoring_server.init(mlflow.pyfunc.load_model(uri)))

    return serve


@pytest.mark.parametrize("which", ["odd", "multi"])
def test_invocations_answer_like_mlflow_models_serve(settings: Settings, models: dict[str, Served],
                                                     mlflow_models_serve: Any, which: str) -> None:
    model = models[which]
    peer = mlflow_models_serve(model.uri)
    rows = model.rows(15)
    columns = list(model.dtypes)
    for body in ({"dataframe_records": rows},
                 {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}}):
        theirs = peer.post("/invocations", json=body)
        ours = _post(endpoint_url(settings, model.name, "invocations"), body)
        assert theirs.status_code == ours.status_code == 200, (theirs.text, ours.text)
        expected, served = theirs.json()["predictions"], ours.json()["predictions"]
        assert type(served) is type(expected) and len(served) == len(expected)
        if which == "multi":  # records of proba_<class> columns
            assert [sorted(r) for r in served] == [sorted(r) for r in expected]
            assert pd.DataFrame(served).to_numpy() == pytest.approx(pd.DataFrame(expected).to_numpy(), rel=1e-12)
        else:
            np.testing.assert_allclose(served, expected, rtol=1e-12)


# The peer for the v2 protocol: MLServer with its MLflow runtime (what KServe runs for modelFormat: mlflow),
# in a virtual environment of its own (its pins clash with ours): `python3.11 -m venv .venv-mlserver &&
# .venv-mlserver/bin/pip install mlserver==1.7.1 mlserver-mlflow==1.7.1 mlflow==3.17.2 scikit-learn==1.9.1`
# (tritonclient[http], the v2 client used below, comes with it).
MLSERVER_BIN = Path(__file__).resolve().parents[2] / ".venv-mlserver" / "bin"

V2_CLIENT = '''
import json, sys
import numpy as np
import tritonclient.http as http

spec = json.loads(sys.stdin.read())
answers = {}
for key, target in spec["targets"].items():
    client = http.InferenceServerClient(url=target["url"])
    inputs = []
    for column in spec["columns"]:
        data = np.array(column["data"], dtype=object if column["datatype"] == "BYTES" else None)
        item = http.InferInput(column["name"], [len(column["data"])], column["datatype"])
        item.set_data_from_numpy(data, binary_data=False)
        inputs.append(item)
    result = client.infer(target["model"], inputs, parameters={"content_type": "pd"})
    answers[key] = [{"name": o["name"], "shape": o["shape"], "datatype": o["datatype"],
                     "data": result.as_numpy(o["name"]).reshape(-1).tolist()}
                    for o in result.get_response()["outputs"]]
print(json.dumps(answers))
'''


@pytest.fixture(scope="module")
def mlserver(settings: Settings, models: dict[str, Served], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One MLServer (in-process workers, as TOOLCHAIN.md says it must run here) serving the registered models
    under their deployment names, from their artifact folders; yields its host:port."""
    if not (MLSERVER_BIN / "mlserver").exists():
        pytest.skip(f"MLServer is not installed in {MLSERVER_BIN.parent} (see the comment above)")
    root = tmp_path_factory.mktemp("sv-mlserver")
    ports = [_free_port() for _ in range(3)]
    folder = root / "models"
    for key in ("reg", "multi", "odd"):
        model = models[key]
        local = mlflow.artifacts.download_artifacts(artifact_uri=model.uri, dst_path=str(root / "artifacts" / key))
        (folder / model.name).mkdir(parents=True)
        (folder / model.name / "model-settings.json").write_text(json.dumps({
            "name": model.name, "implementation": "mlserver_mlflow.MLflowRuntime", "parameters": {"uri": local}}))
    (folder / "settings.json").write_text(json.dumps({"host": "127.0.0.1", "http_port": ports[0], "grpc_port": ports[1],
                                                      "metrics_port": ports[2], "parallel_workers": 0}))
    log = open(root / "mlserver.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([str(MLSERVER_BIN / "mlserver"), "start", str(folder)], stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"127.0.0.1:{ports[0]}"
    deadline = time.monotonic() + 240
    try:
        while True:
            try:
                if all(requests.get(f"http://{url}/v2/models/{models[k].name}/ready", timeout=5).status_code == 200
                       for k in ("reg", "multi", "odd")):
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, (root / "mlserver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "MLServer did not get its models ready"
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@pytest.mark.parametrize("which", ["reg", "multi", "odd"])
def test_a_v2_client_gets_the_same_answers_from_mlserver_and_from_our_deployment(
        settings: Settings, models: dict[str, Served], mlserver: str, which: str) -> None:
    model = models[which]
    rows = [r for r in model.rows(12) if all(v is not None for v in r.values())]  # BYTES cannot carry a null
    request = v2_request(rows)
    ours = f"{settings.serve_url.removeprefix('http://')}/{model.name}"
    spec = {"columns": request["inputs"],
            "targets": {"mlserver": {"url": mlserver, "model": model.name}, "ours": {"url": ours, "model": model.name}}}
    done = subprocess.run([str(MLSERVER_BIN / "python"), "-c", V2_CLIENT], input=json.dumps(spec), text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout)
    theirs, served = answers["mlserver"], answers["ours"]
    assert [(o["name"], o["shape"], o["datatype"]) for o in served] == [
        (o["name"], o["shape"], o["datatype"]) for o in theirs]
    for mine, peer in zip(served, theirs, strict=True):
        assert mine["data"] == pytest.approx(peer["data"], rel=1e-12)
    expected = model.expected(rows)
    first = expected.iloc[:, 0] if isinstance(expected, pd.DataFrame) else expected
    assert served[0]["data"] == pytest.approx(np.asarray(first).tolist(), rel=1e-12)  # and both are the model's


def _deploy_in_process(settings: dict[str, Any], uri: str, name: str) -> None:
    """A separate process deploying (another notebook, another user)."""
    from workbench.config import Settings as S

    deploy(S.from_dict(settings), uri, name, resources=Resources(num_cpus=0), progress=False)


def _rollback_in_process(settings: dict[str, Any], name: str) -> None:
    from workbench.config import Settings as S
    from workbench.serving import rollback

    rollback(S.from_dict(settings), name, progress=False)


def _four_models(settings: Settings) -> list[tuple[str, str]]:
    """Four registered models of their own, each a line through the origin with slope 1..4 on ``x1`` (so
    each deployment's answer says which model it serves): ``[(models:/ uri, version), ...]``."""
    tag = uuid.uuid4().hex[:6]
    x = pd.DataFrame({"x1": np.linspace(-2.0, 2.0, 20), "x2": np.random.default_rng(3).uniform(0.0, 1.0, 20)})
    out = []
    for slope in range(1, 5):
        model = LinearRegression().fit(x, slope * x.x1)
        with mlflow.start_run(run_name=f"sv-conc-{slope}"):
            info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(x, model.predict(x)))
        version = _register(settings, info, f"sv-conc-{slope}-{tag}")
        out.append((f"models:/sv-conc-{slope}-{tag}/{version}", version))
    return out


def test_concurrent_deploys_and_a_rollback_lose_no_application(settings: Settings, models: dict[str, Served]) -> None:
    """Serve's API replaces the whole application set on every PUT: without one writer at a time, four
    processes deploying four models at once deleted each other's new applications."""
    import multiprocessing

    from workbench.serving import update_deployment

    reg = models["reg"]
    name = reg.uri.split("/")[1]
    second = str(mlflow.register_model(mlflow.MlflowClient().get_model_version(name, reg.version).source, name).version)
    rolled = "sv-conc-roll"
    names = [f"sv-conc-{i}" for i in range(4)]
    four = _four_models(settings)
    for stale in [rolled, *names]:
        if stale in [d.name for d in list_deployments(settings)]:
            delete_deployment(settings, stale)
    deploy(settings, reg.uri, rolled, resources=Resources(num_cpus=0), progress=False)
    update_deployment(settings, rolled, f"models:/{name}/{second}", progress=False)
    plain = settings.to_dict()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_deploy_in_process, args=(plain, uri, n))
               for (uri, _), n in zip(four, names, strict=True)]
    workers.append(context.Process(target=_rollback_in_process, args=(plain, rolled)))
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(600)
        assert [w.exitcode for w in workers] == [0] * len(workers)
        live = {d.name: d for d in list_deployments(settings)}
        assert set(names) <= set(live), f"lost applications: {sorted(set(names) - set(live))}"
        assert [(live[n].model_uri, live[n].model_version) for n in names] == four
        for slope, n in enumerate(names, start=1):  # and each answers with its own model
            answer = predict(settings, n, [{"x1": 1.0, "x2": 0.5}])
            assert answer["predictions"][0]["prediction"] == pytest.approx(slope, abs=1e-9)
        assert live[rolled].model_version == reg.version  # the rollback landed too
        assert {m.name for m in models.values()} <= set(live)  # and nobody else's application was dropped
    finally:
        for n in [rolled, *names]:
            if n in [d.name for d in list_deployments(settings)]:
                delete_deployment(settings, n)
