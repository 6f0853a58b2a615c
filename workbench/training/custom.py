"""The "custom" trainer: the user's own training code, run as the Ray job, logging into the workbench's run.

``entrypoint`` is a script (``train.py``, relative to ``working_dir``) run as ``__main__`` with ``args``
as its command line, or ``package.module:function``, called with a :class:`CustomContext` (or with no
argument if it takes none). ``working_dir`` is shipped to the cluster through Ray's ``runtime_env``
and is the code's working directory there. The job's environment carries MLflow's own
``MLFLOW_TRACKING_URI``, ``MLFLOW_RUN_ID`` and ``MLFLOW_EXPERIMENT_ID``, so ``mlflow.autolog()`` or
``mlflow.start_run()`` in the user's code log into the run :func:`submit_training_job` created, and
``WORKBENCH_FRAME_PATH``, ``WORKBENCH_LABEL_COLUMN``, ``WORKBENCH_FEATURE_COLUMNS`` (JSON),
``WORKBENCH_TASK`` say what to train on. The user's code runs in the job's driver process, which
reserves the spec's resources (``cpus_per_worker`` CPUs, a GPU with ``use_gpu`` plus ``gpus``,
``memory_mb``). Afterwards the model the run logged (if any) is tagged ``workbench.model_uri`` for the
registry stage.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import InvalidInput
from workbench.training.trainers import JobContext, Trainer, TrainOutcome

if TYPE_CHECKING:
    from workbench.training.spec import TrainingSpec

_MODULE_FUNCTION = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


@dataclass(frozen=True)
class CustomContext:
    """What a ``module:function`` entrypoint receives."""

    run_id: str
    tracking_uri: str
    experiment_id: str
    frame_path: str
    feature_columns: list[str]
    label_column: str
    task: str
    classes: list[Any] = field(default_factory=list)
    positive: Any = None
    args: list[str] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)


def is_module_function(entrypoint: str) -> bool:
    return bool(_MODULE_FUNCTION.match(entrypoint))


class CustomTrainer(Trainer):
    uses_frame = False

    def check(self, spec: TrainingSpec) -> None:
        if not spec.entrypoint:
            raise InvalidInput("entrypoint must name your training code: a script such as 'train.py' (relative "
                               "to working_dir) or 'package.module:function'")
        if spec.working_dir and not Path(spec.working_dir).is_dir():
            raise InvalidInput(f"working_dir {spec.working_dir} is not a folder")
        if not is_module_function(spec.entrypoint):
            if ":" in spec.entrypoint and not spec.entrypoint.endswith(".py"):
                raise InvalidInput(f"entrypoint {spec.entrypoint!r} is neither a script path nor "
                                   "'package.module:function'")
            if not spec.working_dir:
                raise InvalidInput(f"entrypoint script {spec.entrypoint!r} needs working_dir: the folder that holds "
                                   "it, shipped to the cluster as the job's working directory")
            script = Path(spec.working_dir) / spec.entrypoint
            if Path(spec.entrypoint).is_absolute():
                raise InvalidInput(f"entrypoint {spec.entrypoint!r} must be relative to working_dir (the folder "
                                   "shipped to the cluster)")
            if not script.is_file():
                raise InvalidInput(f"entrypoint script {script} does not exist (it is looked up in working_dir "
                                   f"{spec.working_dir or '.'!r})")
        if spec.sweep is not None:
            raise InvalidInput("sweep: trainer 'custom' does not support sweeps (run a Tune search in your own code)")

    def runtime_env(self, spec: TrainingSpec) -> dict[str, Any]:
        return {"working_dir": str(Path(spec.working_dir).resolve())} if spec.working_dir else {}

    def job_resources(self, spec: TrainingSpec) -> dict[str, float]:
        out: dict[str, float] = {"num_cpus": spec.cpus_per_worker}
        gpus = spec.gpus + (1.0 if spec.use_gpu else 0.0)
        if gpus > 0:
            out["num_gpus"] = gpus
        if spec.memory_mb > 0:
            out["memory"] = spec.memory_mb * 1024 * 1024
        return out

    def job_env(self, spec: TrainingSpec, run_id: str, experiment_id: str, tracking_uri: str) -> dict[str, str]:
        return {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_RUN_ID": run_id, "MLFLOW_EXPERIMENT_ID": experiment_id,
                "WORKBENCH_FRAME_PATH": spec.frame_path, "WORKBENCH_LABEL_COLUMN": spec.label_column,
                "WORKBENCH_FEATURE_COLUMNS": json.dumps(list(spec.feature_columns)), "WORKBENCH_TASK": spec.task}

    def train(self, job: JobContext) -> TrainOutcome:
        import mlflow

        from workbench.data.task import TAG_TASK
        from workbench.training.joblog import say
        from workbench.training.tracking import set_tags, tracking_client

        spec = job.spec
        mlflow.set_tracking_uri(job.tracking_uri)
        say(f"starting run {job.run_id}: your entrypoint {spec.entrypoint} {' '.join(spec.args)}")
        if "" not in sys.path:
            sys.path.insert(0, "")  # the working directory (the shipped working_dir)
        try:
            if is_module_function(spec.entrypoint):
                _call_function(spec, job)
            else:
                _run_script(spec)
        finally:
            if mlflow.active_run() is not None:
                mlflow.end_run()
        client = tracking_client(job.tracking_uri)
        model_uri = _logged_model_uri(client, job)
        tags = {TAG_TASK: spec.task, "workbench.final_epoch": "0"}
        if model_uri:
            tags["workbench.model_uri"] = model_uri
        else:
            say("your code logged no model into the run (log one with mlflow.<flavor>.log_model or autolog)")
        set_tags(client, job.run_id, tags)
        return TrainOutcome(model_uri, 0, {})


def _run_script(spec: TrainingSpec) -> None:
    script = str(Path(spec.entrypoint))
    saved = sys.argv
    sys.argv = [script, *spec.args]
    sys.path.insert(0, str(Path(script).parent.resolve()))
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise RuntimeError(f"your entrypoint {spec.entrypoint} exited with status {exc.code}") from exc
    finally:
        sys.argv = saved


def _call_function(spec: TrainingSpec, job: JobContext) -> None:
    module_name, function_name = spec.entrypoint.split(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"entrypoint {spec.entrypoint!r} cannot be imported from working_dir: {exc}") from exc
    context = CustomContext(job.run_id, job.tracking_uri, job.experiment_id, spec.frame_path,
                            list(spec.feature_columns), spec.label_column, spec.task, list(spec.classes),
                            spec.positive, list(spec.args), spec.to_dict())
    if inspect.signature(function).parameters:
        function(context)
    else:
        function()


def _logged_model_uri(client: Any, job: JobContext) -> str:
    """The newest model logged from the run (MLflow 3 LoggedModel), or ''."""
    run = client.get_run(job.run_id)
    try:
        logged = client.search_logged_models([run.info.experiment_id],
                                             filter_string=f"source_run_id = '{job.run_id}'", max_results=20)
    except Exception:  # noqa: BLE001 - an older server without logged models: nothing to tag
        return ""
    if not logged:
        return ""
    return f"models:/{max(logged, key=lambda m: m.creation_timestamp).model_id}"
