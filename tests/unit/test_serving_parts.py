"""Serving parts that need no cluster: payload validation, the prediction log files, KServe manifests."""

from __future__ import annotations

import json
import multiprocessing
import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from workbench.config import Settings, load_settings
from workbench.errors import InvalidInput
from workbench.features import FEATURE_SERVICE, MERCHANT_FEATURES, MODEL_FEATURES, REQUEST_FEATURES, USER_FEATURES
from workbench.monitoring import performance_summary, read_log
from workbench.serving import (
    PayloadError,
    PredictionLogWriter,
    parse_payload,
    validate_inference_service,
    write_manifest,
)
from workbench.serving.deployments import Autoscaling, Resources
from workbench.serving.kserve import inference_service
from workbench.serving.lookup import FraudLookup, request_schema
from workbench.serving.payload import MAX_INSTANCES, RequestSchema
from workbench.serving.prediction_log import check_deployment_name
from workbench.serving.signature import Field, ModelSignature

FRAUD_SIGNATURE = ModelSignature(tuple(Field(name, "double") for name in MODEL_FEATURES), ())


def fraud_lookup() -> FraudLookup:
    """The fraud configuration with the service's features given, so no Feast store is needed."""
    return FraudLookup.open(Settings(), FEATURE_SERVICE, provides=(*USER_FEATURES, *MERCHANT_FEATURES))


FRAUD = request_schema(FRAUD_SIGNATURE, fraud_lookup())


def one(raw: dict[str, object], schema: RequestSchema = FRAUD):  # type: ignore[no-untyped-def]
    return parse_payload({"instances": [raw]}, schema)[0]


def test_the_fraud_request_is_ids_and_amount_and_the_rest_is_derived_or_looked_up() -> None:
    assert FRAUD.names == ["user_id", "merchant_id", "amount"] and FRAUD.required == FRAUD.names
    lookup = fraud_lookup()
    assert ("amount", *lookup.derived) == REQUEST_FEATURES  # as the feature module splits them


def test_a_valid_instance_derives_hour_and_night_from_its_time() -> None:
    row = one({"user_id": 3, "merchant_id": 4, "amount": 12, "timestamp": "2026-03-01T04:30:00Z", "request_id": "r1"})
    assert (row.values["user_id"], row.values["merchant_id"], row.values["amount"]) == (3, 4, 12.0)
    assert row.timestamp == datetime(2026, 3, 1, 4, 30, tzinfo=UTC) and row.request_id == "r1"
    later = one({"user_id": 3, "merchant_id": 4, "amount": 1, "timestamp": "2026-03-01T08:00:00+02:00"})
    lookup = fraud_lookup()
    times = [row.timestamp, later.timestamp]
    assert lookup.derive("hour_of_day", times).tolist() == [4, 6]  # converted to UTC first
    assert lookup.derive("is_night", times).tolist() == [1, 0]
    assert len(later.request_id) == 32  # generated


