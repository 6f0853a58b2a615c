"""A brief full fine-tune of a language model folder as a Ray job (GPU when asked and present, else CPU).

The job trains on the built-in prompt set's questions and answers (chat-formatted, loss on every token),
for a few steps: enough to see the loss move and to produce a new folder to register and compare, not
to teach the model anything. Its loss per step goes to the MLflow run the driver creates; hand that run to
:func:`~workbench.llm.registry.log_llm` (``run_id=``) to register the result in the same run.

    result = finetune_llm(settings, folder.path, settings.llm_dir / "finetuned", steps=4)
    logged = log_llm(settings, read_model_folder(result.out_dir), run_id=result.run_id, alias="challenger")
"""

from __future__ import annotations

import argparse
import secrets
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.config import Settings
from workbench.errors import InvalidInput, ServiceUnavailable
from workbench.llm.registry import DEFAULT_LLM_EXPERIMENT

ENTRYPOINT_MODULE = "workbench.llm.finetune"


@dataclass(frozen=True)
class FinetuneResult:
    """The Ray job, the MLflow run holding its losses, and the folder it wrote."""

    job_id: str
    run_id: str
    out_dir: Path
    losses: list[float]
    device: str


def finetune_llm(settings: Settings, model_dir: str | Path, out_dir: str | Path, *, steps: int = 4,
                 learning_rate: float = 5e-5, batch_size: int = 4, use_gpu: bool = False,
                 experiment: str = DEFAULT_LLM_EXPERIMENT, run_name: str = "finetune",
                 timeout_s: float = 1800.0) -> FinetuneResult:
    """Submit the fine-tune to Ray (Jobs API), wait for it, return its losses; JobFailed with the log tail."""
    from ray.job_submission import JobSubmissionClient

    from workbench.registry.client import mlflow_client, mlflow_errors
    from workbench.training import wait_for_job

    source, target = Path(model_dir).resolve(), Path(out_dir).resolve()
    if not (source / "config.json").is_file():
        raise InvalidInput(f"{source} is not a Hugging Face model folder (no config.json)")
    if steps < 1 or batch_size < 1 or not learning_rate > 0:
        raise InvalidInput(f"steps and batch_size must be >= 1 and learning_rate > 0, got {steps}, {batch_size}, "
                           f"{learning_rate}")
    client = mlflow_client(settings)
    with mlflow_errors(f"creating the fine-tune run in {experiment!r}"):
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        run = client.create_run(experiment_id, run_name=run_name,
                                tags={"workbench.kind": "llm-finetune", "workbench.llm.base": str(source)})
    run_id = run.info.run_id
    for key, value in {"steps": steps, "learning_rate": learning_rate, "batch_size": batch_size,
                       "use_gpu": use_gpu}.items():
        client.log_param(run_id, f"finetune.{key}", str(value))
    job_id = f"workbench-llm-finetune-{run_id[:8]}-{secrets.token_hex(3)}"
    python = sys.executable if settings.profile == "local" else "python"
    args = [python, "-m", ENTRYPOINT_MODULE, "--model-dir", str(source), "--out-dir", str(target), "--steps",
            str(steps), "--learning-rate", str(learning_rate), "--batch-size", str(batch_size), "--run-id", run_id,
            "--tracking-uri", settings.mlflow_uri, "--device", "cuda" if use_gpu else "cpu"]
    try:
        JobSubmissionClient(settings.ray_address).submit_job(
            entrypoint=" ".join(shlex.quote(a) for a in args), submission_id=job_id,
            entrypoint_num_gpus=1 if use_gpu else 0,
            runtime_env={"env_vars": {**settings.engine_env(), "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}},
            metadata={"workbench": "llm-finetune", "mlflow_run_id": run_id})
    except (ConnectionError, RuntimeError) as exc:
        client.set_terminated(run_id, "FAILED")
        raise ServiceUnavailable(f"Ray at {settings.ray_address} did not accept the fine-tune job: {exc}") from exc
    wait_for_job(settings, job_id, timeout_s=timeout_s, progress=False)
    with mlflow_errors(f"reading the losses of run {run_id}"):
        history = client.get_metric_history(run_id, "train_loss")
        device = client.get_run(run_id).data.tags.get("workbench.ran_on", "unknown")
    return FinetuneResult(job_id=job_id, run_id=run_id, out_dir=target,
                          losses=[m.value for m in sorted(history, key=lambda m: m.step)], device=device)


def _train(model_dir: Path, out_dir: Path, steps: int, learning_rate: float, batch_size: int, run_id: str,
           tracking_uri: str, device: str) -> None:
    """The job's body: a few AdamW steps on the prompt set, loss per step to MLflow, the folder saved."""
    import torch
    from mlflow.tracking import MlflowClient
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.llm.evaluate import PROMPT_SET, messages_for
    from workbench.llm.model import ModelFolder, _write_manifest, read_model_folder

    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("asked for a GPU but torch sees none on this node")
    client = MlflowClient(tracking_uri)
    client.set_tag(run_id, "workbench.ran_on", device)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model = model.to(device)
    texts = [str(tokenizer.apply_chat_template(messages_for(p) + [{"role": "assistant", "content": p.answer}],
                                               tokenize=False)) for p in PROMPT_SET]
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    model.train()
    for step in range(steps):
        batch = [texts[(step * batch_size + i) % len(texts)] for i in range(batch_size)]
        enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        client.log_metric(run_id, "train_loss", float(loss.detach()), step=step)
        print(f"step {step}: loss {float(loss):.4f}", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    base = read_model_folder(model_dir)
    _write_manifest(ModelFolder(path=out_dir, name=f"{base.name}-ft", architecture=base.architecture,
                                source=f"{base.name} fine-tuned {steps} steps on the prompt set (run {run_id})",
                                parameters=sum(p.numel() for p in model.parameters()),
                                chat_template=base.chat_template))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="fine-tune a model folder (run as a Ray job)")
    for name in ("--model-dir", "--out-dir", "--run-id", "--tracking-uri", "--device"):
        parser.add_argument(name, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--learning-rate", type=float, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    a = parser.parse_args(argv)
    _train(Path(a.model_dir), Path(a.out_dir), a.steps, a.learning_rate, a.batch_size, a.run_id, a.tracking_uri,
           a.device)


if __name__ == "__main__":
    main()
