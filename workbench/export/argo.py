"""The lifecycle as an Argo ``WorkflowTemplate`` (and a ``Workflow`` running it), built with Hera.

One step per stage runs papermill on the stage notebook in the configured image; each step writes the
outputs its lineage record holds to files that become Argo output parameters, and the steps after it get
them as papermill parameters: the wiring :func:`workbench.export.pipelines.plan_pipeline` computes with
the rule ``workbench run`` follows. The training stage is a RayJob: a ``resource`` step creates it and waits
for ``status.jobStatus``; the RayJob's driver runs the training notebook with papermill; the steps around
it pack its parameters (base64, shell-safe in the RayJob's entrypoint) and read its record back from the
shared project volume. Secrets only as ``secretKeyRef``; nothing here needs a cluster.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hera.workflows import (
    Container,
    Env,
    Parameter,
    Resource,
    RetryStrategy,
    SecretEnv,
    Step,
    Steps,
    Workflow,
    WorkflowTemplate,
)
from hera.workflows import models as m

from workbench.errors import InvalidInput
from workbench.export.pipelines import (
    RUN_ID,
    STEP_MODULE,
    ExportOptions,
    StagePlan,
    check_options,
    consumed,
    executed_copy,
    fixed_arguments,
    step_argv,
    yaml_parameter,
)

RUN = "{{workflow.name}}"
"""The batch run's id inside the cluster: unique per Workflow, recorded as the stages' pipeline_run_id."""
OUTPUTS_DIR = "/tmp/outputs"
HOME_VOLUME = "workbench-home"
PACKED = "papermill_b64"
RAYJOB_SUCCESS = "status.jobStatus == SUCCEEDED"
RAYJOB_FAILURE = "status.jobStatus in (FAILED,STOPPED)"


def _env(options: ExportOptions) -> list[Env | SecretEnv]:
    env: list[Env | SecretEnv] = [Env(name="WORKBENCH_HOME", value=options.project_dir)]
    env += [Env(name=k, value=v) for k, v in sorted(options.env.items())]
    env += [SecretEnv(name=k, secret_name=ref.name, secret_key=ref.key) for k, ref in sorted(options.secrets.items())]
    return env


def _env_dicts(options: ExportOptions) -> list[dict[str, Any]]:
    """The same environment as plain Kubernetes EnvVar objects, for the RayJob's pods."""
    env: list[dict[str, Any]] = [{"name": "WORKBENCH_HOME", "value": options.project_dir}]
    env += [{"name": k, "value": v} for k, v in sorted(options.env.items())]
    env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
            for k, ref in sorted(options.secrets.items())]
    return env


def _mounts(options: ExportOptions) -> list[m.VolumeMount]:
    if not options.home_claim:
        return []
    return [m.VolumeMount(name=HOME_VOLUME, mount_path=f"{options.project_dir}/.workbench")]


INPUT = "{{{{inputs.parameters.{}}}}}"


def _outputs(keys: list[str]) -> list[Parameter]:
    return [Parameter(name=k, value_from=m.ValueFrom(path=f"{OUTPUTS_DIR}/{k}")) for k in keys]


def _argv(plan: StagePlan, options: ExportOptions, outputs: list[str]) -> list[str]:
    return step_argv(plan, options, outputs, run=RUN, param=lambda n: yaml_parameter(n, INPUT.format(n)),
                     output=lambda k: f"{k}={OUTPUTS_DIR}/{k}",
                     executed=executed_copy(options, RUN, plan.notebook))


def _output_flags(stage: str, keys: list[str]) -> list[str]:
    flags = ["step", "--stage", stage, "--run-id", RUN]
    for k in keys:
        flags += ["--output", f"{k}={OUTPUTS_DIR}/{k}"]
    return flags


def _retry(options: ExportOptions) -> RetryStrategy:
    return RetryStrategy(limit=options.retries, retry_policy="Always",
                         backoff=m.Backoff(duration="30s", factor=m.IntOrString(2), max_duration="30m"))