@pytest.mark.parametrize(("body", "field", "words"), [
    (None, "instances", "required"),
    ({"instances": "x"}, "instances", "non-empty list"),
    ({"instances": [1]}, "instances[0]", "object"),
    ({"instances": [{"user_id": 1, "amount": 1}]}, "instances[0].merchant_id", "required"),
    ({"instances": [{"user_id": True, "merchant_id": 1, "amount": 1}]}, "instances[0].user_id", "integer"),
    ({"instances": [{"user_id": -1, "merchant_id": 1, "amount": 1}]}, "instances[0].user_id", "between"),
    ({"instances": [{"user_id": 1, "merchant_id": 1, "amount": float("nan")}]}, "instances[0].amount", "finite"),
    ({"instances": [{"user_id": 1, "merchant_id": 1, "amount": "5"}]}, "instances[0].amount", "number"),
    ({"instances": [{"user_id": 1, "merchant_id": 1, "amount": 1, "request_id": ""}]},
     "instances[0].request_id", "non-empty"),
    ({"instances": [{"user_id": 1, "merchant_id": 1, "amount": 1, "timestamp": 5}]}, "instances[0].timestamp",
     "ISO 8601"),
    ({"instances": [{"user_id": 1, "merchant_id": 1, "amount": 1}], "extra": 1}, "extra", "not a known field"),
    ({"instances": [{"user_id": 1, "merchant_id": 1, "amount": 1}] * (MAX_INSTANCES + 1)}, "instances", "at most"),
])
def test_bad_payloads_name_the_field(body: object, field: str, words: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_payload(body, FRAUD)
    assert caught.value.field == field
    assert words in str(caught.value)
    assert isinstance(caught.value, InvalidInput)


def test_one_payload_timestamp_for_instances_without_one() -> None:
    instances = parse_payload({"instances": [{"user_id": 1, "merchant_id": 1, "amount": 1}] * 3}, FRAUD)
    assert len({i.timestamp for i in instances}) == 1
    assert len({i.request_id for i in instances}) == 3


def _writer(folder: str, writer_id: str, n: int) -> None:
    log = PredictionLogWriter(Path(folder), writer_id)
    for i in range(n):
        log.append([{"request_id": f"{writer_id}-{i}-{j}", "timestamp": "2026-01-01T00:00:00+00:00",
                     "deployment": "d", "model_version": "1", "score": 0.5, "latency_ms": 1.0, "amount": j}
                    for j in range(5)])
    log.close()


def test_concurrent_writers_lose_nothing_and_a_cut_line_is_skipped(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_writer, args=(str(tmp_path), f"w{k}", 200)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    files = sorted(tmp_path.glob("*.jsonl"))
    assert len(files) == 4
    with open(files[0], "a") as handle:  # what a replica killed mid-write could leave
        handle.write('{"request_id": "half", "timest')
    log = read_log(tmp_path)
    assert len(log) == 4 * 200 * 5 and log.request_id.is_unique and "half" not in set(log.request_id)
    assert str(log.timestamp.dtype).startswith("datetime64") and log.score.eq(0.5).all()
    assert performance_summary(tmp_path).requests == 4000


def test_writer_refuses_nan_rather_than_writing_unreadable_json(tmp_path: Path) -> None:
    log = PredictionLogWriter(tmp_path, "w")
    with pytest.raises(ValueError):
        log.append([{"request_id": "x", "score": float("nan")}])
    assert log.path.read_text() == ""


@pytest.mark.parametrize("name", ["fraud", "fraud-2", "a"])
def test_deployment_names_ok(name: str) -> None:
    assert check_deployment_name(name) == name


@pytest.mark.parametrize("name", ["", "Fraud", "fraud_2", "-x", "x-", "a" * 64, "a/b", "../x"])
def test_deployment_names_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_deployment_name(name)


def test_resources_are_validated() -> None:
    with pytest.raises(InvalidInput):
        Resources(replicas=0)
    with pytest.raises(InvalidInput):
        Resources(max_batch_size=0)
    with pytest.raises(InvalidInput):
        Autoscaling(min_replicas=3, max_replicas=2)
    assert Autoscaling().to_serve()["max_replicas"] == 2


def test_settings_round_trip_through_plain_json(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, env={"WORKBENCH_SERVE_PORT": "9100", "WORKBENCH_PRICE_GPU_HOUR_USD": "3"})
    data = json.loads(json.dumps(settings.to_dict()))
    again = Settings.from_dict(data)
    assert again == settings and again.serve_port == 9100 and again.prices.gpu_hour_usd == 3.0
    assert again.predictions_dir == tmp_path.resolve() / ".workbench" / "predictions"
    with pytest.raises(Exception, match="unknown settings"):
        Settings.from_dict({**data, "nope": 1})


def test_secrets_travel_in_the_environment_not_in_the_dict(tmp_path: Path) -> None:
    url = "postgresql://feast:s3cret@db:5432/feast"
    settings = Settings(project_dir=tmp_path, feast_online_store="postgres", feast_online_store_connection=url)
    shown = settings.to_dict(secrets=False)
    assert "s3cret" not in json.dumps(shown)
    assert settings.secret_env() == {"WORKBENCH_FEAST_ONLINE_STORE_CONNECTION": url}
    assert Settings.from_dict(shown, env=settings.secret_env()) == settings
    assert Settings.from_dict(shown, env={}).feast_online_store_connection == ""


def test_kserve_manifest_is_valid_yaml_with_resources(tmp_path: Path) -> None:
    manifest = inference_service("fraud", "s3://bucket/models/1", replicas=2, max_replicas=4, num_cpus=0.5,
                                 num_gpus=1, model_version="3", feature_service="fraud_model_v1")
    path = write_manifest(manifest, tmp_path / "fraud.yaml")
    loaded = yaml.safe_load(path.read_text())
    assert loaded["kind"] == "InferenceService" and loaded["apiVersion"] == "serving.kserve.io/v1beta1"
    model = loaded["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "mlflow" and model["storageUri"] == "s3://bucket/models/1"
    assert model["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": "1"}
    assert loaded["spec"]["predictor"]["maxReplicas"] == 4


@pytest.mark.parametrize(("change", "where"), [
    (lambda m: m["metadata"].update(name="Fraud_Model"), "metadata.name"),
    (lambda m: m["spec"]["predictor"]["model"].update(storageUri="/local/path"), "storageUri"),
    (lambda m: m["spec"]["predictor"]["model"]["resources"]["requests"].update(cpu="lots"), "requests.cpu"),
    (lambda m: m["spec"]["predictor"].update(maxReplicas=0), "maxReplicas"),
    (lambda m: m.update(kind="Deployment"), "kind"),
])
def test_kserve_validation_names_the_bad_field(change: object, where: str) -> None:
    manifest = inference_service("fraud", "s3://bucket/m")
    change(manifest)  # type: ignore[operator]
    with pytest.raises(InvalidInput, match=where.replace(".", r"\.")):
        validate_inference_service(manifest)


def test_log_frames_from_the_monitoring_side_read_jsonl_and_parquet_together(tmp_path: Path) -> None:
    log = PredictionLogWriter(tmp_path, "r")
    log.append([{"request_id": "a", "timestamp": "2026-01-01T00:00:01+00:00", "deployment": "d",
                 "model_version": "1", "score": 0.1, "latency_ms": 2.0}])
    pd.DataFrame({"request_id": ["b"], "timestamp": [pd.Timestamp("2026-01-01T00:00:02Z")], "deployment": ["d"],
                  "model_version": ["1"], "score": [0.2], "latency_ms": [3.0]}).to_parquet(tmp_path / "old.parquet")
    frame = read_log(tmp_path).sort_values("request_id")
    assert list(frame.request_id) == ["a", "b"] and list(frame.score) == [0.1, 0.2]
    assert os.path.getsize(log.path) > 0


def test_app_config_pins_the_version_and_maps_resources(tmp_path: Path) -> None:
    from workbench.serving.deployments import IMPORT_PATH, _Target, app_config

    settings = Settings(project_dir=tmp_path, feast_online_store="postgres",
                        feast_online_store_connection="postgresql://u:pw@h/db")
    target = _Target("models:/fraud/3", "3", "models:/fraud@champion", "fraud_model_v1")
    fixed = app_config(settings, "fraud", target, Resources(replicas=2, num_cpus=0.25, max_batch_size=8))
    deployment = fixed["deployments"][0]
    assert fixed["import_path"] == IMPORT_PATH and fixed["route_prefix"] == "/fraud"
    assert deployment["num_replicas"] == 2 and "autoscaling_config" not in deployment
    assert deployment["ray_actor_options"] == {"num_cpus": 0.25, "num_gpus": 0.0}
    assert deployment["user_config"]["model_uri"] == "models:/fraud/3"
    assert deployment["user_config"]["max_batch_size"] == 8
    assert "pw@" not in json.dumps(fixed["args"])
    # the secret is in neither args nor runtime_env (Serve's REST API shows both); only its variable's name is
    assert "pw@" not in json.dumps(fixed) and "WORKBENCH_FEAST_ONLINE_STORE_CONNECTION" not in fixed["runtime_env"][
        "env_vars"]
    assert fixed["args"]["secret_variables"] == ["WORKBENCH_FEAST_ONLINE_STORE_CONNECTION"]
    scaled = app_config(settings, "fraud", target, Resources(autoscaling=Autoscaling(1, 4, 5.0)))
    assert scaled["deployments"][0]["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4,
                                                              "target_ongoing_requests": 5.0}
    assert "num_replicas" not in scaled["deployments"][0]


def test_deploy_checks_the_target_before_touching_a_cluster(tmp_path: Path) -> None:
    from workbench.serving import deploy

    settings = Settings(project_dir=tmp_path)
    with pytest.raises(InvalidInput, match="target must be"):
        deploy(settings, "models:/m/1", target="kserve")  # type: ignore[call-overload]
    with pytest.raises(InvalidInput, match="target='vllm' only"):
        deploy(settings, "models:/m/1", max_model_len=512)
