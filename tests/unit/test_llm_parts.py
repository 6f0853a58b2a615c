"""The LLM path's pure parts: engine options, commands, manifests, scoring, vLLM metrics, records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound, ServiceUnavailable
from workbench.llm.evaluate import PROMPT_SET, EvalPrompt, evaluate, exact_match, keyword_match, prompt_set_version
from workbench.monitoring import evaluate_alerts, parse_prometheus
from workbench.monitoring.llm import (
    TimedScrape,
    default_llm_alert_rules,
    llm_interval,
    llm_metrics_over_time,
    llm_snapshot,
    llm_token_cost,
)
from workbench.serving.vllm import (
    LLMDeployment,
    VLLMOptions,
    check_vllm_environment,
    get_llm_deployment,
    kserve_llm_manifest,
    list_llm_deployments,
    ray_serve_llm_config,
    validate_kserve_llm_manifest,
    vllm_command,
)


def test_options_map_onto_vllm_flags_and_reject_bad_values() -> None:
    args = VLLMOptions(max_model_len=1024, dtype="auto", gpu_memory_utilization=0.8, tensor_parallel_size=2).args()
    assert args[:6] == ["--dtype", "auto", "--max-model-len", "1024", "--max-num-seqs", "4"]
    assert "--tensor-parallel-size" in args and args[args.index("--tensor-parallel-size") + 1] == "2"
    assert args[args.index("--gpu-memory-utilization") + 1] == "0.8" and "--enforce-eager" in args
    assert "--tensor-parallel-size" not in VLLMOptions().args()
    for bad, match in (({"dtype": "int3"}, "dtype"), ({"max_model_len": 4}, "max_model_len"),
                       ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
                       ({"tensor_parallel_size": 0}, "tensor_parallel_size")):
        with pytest.raises(InvalidInput, match=match):
            VLLMOptions(**bad)  # type: ignore[arg-type]


def test_command_is_the_cpu_venv_module_or_vllm_serve(settings: Settings) -> None:
    local = vllm_command(settings, "/m", port=27501, served_model_name="s", options=VLLMOptions())
    assert local[:3] == [str(settings.project_dir / ".venv-vllm" / "bin" / "python"), "-m",
                         "vllm.entrypoints.openai.api_server"]
    assert local[3:5] == ["--model", "/m"] and local[local.index("--host") + 1] == "127.0.0.1"
    assert local[local.index("--port") + 1] == "27501" and local[local.index("--served-model-name") + 1] == "s"
    gpu = vllm_command(settings.replace(vllm_command="vllm serve"), "/m", port=8100, served_model_name="s",
                       options=VLLMOptions(dtype="auto", enforce_eager=False))
    assert gpu[:3] == ["vllm", "serve", "/m"] and "--enforce-eager" not in gpu


def test_missing_vllm_environment_says_how_to_make_it(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match="make llm"):
        check_vllm_environment(settings.replace(vllm_python=str(tmp_path / "nope" / "python")))
    with pytest.raises(ServiceUnavailable, match="not on PATH"):
        check_vllm_environment(settings.replace(vllm_command="no-such-vllm-binary serve"))


def test_kserve_manifest_uses_the_huggingface_runtime_with_vllm() -> None:
    manifest = kserve_llm_manifest("smollm2", "s3://bucket/model", served_model_name="smol",
                                   options=VLLMOptions(dtype="auto", gpu_memory_utilization=0.9), model_version="3")
    model = manifest["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "huggingface"} and model["storageUri"] == "s3://bucket/model"
    assert {"--model_name=smol", "--backend=vllm", "--gpu-memory-utilization=0.9"} <= set(model["args"])
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert yaml.safe_load(yaml.safe_dump(manifest)) == manifest
    with pytest.raises(InvalidInput, match="metadata.name"):
        kserve_llm_manifest("Bad_Name", "s3://b/m", served_model_name="x")
    with pytest.raises(InvalidInput, match="storageUri"):
        kserve_llm_manifest("ok", "/local/path", served_model_name="x")
    broken = json.loads(json.dumps(manifest))
    broken["spec"]["predictor"]["model"]["modelFormat"]["name"] = "mlflow"
    with pytest.raises(InvalidInput, match="huggingface"):
        validate_kserve_llm_manifest(broken)


def test_ray_serve_llm_config_builds_the_openai_app() -> None:
    config = ray_serve_llm_config("smollm2", "s3://bucket/model", served_model_name="smol",
                                  options=VLLMOptions(dtype="auto", max_model_len=2048), max_replicas=2)
    app = config["applications"][0]
    assert app["import_path"] == "ray.serve.llm:build_openai_app" and app["name"] == "smollm2"
    llm = app["args"]["llm_configs"][0]
    assert llm["model_loading_config"] == {"model_id": "smol", "model_source": "s3://bucket/model"}
    assert llm["engine_kwargs"]["max_model_len"] == 2048 and llm["accelerator_type"] == "L4"
    assert llm["deployment_config"]["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 2}
    with pytest.raises(InvalidInput, match="replicas"):
        ray_serve_llm_config("x", "s3://b", served_model_name="x", min_replicas=3, max_replicas=2)


def test_scoring_exact_and_keyword() -> None:
    assert exact_match(" Paris. ", "Paris") and not exact_match("The capital is Paris.", "Paris")
    assert keyword_match("The capital is Paris.", ["paris"]) and not keyword_match("Parisian food", ["paris"])
    assert keyword_match("It has 8 legs", ["8", "eight"])
    answers = {p.question: p.answer for p in PROMPT_SET}
    perfect = evaluate(lambda messages: answers[messages[-1]["content"]])
    assert perfect.exact_match == 1.0 and perfect.keyword_match == 1.0 and perfect.n == len(PROMPT_SET)
    wrong = evaluate(lambda messages: "I do not know", limit=3)
    assert wrong.n == 3 and wrong.exact_match == 0.0 and wrong.metrics()["eval_keyword_match"] == 0.0
    assert wrong.answers[0]["expected"] == PROMPT_SET[0].answer
    assert prompt_set_version() == prompt_set_version(list(PROMPT_SET))
    assert prompt_set_version() != prompt_set_version([EvalPrompt("x", "q?", "a", ("a",))])
    with pytest.raises(InvalidInput, match="string"):
        evaluate(lambda messages: 42, limit=1)  # type: ignore[arg-type, return-value]


def _exposition(requests: int, gen_tokens: int, ttft_le: dict[str, int], running: int = 0, waiting: int = 0,
                kv: float = 0.0, model: str = "smol") -> str:
    labels = f'engine="0",model_name="{model}"'
    lines = ["# HELP vllm:num_requests_running Running.", "# TYPE vllm:num_requests_running gauge",
             f"vllm:num_requests_running{{{labels}}} {running}",
             "# HELP vllm:num_requests_waiting Waiting.", "# TYPE vllm:num_requests_waiting gauge",
             f"vllm:num_requests_waiting{{{labels}}} {waiting}",
             "# HELP vllm:kv_cache_usage_perc KV.", "# TYPE vllm:kv_cache_usage_perc gauge",
             f"vllm:kv_cache_usage_perc{{{labels}}} {kv}",
             "# HELP vllm:prompt_tokens_total Prompt.", "# TYPE vllm:prompt_tokens_total counter",
             f"vllm:prompt_tokens_total{{{labels}}} {requests * 10}",
             "# HELP vllm:generation_tokens_total Gen.", "# TYPE vllm:generation_tokens_total counter",
             f"vllm:generation_tokens_total{{{labels}}} {gen_tokens}"]
    for name in ("vllm:time_to_first_token_seconds", "vllm:request_time_per_output_token_seconds",
                 "vllm:e2e_request_latency_seconds"):
        lines += [f"# HELP {name} h.", f"# TYPE {name} histogram"]
        for le, count in ttft_le.items():
            lines.append(f'{name}_bucket{{{labels},le="{le}"}} {count}')
        lines += [f"{name}_count{{{labels}}} {requests}", f"{name}_sum{{{labels}}} {requests * 0.3}"]
    return "\n".join(lines) + "\n"


def test_vllm_metrics_snapshot_interval_and_over_time() -> None:
    first = TimedScrape(100.0, parse_prometheus(_exposition(4, 40, {"0.1": 2, "0.5": 4, "+Inf": 4})))
    second = TimedScrape(110.0, parse_prometheus(_exposition(12, 140, {"0.1": 2, "0.5": 12, "+Inf": 12},
                                                             running=2, waiting=1, kv=0.25)))
    snap = llm_snapshot(second.samples, model_name="smol")
    assert snap.requests == 12 and snap.generation_tokens == 140 and snap.running == 2 and snap.kv_cache_usage == 0.25
    assert math.isnan(snap.output_tokens_per_s) and snap.ttft_mean_ms == pytest.approx(300.0)
    window = llm_interval(second, first, model_name="smol")
    assert window.requests == 8 and window.generation_tokens == 100 and window.interval_s == 10.0
    assert window.output_tokens_per_s == pytest.approx(10.0) and window.waiting == 1  # gauges: the later scrape
    assert window.ttft_p50_ms == pytest.approx(100 + 400 * (4 / 8))  # all 8 new ones fell in (0.1, 0.5]
    frame = llm_metrics_over_time([second, first])
    assert list(frame["requests"]) == [8] and frame["output_tokens_per_s"].iloc[0] == pytest.approx(10.0)
    with pytest.raises(NotFound, match="no series for model 'other'"):
        llm_snapshot(second.samples, model_name="other")
    with pytest.raises(NotFound, match="vllm"):
        llm_snapshot(parse_prometheus("# TYPE x counter\nx_total 1\n"))
    cost = llm_token_cost(window, cpus=2)
    assert cost.cost_per_1m_tokens_usd == pytest.approx(2 * 0.05 / 36000 * 1e6)
    alerts = evaluate_alerts(default_llm_alert_rules(max_waiting=0, max_kv_cache_usage=0.2),
                             {**window.metrics(), **cost.metrics()})
    assert {a.rule for a in alerts} == {"llm_queue_building", "llm_kv_cache_full"}


def test_deployment_records_round_trip_and_not_found(settings: Settings) -> None:
    assert list_llm_deployments(settings) == []
    with pytest.raises(NotFound, match="deploy one with deploy_llm"):
        get_llm_deployment(settings, "smol")
    with pytest.raises(InvalidInput, match="lower-case"):
        get_llm_deployment(settings, "Not OK")
    record = {"name": "vllm-smol-8100", "pid": 999_999_999, "create_time": 0.0, "port": 8100,
              "url": "http://127.0.0.1:8100", "log": "/tmp/x.log", "command": ["vllm"]}
    deployment = LLMDeployment(name="smol", model_uri="models:/m/1", model_name="m", model_version="1",
                               served_model_name="smol", model_dir="/m", host="127.0.0.1", port=8100,
                               options={"dtype": "float32"}, process=record, created_at="now")
    folder = settings.llm_dir / "deployments"
    folder.mkdir(parents=True)
    (folder / "smol.json").write_text(json.dumps(deployment.to_dict()))
    found = get_llm_deployment(settings, "smol")
    assert found == deployment and found.base_url == "http://127.0.0.1:8100/v1" and not found.running
    assert [d.name for d in list_llm_deployments(settings)] == ["smol"]


def test_tiny_gpt2_folder_is_made_offline_and_described(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from workbench.llm import make_tiny_gpt2, read_model_folder, smollm2_gguf_path

    folder = make_tiny_gpt2(tmp_path / "tiny")
    assert folder.architecture == "GPT2LMHeadModel" and 100_000 < folder.parameters < 200_000
    assert set(folder.files_sha256) == {"model.safetensors"} and len(folder.files_sha256["model.safetensors"]) == 64
    assert read_model_folder(folder.path) == folder
    assert make_tiny_gpt2(tmp_path / "tiny").files_sha256 == folder.files_sha256  # reused, not rebuilt
    tokenizer = AutoTokenizer.from_pretrained(str(folder.path))
    assert len(tokenizer("hello world")["input_ids"]) == 2
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hello world"}], tokenize=False) == \
        "hello world\n"
    with pytest.raises(NotFound, match="config.json"):
        read_model_folder(tmp_path)
    gguf = smollm2_gguf_path()  # the package ships the weights: no download
    assert gguf.suffix == ".gguf" and gguf.stat().st_size > 90_000_000
