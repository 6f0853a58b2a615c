"""Ray Serve deployments on the real Ray head, MLflow server and Feast store.

One module-scoped model (two registered versions) is deployed, scored, rolled, rolled back, loaded,
killed and deleted. Scores are checked against the same MLflow model loaded here on the same Feast
features; the prediction log is checked request id by request id.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import ray
import requests
from serving_fixtures import Load, ServedModel, build_served_model, expected_scores, instances_from

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound
from workbench.monitoring import metric_total, scrape_metrics
from workbench.serving import (
    Resources,
    delete_deployment,
    deploy,
    endpoint_url,
    get_deployment,
    kserve_manifest,
    list_deployments,
    predict,
    read_predictions,
    rollback,
    serve_details,
    update_deployment,
    validate_inference_service,
)

pytestmark = pytest.mark.integration

NAME = "fraud-test"


@pytest.fixture(scope="module")
def model(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> ServedModel:
    return build_served_model(services, tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def deployed(model: ServedModel) -> Iterator[ServedModel]:
    """The champion (version 1) deployed with two replicas; deleted after the module."""
    for stale in list_deployments(model.settings):  # a kept test stack may hold an earlier run's apps
        delete_deployment(model.settings, stale.name)
    deploy(model.settings, model.champion_uri, NAME, resources=Resources(replicas=2, num_cpus=0.25),
           progress=False)
    yield model
    if NAME in [d.name for d in list_deployments(model.settings)]:
        delete_deployment(model.settings, NAME)


def logged(model: ServedModel) -> pd.DataFrame:
    return read_predictions(model.settings, NAME)


def test_scores_match_the_registered_model_on_feast_features(deployed: ServedModel) -> None:
    model = deployed
    batch = instances_from(model, 25, seed=1, prefix="match")
    body = predict(model.settings, NAME, batch)
    assert body["model_version"] == model.versions[0]
    served = {p["request_id"]: p["score"] for p in body["predictions"]}
    assert list(served) == [i["request_id"] for i in batch]  # answers come back in request order

    expected = expected_scores(model, batch, model.versions[0])
    np.testing.assert_allclose([served[i["request_id"]] for i in batch], expected, rtol=1e-9)

    log = logged(model).set_index("request_id")
    for instance, score in zip(batch, expected, strict=True):
        row = log.loc[instance["request_id"]]
        assert row["score"] == pytest.approx(score, rel=1e-9)
        assert str(row["model_version"]) == model.versions[0]
        assert row["amount"] == instance["amount"] and row["user_id"] == instance["user_id"]
        assert row["latency_ms"] > 0


@pytest.mark.parametrize(("body", "field"), [
    ({"instances": [{"user_id": 1, "merchant_id": 2}]}, "instances[0].amount"),
    ({"instances": [{"user_id": "7", "merchant_id": 2, "amount": 1.0}]}, "instances[0].user_id"),
    ({"instances": [{"user_id": 1, "merchant_id": 2, "amount": -5}]}, "instances[0].amount"),
    ({"instances": [{"user_id": 1, "merchant_id": 2, "amount": 1, "ammount": 2}]}, "instances[0].ammount"),
    ({"instances": [{"user_id": 1, "merchant_id": 2, "amount": 1, "timestamp": "yesterday"}]},
     "instances[0].timestamp"),
    ({"instances": []}, "instances"),
    ({"rows": []}, "instances"),
    ({"instances": [{"request_id": "a", "user_id": 1, "merchant_id": 2, "amount": 1}] * 2},
     "instances[1].request_id"),
    ({"instances": [{"user_id": 1, "merchant_id": 2, "amount": 1}] * 1001}, "instances"),
])
def test_bad_payloads_get_a_4xx_naming_the_field(deployed: ServedModel, body: dict[str, object], field: str) -> None:
    before = len(logged(deployed))
    response = requests.post(endpoint_url(deployed.settings, NAME), json=body, timeout=30)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert field in response.json()["error"]
    assert len(logged(deployed)) == before  # nothing scored, nothing logged


def test_a_body_that_is_not_json_is_a_400(deployed: ServedModel) -> None:
    response = requests.post(endpoint_url(deployed.settings, NAME), data=b"{not json", timeout=30,
                             headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]


def test_client_raises_invalid_input_with_the_field(deployed: ServedModel) -> None:
    with pytest.raises(InvalidInput, match=r"instances\[0\]\.merchant_id") as caught:
        predict(deployed.settings, NAME, [{"user_id": 1, "merchant_id": 2.5, "amount": 3}])
    assert getattr(caught.value, "field", None) == "instances[0].merchant_id"


def test_deploy_refuses_what_it_cannot_serve(deployed: ServedModel) -> None:
    settings = deployed.settings
    with pytest.raises(InvalidInput, match="already exists"):
        deploy(settings, deployed.champion_uri, NAME, progress=False)
    with pytest.raises(InvalidInput, match="models:/"):
        deploy(settings, "s3://bucket/model", "other", progress=False)
    with pytest.raises(NotFound):
        deploy(settings, f"models:/{deployed.model_name}@no-such-alias", "other", progress=False)
    with pytest.raises(NotFound):
        deploy(settings, "models:/no-such-model/1", "other", progress=False)
    with pytest.raises(InvalidInput, match="deployment name"):
        deploy(settings, deployed.champion_uri, "Bad_Name", progress=False)
    with pytest.raises(InvalidInput, match="GPU"):
        deploy(settings, deployed.champion_uri, "gpu", resources=Resources(num_gpus=1), progress=False)
    assert [d.name for d in list_deployments(settings)] == [NAME]  # nothing half-deployed


def test_a_model_whose_signature_the_feature_service_cannot_fill_is_refused(deployed: ServedModel,
                                                                           tmp_path: Path) -> None:
    settings = deployed.settings
    code = tmp_path / "model.py"
    code.write_text("import mlflow\nfrom mlflow.pyfunc import PythonModel\n\n"
                    "class M(PythonModel):\n    def predict(self, context, model_input, params=None):\n"
                    "        return model_input['credit_score'] * 0.0\n\nmlflow.models.set_model(M())\n")
    example = pd.DataFrame({"amount": [1.0], "credit_score": [700.0]})
    mlflow.set_tracking_uri(settings.mlflow_uri)
    with mlflow.start_run(experiment_id=mlflow.set_experiment(settings.experiment).experiment_id,
                          tags={"workbench.feature_service": "fraud_model_v1"}):  # Feast fills the rest
        info = mlflow.pyfunc.log_model(name="model", python_model=str(code), input_example=example,
                                       registered_model_name=f"{deployed.model_name}-other")
    with pytest.raises(InvalidInput, match="credit_score"):
        deploy(settings, f"models:/{deployed.model_name}-other/{info.registered_model_version}", "other",
               progress=False)


def test_roll_and_rollback_under_load_fail_no_request(deployed: ServedModel) -> None:
    model = deployed
    load = Load(model, NAME, concurrency=8, prefix=f"roll-{uuid.uuid4().hex[:6]}")
    try:
        load.wait_for(50)
        rolled = update_deployment(model.settings, NAME, model.version_uri(model.versions[1]), progress=False)
        assert rolled.model_version == model.versions[1] and rolled.history[-1]["model_version"] == model.versions[0]
        seen = len(load.answers)
        load.wait_for(seen + 50)
        back = rollback(model.settings, NAME, progress=False)
        assert back.model_version == model.versions[0] and back.history == []
        seen = len(load.answers)
        load.wait_for(seen + 50)
    finally:
        load.finish()
    assert load.failures == []
    versions = [version for _, version in load.answers.values()]
    assert set(versions) == set(model.versions)  # both were served, and nothing else
    log = logged(model)
    mine = log[log.request_id.isin(load.answers)]
    assert len(mine) == len(load.answers) and mine.request_id.is_unique  # each answer logged exactly once
    by_id = mine.set_index("request_id")
    for request_id, (score, version) in load.answers.items():
        assert str(by_id.at[request_id, "model_version"]) == version
        assert by_id.at[request_id, "score"] == pytest.approx(score, rel=1e-12)
    with pytest.raises(InvalidInput, match="nothing to roll back"):
        rollback(model.settings, NAME, progress=False)


def test_sustained_load_no_5xx_and_every_prediction_logged_once(deployed: ServedModel) -> None:
    load = Load(deployed, NAME, concurrency=16, prefix=f"sustained-{uuid.uuid4().hex[:6]}")
    try:
        load.wait_for(1500, timeout_s=300)
    finally:
        load.finish()
    assert load.failures == []
    log = logged(deployed)
    mine = log[log.request_id.str.startswith(load.prefix)]
    assert sorted(mine.request_id) == sorted(load.answers)
    assert mine.request_id.is_unique


def _replica_pids(settings: Settings) -> dict[str, int]:
    app = serve_details(settings)["applications"][NAME]
    return {r["replica_id"]: int(r["pid"]) for d in app["deployments"].values() for r in d["replicas"]
            if r.get("state") == "RUNNING" and r.get("pid")}


def test_a_killed_replica_is_replaced_and_no_accepted_prediction_is_lost(deployed: ServedModel) -> None:
    model = deployed
    before = _replica_pids(model.settings)
    assert len(before) == 2
    load = Load(model, NAME, concurrency=8, prefix=f"kill-{uuid.uuid4().hex[:6]}", retries=5)
    try:
        load.wait_for(100)
        victim_id, victim_pid = sorted(before.items())[0]
        os.kill(victim_pid, signal.SIGKILL)  # a crash, not a graceful stop
        seen = len(load.answers)
        load.wait_for(seen + 300, timeout_s=300)
        deadline = time.monotonic() + 180
        while True:  # Serve notices the death and starts a replacement
            now = _replica_pids(model.settings)
            if len(now) == 2 and victim_id not in now:
                break
            assert time.monotonic() < deadline, f"Serve did not replace replica {victim_id}: {now}"
            time.sleep(0.5)
        seen = len(load.answers)
        load.wait_for(seen + 100)
    finally:
        load.finish()
    log = logged(model)
    mine = log[log.request_id.str.startswith(load.prefix)]
    missing = set(load.answers) - set(mine.request_id)
    assert not missing, f"{len(missing)} answered predictions are not in the log"
    duplicated = set(mine.request_id[mine.request_id.duplicated()])
    assert duplicated <= load.retried  # only a retry of an answer lost with the replica can repeat
    assert get_deployment(model.settings, NAME).running


def test_serve_metrics_count_the_requests(deployed: ServedModel) -> None:
    settings = deployed.settings
    where = {"application": NAME}

    def totals() -> tuple[float, float]:
        samples = scrape_metrics(settings.ray_metrics_url)
        served = metric_total(samples, "ray_serve_num_http_requests_total", {**where, "status_code": "200"})
        failed = sum(metric_total(samples, "ray_serve_num_http_requests_total", {**where, "status_code": code})
                     for code in ("500", "502", "503", "504"))
        return served, failed

    # Ray exports metrics every metrics_report_interval_ms (10 s by default), through the worker and then the
    # node's agent: a total is settled once it has not moved over two whole export periods.
    period_s = ray._config.metrics_report_interval_ms() / 1000 + 1

    def settled(at_least: float = 0.0) -> tuple[float, float]:
        deadline = time.monotonic() + 240
        seen = [totals()]
        while not (len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3] and seen[-1][0] >= at_least):
            assert time.monotonic() < deadline, f"Serve's request counter did not settle: {seen[-3:]}"
            time.sleep(period_s)
            seen.append(totals())
        return seen[-1]

    served_before, failed_before = settled()  # earlier tests' requests may still be on their way
    predict(settings, NAME, instances_from(deployed, 5, seed=3))
    for _ in range(20):
        predict(settings, NAME, instances_from(deployed, 1, seed=4))
    served, failed = settled(served_before + 21)
    assert served - served_before == 21
    assert failed == failed_before


def test_kserve_manifest_of_the_champion(deployed: ServedModel, tmp_path: Path) -> None:
    manifest = kserve_manifest(deployed.settings, deployed.champion_uri, NAME,
                               resources=Resources(replicas=2, num_cpus=0.5), storage_uri="s3://models/fraud/1")
    validate_inference_service(manifest)
    predictor = manifest["spec"]["predictor"]
    assert predictor["minReplicas"] == 2 and predictor["model"]["storageUri"] == "s3://models/fraud/1"
    assert predictor["model"]["resources"]["requests"]["cpu"] == "500m"
    assert manifest["metadata"]["labels"]["workbench/model-version"] == deployed.versions[0]
    local = kserve_manifest(deployed.settings, deployed.champion_uri, NAME)
    assert local["spec"]["predictor"]["model"]["storageUri"].startswith("file://")


def test_delete_stops_serving_and_keeps_the_log(deployed: ServedModel) -> None:
    settings = deployed.settings
    rows = len(logged(deployed))
    delete_deployment(settings, NAME)
    assert NAME not in [d.name for d in list_deployments(settings)]
    with pytest.raises(NotFound):
        get_deployment(settings, NAME)
    with pytest.raises(NotFound):
        delete_deployment(settings, NAME)
    assert len(logged(deployed)) == rows