def _container(name: str, options: ExportOptions, args: list[str], inputs: list[str], outputs: list[str],
               timeout_s: int) -> Container:
    return Container(
        name=name, image=options.image, command=STEP_MODULE[:1], args=[*STEP_MODULE[1:], *args],
        inputs=[Parameter(name=k) for k in inputs], outputs=_outputs(outputs), env=_env(options),
        volume_mounts=_mounts(options), retry_strategy=_retry(options), active_deadline_seconds=timeout_s,
    )


def rayjob_manifest(plan: StagePlan, options: ExportOptions) -> dict[str, Any]:
    """A KubeRay RayJob whose driver runs the training notebook with papermill.

    Minimal (head + one worker group, no GPU, no queue labels): to be replaced by the RayJob of
    ``workbench.export.rayjob`` (sized from the TrainingSpec, Kueue labels) when that lands.
    """
    image = options.ray_image or options.image
    notebooks = f"{options.project_dir}/notebooks"
    entry = [*STEP_MODULE, "step", "--stage", plan.stage, "--run-id", RUN, "--", "papermill",
             f"{notebooks}/{plan.notebook}", executed_copy(options, RUN, plan.notebook), "--cwd", notebooks,
             "-k", "python3", "--no-progress-bar", "--log-output", "-b", f"{{{{inputs.parameters.{PACKED}}}}}"]
    if plan.takes_run_id:
        entry += ["-r", RUN_ID, RUN]
    volumes = ([{"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": options.home_claim}}]
               if options.home_claim else [])
    mounts = ([{"name": HOME_VOLUME, "mountPath": f"{options.project_dir}/.workbench"}] if options.home_claim else [])
    resources = {"requests": {"cpu": options.ray_cpus, "memory": options.ray_memory},
                 "limits": {"cpu": options.ray_cpus, "memory": options.ray_memory}}

    def pod(container: str) -> dict[str, Any]:
        spec: dict[str, Any] = copy.deepcopy(  # no YAML anchors between the two pod templates
            {"containers": [{"name": container, "image": image, "env": _env_dicts(options), "resources": resources,
                             "volumeMounts": mounts}], "volumes": volumes})
        if options.service_account:
            spec["serviceAccountName"] = options.service_account
        return {"spec": spec}

    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"generateName": f"{RUN}-{plan.stage}-", "namespace": "{{workflow.namespace}}",
                     "labels": {"app.kubernetes.io/part-of": "workbench", "workbench/stage": plan.stage,
                                "workbench/workflow": RUN}},
        "spec": {
            # every part is a DNS label, a path, a flag or base64: nothing for the shell to expand
            "entrypoint": " ".join(entry),
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": 600,
            "activeDeadlineSeconds": options.timeout_of(plan.stage),
            "submissionMode": "K8sJobMode",
            "rayClusterSpec": {
                "headGroupSpec": {"rayStartParams": {}, "template": pod("ray-head")},
                "workerGroupSpecs": [{"groupName": "workers", "replicas": options.ray_workers,
                                      "minReplicas": options.ray_workers, "maxReplicas": options.ray_workers,
                                      "rayStartParams": {}, "template": pod("ray-worker")}],
            },
        },
    }


def check_rayjob(manifest: dict[str, Any]) -> None:
    """KubeRay's and Kueue's rules (workbench.export.validate) on the RayJob as Argo will create it: with the
    placeholders filled in as Argo fills them and a name as the API server generates one."""
    from workbench.export.validate import validate_manifest

    text = yaml.safe_dump(manifest).replace("{{workflow.namespace}}", "default").replace(
        RUN, "workbench-lifecycle-x7k2p").replace(f"{{{{inputs.parameters.{PACKED}}}}}", "e30K")
    filled = yaml.safe_load(text)
    filled["metadata"]["name"] = filled["metadata"].pop("generateName") + "q9z4m"
    validate_manifest(filled)


