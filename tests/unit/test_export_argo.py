"""`workbench export argo`: the WorkflowTemplate against Argo's real CRDs (strict), through Hera and back,
and its wiring against the stage notebooks."""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from workbench import pipeline
from workbench.errors import InvalidInput, NotFound
from workbench.export import argo
from workbench.export.pipelines import (
    NOTEBOOKS,
    ExportOptions,
    Ref,
    SecretRef,
    from_scalar,
    main,
    parse_secret,
    plan_pipeline,
    recorded_outputs,
    to_scalar,
    yaml_parameter,
)
from workbench.lineage import record_stage

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT.parent / "shared" / "crds"
ARGO = CRDS / "argo-workflows-v4.1.2"
KUBERAY = CRDS / "kuberay-v1.7.0"


def strict(schema: Any) -> Any:
    """openAPIV3Schema -> JSON Schema with the API server's strict field validation: an object listing its
    properties takes no other field (unless x-kubernetes-preserve-unknown-fields)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


@functools.cache
def crd_schema(path: Path, kind: str) -> dict[str, Any]:
    with path.open() as f:
        for doc in yaml.load_all(f, Loader=yaml.CSafeLoader):
            if doc and doc.get("kind") == "CustomResourceDefinition" and doc["spec"]["names"]["kind"] == kind:
                version = next(v for v in doc["spec"]["versions"] if v.get("storage"))
                return strict(version["schema"]["openAPIV3Schema"])  # type: ignore[no-any-return]
    raise LookupError(f"no CRD of kind {kind} in {path}")


def validate(doc: dict[str, Any], path: Path, kind: str) -> None:
    jsonschema.Draft7Validator(crd_schema(path, kind)).validate(doc)


needs_crds = pytest.mark.skipif(not ARGO.is_dir(), reason=f"Argo CRDs not found at {ARGO} (../shared/crds)")


@pytest.fixture(scope="module")
def plans() -> list[Any]:
    return plan_pipeline(ROOT / "notebooks")


@pytest.fixture(scope="module")
def docs(plans: list[Any]) -> list[dict[str, Any]]:
    options = ExportOptions(image="registry.example.com/team/workbench:1.2", namespace="ml",
                            secrets={"WORKBENCH_VLLM_API_KEY": SecretRef("workbench", "vllm-api-key")},
                            env={"WORKBENCH_PROFILE": "cluster"}, timeout_s={"train": 7200}, retries=3)
    template, workflow = argo.build(plans, options)
    return argo.to_documents(template, workflow)


def _templates(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in doc["spec"]["templates"]}


def _step_args(doc: dict[str, Any]) -> dict[str, dict[str, str]]:
    steps = _templates(doc)["lifecycle"]["steps"]
    return {s[0]["name"]: {p["name"]: p["value"] for p in s[0].get("arguments", {}).get("parameters", [])}
            for s in steps}


# against the CRDs --------------------------------------------------------------------------------
@needs_crds
def test_template_and_workflow_pass_the_strict_crd_schemas(docs: list[dict[str, Any]]) -> None:
    template, workflow = docs
    assert template["kind"] == "WorkflowTemplate" and workflow["kind"] == "Workflow"
    validate(template, ARGO / "argoproj.io_workflowtemplates.yaml", "WorkflowTemplate")
    validate(workflow, ARGO / "argoproj.io_workflows.yaml", "Workflow")
    assert workflow["spec"]["workflowTemplateRef"]["name"] == template["metadata"]["name"]


@needs_crds
def test_the_strict_schema_refuses_an_unknown_field_and_a_wrong_type(docs: list[dict[str, Any]]) -> None:
    path = ARGO / "argoproj.io_workflowtemplates.yaml"
    unknown = copy.deepcopy(docs[0])
    unknown["spec"]["templates"][0]["container"]["imagePullPolicyy"] = "Always"
    with pytest.raises(jsonschema.ValidationError, match="imagePullPolicyy"):
        validate(unknown, path, "WorkflowTemplate")
    wrong = copy.deepcopy(docs[0])
    wrong["spec"]["templates"][0]["activeDeadlineSeconds"] = {"seconds": 3}
    with pytest.raises(jsonschema.ValidationError):
        validate(wrong, path, "WorkflowTemplate")


@pytest.mark.skipif(not KUBERAY.is_dir(), reason=f"KubeRay CRDs not found at {KUBERAY}")
def test_the_training_steps_rayjob_passes_the_kuberay_crd(docs: list[dict[str, Any]]) -> None:
    train = _templates(docs[0])["train"]
    manifest = yaml.safe_load(train["resource"]["manifest"])
    validate(manifest, KUBERAY / "ray.io_rayjobs.yaml", "RayJob")
    assert manifest["spec"]["shutdownAfterJobFinishes"] is True
    assert manifest["spec"]["activeDeadlineSeconds"] == 7200
    for group in manifest["spec"]["rayClusterSpec"]["workerGroupSpecs"]:
        assert group["minReplicas"] == group["maxReplicas"] == group["replicas"]  # KubeRay rule, autoscaling off


# through Hera and back ---------------------------------------------------------------------------
def test_round_trip_through_hera(docs: list[dict[str, Any]]) -> None:
    from hera.workflows import Workflow, WorkflowTemplate

    template, workflow = docs
    text = yaml.safe_dump(template)
    assert WorkflowTemplate.from_yaml(text).to_dict() == template
    assert Workflow.from_dict(copy.deepcopy(workflow)).to_dict() == workflow


def test_write_gives_one_multi_document_file(plans: list[Any], tmp_path: Path) -> None:
    path = argo.write(plans, ExportOptions(), tmp_path / "out" / "lifecycle.yaml")
    kinds = [d["kind"] for d in yaml.safe_load_all(path.read_text())]
    assert kinds == ["WorkflowTemplate", "Workflow"]


# the wiring ----------------------------------------------------------------------------------------
def test_one_step_per_stage_and_the_training_stage_is_a_rayjob(docs: list[dict[str, Any]]) -> None:
    templates = _templates(docs[0])
    order = list(_step_args(docs[0]))
    assert order == ["data", "features", "train-args", "train", "train-outputs", "registry", "deploy", "monitor"]
    for stage in ("data", "features", "registry", "deploy", "monitor"):
        args = templates[stage]["container"]["args"]
        papermill = args[args.index("--") + 1:]
        assert papermill[:3] == ["papermill", f"/workbench/notebooks/{NOTEBOOKS[stage]}",
                                 "/workbench/.workbench/runs/{{workflow.name}}/" + NOTEBOOKS[stage]]
        assert templates[stage]["container"]["image"] == "registry.example.com/team/workbench:1.2"
        assert templates[stage]["retryStrategy"]["limit"] == 3
        assert templates[stage]["activeDeadlineSeconds"] == 4 * 3600
    train = templates["train"]
    assert train["resource"]["action"] == "create"
    assert train["resource"]["successCondition"] == "status.jobStatus == SUCCEEDED"
    assert "FAILED" in train["resource"]["failureCondition"]
    assert train["activeDeadlineSeconds"] == 7200
    assert yaml.safe_load(train["resource"]["manifest"])["kind"] == "RayJob"


def test_each_step_takes_its_parameters_from_the_step_that_recorded_them_last(docs: list[dict[str, Any]]) -> None:
    args = _step_args(docs[0])
    out = "{{{{steps.{}.outputs.parameters.{}}}}}".format
    assert args["features"] == {"dataset_name": out("data", "dataset_name"),
                                "dataset_version": out("data", "dataset_version")}
    assert args["train-args"].items() >= {"dataset_version": out("data", "dataset_version"),
                                          "feature_service": out("features", "feature_service"),
                                          "training_frame_path": out("features", "training_frame_path"),
                                          "training_frame_version": out("features", "training_frame_version")}.items()
    assert args["registry"] == {"run_id": out("train-outputs", "run_id")}
    # train and registry both record model_uri: the registry's (the champion) wins, as in `workbench run`
    assert args["deploy"] == {"model_uri": out("registry", "model_uri")}
    assert args["monitor"] == {"deployment": out("deploy", "deployment")}
    templates = _templates(docs[0])
    for step, params in args.items():
        produced = {p["name"] for t in templates.values() for p in t.get("outputs", {}).get("parameters", [])
                    if t["name"] == step}
        assert {p["name"] for p in templates[step].get("inputs", {}).get("parameters", [])} == set(params)
        for value in params.values():
            producer, key = value.removeprefix("{{steps.").removesuffix("}}").split(".outputs.parameters.")
            assert key in {p["name"] for p in templates[producer]["outputs"]["parameters"]}, (step, value)
        del produced


def _outputs_text(source: str) -> str:
    """The raw JSON text of a notebook from record_stage's ``outputs={`` to its next keyword argument."""
    text = source.split("record_stage(")[-1].split("outputs={", 1)[1]
    return re.split(r"inputs=|parameters=|notebook=|pipeline_run_id=", text, maxsplit=1)[0]


