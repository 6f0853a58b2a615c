"""A language model into MLflow: the Hugging Face folder as the run's artifacts, registered, aliased.

The run holds the folder under ``model/`` (what vLLM serves; :mod:`workbench.serving.vllm` downloads it),
the prompt template (``prompt_template.jinja``, the chat template the model was tuned with), the
evaluation results (``eval_results.json``, their scores as metrics) and where the weights came from
(params and the folder's manifest with SHA-256 of every weights file).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workbench.config import Settings
from workbench.errors import InvalidInput
from workbench.lineage import git_state
from workbench.llm.evaluate import EvalResult
from workbench.llm.model import ModelFolder
from workbench.registry import CHAMPION, ModelVersionInfo, set_alias

MODEL_ARTIFACT_PATH = "model"
DEFAULT_LLM_EXPERIMENT = "llm"
DEFAULT_LLM_NAME = "smollm2-135m-instruct"


@dataclass(frozen=True)
class LoggedLLM:
    """The run that holds the model folder, and the registered version made from it."""

    run_id: str
    experiment_id: str
    artifact_uri: str
    version: ModelVersionInfo

    @property
    def model_uri(self) -> str:
        return self.version.uri


def log_llm(settings: Settings, folder: ModelFolder, *, model_name: str = DEFAULT_LLM_NAME,
            evaluation: EvalResult | None = None, experiment: str = DEFAULT_LLM_EXPERIMENT,
            alias: str | None = CHAMPION, run_name: str | None = None,
            extra_params: dict[str, str] | None = None, run_id: str | None = None) -> LoggedLLM:
    """Log ``folder`` as a run's artifacts, register it as a new version of ``model_name``, set ``alias``.

    ``run_id``: log into that existing run (a fine-tune's) instead of a new one in ``experiment``.
    """
    from mlflow.exceptions import MlflowException

    from workbench.registry.client import mlflow_client, mlflow_errors

    if not (folder.path / "config.json").is_file():
        raise InvalidInput(f"{folder.path} is not a Hugging Face model folder (no config.json)")
    client = mlflow_client(settings)
    with mlflow_errors(f"creating the MLflow experiment {experiment!r}"):
        if run_id:
            experiment_id = client.get_run(run_id).info.experiment_id
        else:
            found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    commit, dirty = git_state(settings.project_dir)
    tags = {"workbench.kind": "llm", "workbench.llm.source": folder.source,
            "mlflow.source.git.commit": commit, "workbench.git_dirty": str(dirty).lower()}
    if evaluation is not None:
        tags["workbench.eval_prompt_set"] = evaluation.prompt_set
    with mlflow_errors(f"logging {folder.name} to MLflow at {settings.mlflow_uri}"):
        if run_id:
            for key, value in tags.items():
                if value:
                    client.set_tag(run_id, key, value)
        else:
            run_id = client.create_run(experiment_id, run_name=run_name or f"import-{folder.name}",
                                       tags={k: v for k, v in tags.items() if v}).info.run_id
        try:
            for key, value in {**folder.params(), **(extra_params or {})}.items():
                client.log_param(run_id, key, value)
            client.log_artifacts(run_id, str(folder.path), MODEL_ARTIFACT_PATH)
            client.log_text(run_id, folder.chat_template or "", "prompt_template.jinja")
            if evaluation is not None:
                client.log_text(run_id, json.dumps(evaluation.to_dict(), indent=2), "eval_results.json")
                for metric, number in evaluation.metrics().items():
                    client.log_metric(run_id, metric, number)
            client.set_terminated(run_id, "FINISHED")
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        artifact_uri = client.get_run(run_id).info.artifact_uri
        try:
            client.create_registered_model(model_name, description="A language model served by vLLM (the LLM path)")
        except MlflowException as exc:
            if str(exc.error_code) != "RESOURCE_ALREADY_EXISTS":
                raise
        mv = client.create_model_version(model_name, f"{artifact_uri}/{MODEL_ARTIFACT_PATH}", run_id=run_id,
                                         tags={"workbench.kind": "llm"},
                                         description=f"{folder.name} from {folder.source}")
    version = ModelVersionInfo.from_mlflow(mv)
    if alias:
        version = set_alias(settings, model_name, alias, version.version)
    return LoggedLLM(run_id=run_id, experiment_id=experiment_id, artifact_uri=artifact_uri, version=version)


def download_eval_results(settings: Settings, run_id: str) -> dict[str, object]:
    """The evaluation results logged with a model run."""
    from workbench.registry.client import mlflow_client, mlflow_errors

    client = mlflow_client(settings)
    with tempfile.TemporaryDirectory() as tmp, mlflow_errors(f"reading eval_results.json of run {run_id}"):
        path = client.download_artifacts(run_id, "eval_results.json", tmp)
        return dict(json.loads(Path(path).read_text()))