def build(plans: list[StagePlan], options: ExportOptions) -> tuple[WorkflowTemplate, Workflow]:
    """The WorkflowTemplate (one step per stage, the training stage as a RayJob) and a Workflow running it."""
    check_options(options, plans)
    wanted = consumed(plans)
    producer_step = {p.stage: (f"{p.stage}-outputs" if p.stage == "train" else p.stage) for p in plans}
    volumes = ([m.Volume(name=HOME_VOLUME, persistent_volume_claim=m.PersistentVolumeClaimVolumeSource(
        claim_name=options.home_claim))] if options.home_claim else None)
    labels = {"app.kubernetes.io/part-of": "workbench"}
    with WorkflowTemplate(name=options.name, namespace=options.namespace or None, entrypoint="lifecycle",
                          service_account_name=options.service_account or None, volumes=volumes,
                          labels=labels) as template:
        steps: list[tuple[str, Any, dict[str, str]]] = []
        for plan in plans:
            inputs = list(plan.handed)
            timeout = options.timeout_of(plan.stage)
            handed = {k: f"{{{{steps.{producer_step[ref.stage]}.outputs.parameters.{ref.key}}}}}"
                      for k, ref in plan.handed.items()}
            if plan.stage != "train":
                args = _argv(plan, options, wanted[plan.stage])[len(STEP_MODULE):]
                steps.append((plan.stage, _container(plan.stage, options, args, inputs, wanted[plan.stage],
                                                     timeout), handed))
                continue
            pack = ["pack", "--to", f"{OUTPUTS_DIR}/{PACKED}", "--",
                    *[a for name in plan.handed for a in ("-y", yaml_parameter(name, INPUT.format(name)))],
                    *fixed_arguments(plan)]
            steps.append((f"{plan.stage}-args", _container(f"{plan.stage}-args", options, pack, inputs, [PACKED],
                                                           600), handed))
            manifest = rayjob_manifest(plan, options)
            check_rayjob(manifest)
            job = Resource(
                name=plan.stage, action="create", set_owner_reference=True,
                manifest=yaml.safe_dump(manifest, sort_keys=False),
                success_condition=RAYJOB_SUCCESS, failure_condition=RAYJOB_FAILURE,
                inputs=[Parameter(name=PACKED)],
                outputs=[Parameter(name="rayjob", value_from=m.ValueFrom(json_path="{.metadata.name}"))],
                retry_strategy=_retry(options), active_deadline_seconds=timeout,
            )
            steps.append((plan.stage, job, {PACKED: f"{{{{steps.{plan.stage}-args.outputs.parameters.{PACKED}}}}}"}))
            steps.append((f"{plan.stage}-outputs",
                          _container(f"{plan.stage}-outputs", options, _output_flags(plan.stage, wanted[plan.stage]),
                                     [], wanted[plan.stage], 600), {}))
        with Steps(name="lifecycle"):
            for name, tmpl, arguments in steps:
                Step(name=name, template=tmpl,
                     arguments=[Parameter(name=k, value=v) for k, v in arguments.items()] or None)
    from workbench.export.validate import loopback_references

    loopback = loopback_references(template.to_dict())
    if loopback:
        raise InvalidInput(f"the pipeline names the loopback interface, which inside a pod is the pod itself: "
                           f"{loopback[:3]}; use the services' in-cluster addresses")
    workflow = Workflow(generate_name=f"{options.name}-", namespace=options.namespace or None, labels=labels,
                        workflow_template_ref=m.WorkflowTemplateRef(name=options.name))
    return template, workflow


def to_documents(template: WorkflowTemplate, workflow: Workflow) -> list[dict[str, Any]]:
    return [template.to_dict(), workflow.to_dict()]


def write(plans: list[StagePlan], options: ExportOptions, target: Path) -> Path:
    """Build, then write both objects as one multi-document YAML file (``kubectl apply -f``/``argo submit``)."""
    template, workflow = build(plans, options)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump_all(to_documents(template, workflow), sort_keys=False))
    return target
