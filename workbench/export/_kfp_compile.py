"""Compile a pipeline description (JSON on stdin) to a Kubeflow Pipelines v2 IR YAML, with the kfp SDK.

Runs in ``.venv-kfp`` (kfp pins a protobuf older than the workbench's), as a plain script: it imports kfp
and the standard library only, never ``workbench``. ``workbench.export.kfp_pipeline`` writes the
description and reads back what this prints (one JSON line: the output path and the compile time).

Each step becomes a component loaded from a component spec (its argv with ``inputValue``/``outputPath``
placeholders), the tasks are wired output to input as described, run in order (``after``), and get their
retries, timeout, environment, Secrets (``secretKeyRef``, through kfp-kubernetes) and volume.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def _token(token: Any) -> Any:
    if isinstance(token, str):
        return token
    if "input" in token:
        return {"inputValue": token["input"]}
    if "output" in token:
        return {"outputPath": token["output"]}
    if "concat" in token:
        return {"concat": [_token(t) for t in token["concat"]]}
    raise ValueError(f"unknown argv token {token!r}")


def _component(step: dict[str, Any]) -> Any:
    from kfp import components

    spec = {
        "name": step["name"],
        "inputs": [{"name": name, "type": "String"} for name in step["inputs"]],
        "outputs": [{"name": name, "type": "String"} for name in step["outputs"]],
        "implementation": {"container": {"image": step["image"], "command": [_token(t) for t in step["command"]]}},
    }
    return components.load_component_from_text(json.dumps(spec))


def compile_description(description: dict[str, Any]) -> dict[str, Any]:
    from kfp import compiler, dsl, kubernetes

    made = {step["name"]: _component(step) for step in description["steps"]}
    run_input = description["run_id_input"]

    @dsl.pipeline(name=description["name"], description=description["description"])
    def lifecycle():  # type: ignore[no-untyped-def]  # kfp reads a return annotation as an output
        tasks: dict[str, Any] = {}
        previous = None
        for step in description["steps"]:
            kwargs: dict[str, Any] = {}
            for name in step["inputs"]:
                source = step["arguments"].get(name)
                if name == run_input:
                    kwargs[name] = dsl.PIPELINE_JOB_ID_PLACEHOLDER
                elif source is None:
                    raise ValueError(f"step {step['name']}: input {name} is wired to nothing")
                else:
                    kwargs[name] = tasks[source["step"]].outputs[source["output"]]
            task = made[step["name"]](**kwargs)
            task.set_display_name(step["name"])
            task.set_caching_options(False)  # a stage records a new version each run: never reuse one
            if step["retries"]:
                task.set_retry(num_retries=step["retries"], backoff_duration="30s", backoff_factor=2,
                               backoff_max_duration="1800s")
            kubernetes.set_timeout(task, int(step["timeout_s"]))
            for name, value in sorted(step["env"].items()):
                task.set_env_variable(name, value)
            for env, ref in sorted(step["secrets"].items()):
                kubernetes.use_secret_as_env(task, secret_name=ref["name"], secret_key_to_env={ref["key"]: env})
            if step.get("pvc"):
                kubernetes.mount_pvc(task, pvc_name=step["pvc"]["claim"], mount_path=step["pvc"]["mount"])
            if previous is not None:
                task.after(previous)
            tasks[step["name"]] = task
            previous = task

    started = time.perf_counter()
    compiler.Compiler().compile(lifecycle, description["output"])
    return {"output": description["output"], "compile_s": round(time.perf_counter() - started, 3)}


def main() -> int:
    description = json.load(sys.stdin)
    try:
        result = compile_description(description)
    except Exception as exc:  # noqa: BLE001 - reported to the caller, which raises its own error
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