def test_every_handed_parameter_comes_from_the_last_stage_recording_it(plans: list[Any]) -> None:
    """An oracle written apart from plan_pipeline: scan the raw notebooks' sources."""
    import papermill as pm

    sources = {s: (ROOT / "notebooks" / n).read_text() for s, n in NOTEBOOKS.items()}
    for plan in plans:
        declared = set(pm.inspect_notebook(str(ROOT / "notebooks" / plan.notebook))) - {"pipeline_run_id"}
        earlier = [s for s in NOTEBOOKS if list(NOTEBOOKS).index(s) < list(NOTEBOOKS).index(plan.stage)]
        expected = {}
        for name in declared:
            producers = [s for s in earlier if f'\\"{name}\\":' in _outputs_text(sources[s])]
            if producers:
                expected[name] = Ref(producers[-1], name)
        assert plan.handed == expected, plan.stage


def test_the_plan_is_the_hand_over_of_workbench_run(plans: list[Any]) -> None:
    assert NOTEBOOKS == pipeline.NOTEBOOKS
    import papermill as pm

    for plan in plans:
        declared = pm.inspect_notebook(str(ROOT / "notebooks" / plan.notebook))
        assert plan.declared == tuple(declared)
        assert set(plan.handed) <= set(declared)
    by_stage = {p.stage: p for p in plans}
    assert by_stage["data"].outputs == ("dataset_name", "dataset_version", "dataset_path", "task")
    assert by_stage["deploy"].handed == {"model_uri": Ref("registry", "model_uri")}


