"""The lifecycle as a Kubeflow Pipelines v2 pipeline, compiled by the kfp SDK in its own environment.

``kfp==2.17.3`` and ``kfp-kubernetes`` pin ``protobuf<7``, older than the workbench's, so they live in
``.venv-kfp`` (``make kfp``) and the compiler runs there as a subprocess (``_kfp_compile.py``), fed a JSON
description of the pipeline built here: the same steps, wiring (:func:`~workbench.export.pipelines.plan_pipeline`),
retries, timeouts, environment and Secrets as the Argo export.

KFP v2 has no resource step: the training stage runs its notebook like the others, and the notebook submits
its job to the Ray cluster the cluster profile names (the Argo export creates a RayJob instead).
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import InvalidInput, ServiceUnavailable
from workbench.export.pipelines import ExportOptions, StagePlan, check_options, consumed, executed_copy, step_argv

COMPILER = Path(__file__).with_name("_kfp_compile.py")
RUN_INPUT = "workbench_pipeline_job"
"""Every component's input carrying the batch run's id (KFP's pipeline job id)."""
COMPILE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Compiled:
    path: Path
    compile_s: float
    """Seconds in kfp's compiler; ``total_s`` adds the subprocess and its imports."""
    total_s: float


def default_python(project_dir: Path) -> Path:
    return project_dir / ".venv-kfp" / "bin" / "python"


def describe(plans: list[StagePlan], options: ExportOptions, output: Path) -> dict[str, Any]:
    """The JSON the compiler script reads: one entry per step, argv tokens with KFP placeholders."""
    check_options(options, plans)
    wanted = consumed(plans)
    steps = []
    for plan in plans:
        if RUN_INPUT in plan.handed:
            raise InvalidInput(f"{plan.notebook} declares {RUN_INPUT!r}, the name the KFP export uses for the run id")
        argv = step_argv(plan, options, wanted[plan.stage], run={"input": RUN_INPUT},
                         param=lambda n: {"concat": [f"{n}: ", {"input": n}]},
                         output=lambda k: {"concat": [f"{k}=", {"output": k}]},
                         executed={"concat": [executed_copy(options, "", "").removesuffix("//"), "/",
                                              {"input": RUN_INPUT}, f"/{plan.notebook}"]})
        steps.append({
            "name": plan.stage,
            "image": options.image,
            "command": argv,
            "inputs": [RUN_INPUT, *plan.handed],
            "outputs": wanted[plan.stage],
            "arguments": {k: {"step": ref.stage, "output": ref.key} for k, ref in plan.handed.items()},
            "retries": options.retries,
            "timeout_s": options.timeout_of(plan.stage),
            "env": {"WORKBENCH_HOME": options.project_dir, **options.env},
            "secrets": {k: {"name": ref.name, "key": ref.key} for k, ref in options.secrets.items()},
            "pvc": ({"claim": options.home_claim, "mount": f"{options.project_dir}/.workbench"}
                    if options.home_claim else None),
        })
    return {"name": options.name, "description": "The workbench lifecycle: one step per stage notebook",
            "run_id_input": RUN_INPUT, "output": str(output), "steps": steps}


def compile_pipeline(plans: list[StagePlan], options: ExportOptions, output: Path, python: Path) -> Compiled:
    """Write the KFP IR YAML to ``output`` by running the compiler in the kfp venv (``python``)."""
    description = describe(plans, options, output.resolve())
    if not python.is_file():
        raise ServiceUnavailable(f"the kfp environment is missing ({python}): create it with `make kfp`")
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        done = subprocess.run([str(python), str(COMPILER)], input=json.dumps(description), capture_output=True,
                              text=True, timeout=COMPILE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ServiceUnavailable(f"the kfp compiler did not finish within {COMPILE_TIMEOUT_S:.0f} s") from exc
    total = time.perf_counter() - started
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    try:
        result = json.loads(last)
    except json.JSONDecodeError:
        result = {"error": (done.stderr or done.stdout).strip()[-2000:] or f"exit code {done.returncode}"}
    if done.returncode or "error" in result:
        raise InvalidInput(f"kfp could not compile the pipeline: {result.get('error')}")
    return Compiled(Path(result["output"]), float(result["compile_s"]), total)