def test_parameters_fixed_at_export_win_over_handed_ones(plans: list[Any]) -> None:
    fixed = plan_pipeline(ROOT / "notebooks", parameters={"deploy": {"model_uri": "models:/x/3"},
                                                          "data": {"n_rows": 500}})
    by_stage = {p.stage: p for p in fixed}
    assert by_stage["deploy"].handed == {} and by_stage["deploy"].fixed == {"model_uri": "models:/x/3"}
    template, _ = argo.build(fixed, ExportOptions())
    data_args = _templates(template.to_dict())["data"]["container"]["args"]
    assert data_args[-2:] == ["-y", "n_rows: 500"]


def test_secrets_are_secret_key_refs_and_never_values(docs: list[dict[str, Any]]) -> None:
    text = yaml.safe_dump_all(docs)
    data = _templates(docs[0])["data"]["container"]["env"]
    assert {"name": "WORKBENCH_VLLM_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "workbench", "key": "vllm-api-key"}}} in data
    rayjob = yaml.safe_load(_templates(docs[0])["train"]["resource"]["manifest"])
    head_env = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "WORKBENCH_VLLM_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "workbench", "key": "vllm-api-key"}}} in head_env
    # 7 step containers (5 stages, the training stage's args and outputs) + the RayJob's head and worker
    assert text.count("vllm-api-key") == 9
    assert "name: WORKBENCH_VLLM_API_KEY\n  value" not in text and "sk-" not in text


# negative ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env", [{"AWS_SECRET_ACCESS_KEY": "abc"}, {"WORKBENCH_VLLM_API_KEY": "sk-1"},
                                 {"MLFLOW_TRACKING_TOKEN": "t"}, {"DB_PASSWORD": "p"}])
def test_an_inline_secret_value_is_refused(plans: list[Any], env: dict[str, str]) -> None:
    with pytest.raises(InvalidInput, match="Kubernetes Secret"):
        argo.build(plans, ExportOptions(env=env))


@pytest.mark.parametrize("image", ["", "Workbench:latest", "Team/wb:1", "registry.example.com/team/wb:bad tag",
                                   "wb:-x", "wb@sha256:abc", "http://registry/wb:1"])
def test_a_bad_image_reference_is_refused(plans: list[Any], image: str) -> None:
    with pytest.raises(InvalidInput, match="image reference"):
        argo.build(plans, ExportOptions(image=image))


def test_good_image_references_pass(plans: list[Any]) -> None:
    for image in ("workbench", "localhost:5000/wb:1.0", "ghcr.io/org/team/wb:v1.2-rc.1", "Registry.Example.com:443/wb",
                  "wb@sha256:" + "a" * 64):
        argo.build(plans, ExportOptions(image=image))


def test_a_loopback_address_is_refused(plans: list[Any]) -> None:
    with pytest.raises(InvalidInput, match="loopback"):
        argo.build(plans, ExportOptions(env={"WORKBENCH_MLFLOW_URI": "http://127.0.0.1:5000"}))


def test_an_unknown_stage_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown stage 'training'"):
        plan_pipeline(ROOT / "notebooks", stages=["data", "training"])
    with pytest.raises(InvalidInput, match="unknown stage 'serve'"):
        plan_pipeline(ROOT / "notebooks", parameters={"serve": {"x": 1}})
    with pytest.raises(InvalidInput, match="unknown stage"):
        argo.build(plan_pipeline(ROOT / "notebooks"), ExportOptions(timeout_s={"serve": 10}))


def test_a_parameter_the_notebook_does_not_declare_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no parameter"):
        plan_pipeline(ROOT / "notebooks", parameters={"train": {"epochz": 3}})


def test_no_notebooks_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        plan_pipeline(tmp_path)


def test_a_bad_secret_argument_and_a_bad_name(plans: list[Any]) -> None:
    assert parse_secret("TOKEN=wb:token") == ("TOKEN", SecretRef("wb", "token"))
    for text in ("TOKEN", "TOKEN=wb", "=wb:k", "TOKEN=:k"):
        with pytest.raises(InvalidInput):
            parse_secret(text)
    with pytest.raises(InvalidInput, match="DNS label"):
        argo.build(plans, ExportOptions(name="Workbench_Lifecycle"))


def test_outputs_that_are_not_a_dict_literal_are_refused(tmp_path: Path) -> None:
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": "record_stage(s, 'data', outputs=out)"}]}
    path = tmp_path / "01_data.ipynb"
    path.write_text(json.dumps(nb))
    with pytest.raises(InvalidInput, match="dict literal"):
        recorded_outputs(path)


# values between steps, and the step runner -----------------------------------------------------------
@pytest.mark.parametrize("value", ["0123", "2026-12-01", "a\nb: c", "it's", "True", "null", "", 1e-5, 3, 2.5,
                                   True, None, ["a", 1], {"kind": "binary", "label": "is_fraud"}, "runs:/ab/model"])
def test_a_value_reaches_papermill_unchanged(value: Any) -> None:
    assert from_scalar(yaml_parameter("x", to_scalar(value))) == {"x": value}


def test_the_step_runner_writes_the_records_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.config import load_settings

    (tmp_path / "workbench.toml").write_text("")
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    settings = load_settings(tmp_path)
    record_stage(settings, "data", {"dataset_version": "0123", "dataset_name": "tx", "task": {"kind": "binary"}},
                 pipeline_run_id="wf-1")
    out = tmp_path / "out"
    assert main(["step", "--stage", "data", "--run-id", "wf-1", "--output", f"dataset_version={out}/v",
                 "--output", f"task={out}/t"]) == 0
    assert (out / "v").read_text() == "'0123'"
    assert from_scalar((out / "t").read_text()) == {"kind": "binary"}
    with pytest.raises(InvalidInput, match="recorded no output 'model_uri'"):
        main(["step", "--stage", "data", "--run-id", "wf-1", "--output", f"model_uri={out}/m"])
    with pytest.raises(NotFound):
        main(["step", "--stage", "data", "--run-id", "wf-2", "--output", f"dataset_version={out}/v"])


def test_pack_gives_papermill_one_base64_mapping(tmp_path: Path) -> None:
    target = tmp_path / "b64"
    assert main(["pack", "--to", str(target), "--", "-y", "a: '0123'", "-y", "b: [1, 2]"]) == 0
    text = base64.b64decode(target.read_text()).decode()
    assert from_scalar(text) == {"a": "0123", "b": [1, 2]}
    assert target.read_text().isascii() and " " not in target.read_text()


def test_the_cli_writes_the_argo_export(tmp_path: Path) -> None:
    import argparse

    from workbench.config import Settings
    from workbench.export.pipelines import register_cli

    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers(dest="target", required=True))
    out = tmp_path / "wf.yaml"
    args = parser.parse_args(["argo", "-o", str(out), "--image", "ghcr.io/org/wb:2", "--timeout", "features=60",
                              "--secret", "WORKBENCH_VLLM_API_KEY=wb:key", "--env", "WORKBENCH_PROFILE=cluster",
                              "-p", "data.n_rows=500", "--stages", "data", "features"])
    assert args.export_handler(Settings(project_dir=ROOT), args) == 0
    template, workflow = yaml.safe_load_all(out.read_text())
    assert [s[0]["name"] for s in _templates(template)["lifecycle"]["steps"]] == ["data", "features"]
    assert _templates(template)["data"]["container"]["args"][-2:] == ["-y", "n_rows: 500"]
    with pytest.raises(InvalidInput, match="Kubernetes Secret"):
        bad = parser.parse_args(["argo", "-o", str(out), "--env", "AWS_SECRET_ACCESS_KEY=x"])
        bad.export_handler(Settings(project_dir=ROOT), bad)
    with pytest.raises(InvalidInput, match="timeout given for stage 'train'"):
        bad = parser.parse_args(["argo", "-o", str(out), "--timeout", "train=60", "--stages", "data"])
        bad.export_handler(Settings(project_dir=ROOT), bad)
