"""Real vLLM (the CPU build in .venv-vllm) serving a tiny GPT-2 registered in the test MLflow server.

The model is built from a config (random weights, a word-level tokenizer), so the answers are gibberish,
but every path is real: MLflow artifacts → download → vLLM's OpenAI server → the openai client → /metrics.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from workbench.config import Settings
from workbench.errors import InvalidInput, NotFound, ServiceUnavailable
from workbench.llm import log_llm, make_tiny_gpt2
from workbench.monitoring import (
    default_llm_alert_rules,
    evaluate_alerts,
    llm_interval,
    llm_snapshot,
    llm_token_cost,
    scrape_llm,
    scrape_metrics,
)
from workbench.serving import (
    chat,
    complete,
    deploy_llm,
    get_llm_deployment,
    list_llm_deployments,
    restart_llm,
    roll_llm,
    rollback_llm,
    served_models,
    stop_llm,
)

pytestmark = pytest.mark.integration

MODEL = "tiny-gpt2-test"
API_KEY = "wb-canary-" + uuid.uuid4().hex  # vLLM refuses /v1 requests without it
VLLM_PORT_ABOVE_SERVE = 500  # 27500 (+ WORKBENCH_TEST_PORT_OFFSET): outside Ray's worker range


@pytest.fixture(scope="module")
def llm_settings(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    state = tmp_path_factory.mktemp("llm-state")
    settings = services.replace(state_dir=state, vllm_port=services.serve_port + VLLM_PORT_ABOVE_SERVE,
                                experiment="workbench-llm-tests", vllm_api_key=API_KEY)
    yield settings
    for deployment in list_llm_deployments(settings):
        stop_llm(settings, deployment.name)


@pytest.fixture(scope="module")
def versions(llm_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Two registered versions of the tiny model (different seeds), the first aliased champion."""
    folder = tmp_path_factory.mktemp("tiny")
    first = log_llm(llm_settings, make_tiny_gpt2(folder / "a", seed=0), model_name=MODEL,
                    experiment="workbench-llm-tests")
    second = log_llm(llm_settings, make_tiny_gpt2(folder / "b", seed=1), model_name=MODEL, alias=None,
                     experiment="workbench-llm-tests")
    return [first.model_uri, second.model_uri]


@pytest.fixture(scope="module")
def deployed(llm_settings: Settings, versions: list[str]) -> str:
    began = time.monotonic()
    info = deploy_llm(llm_settings, f"models:/{MODEL}@champion", "tiny", served_model_name="tiny",
                      max_model_len=128, max_num_seqs=4)
    print(f"vLLM (tiny GPT-2) healthy after {time.monotonic() - began:.1f} s")
    assert info.model_uri == versions[0] and info.requested_uri.endswith("@champion")
    assert info.port == llm_settings.vllm_port and info.running
    return info.name


def test_the_api_key_is_required_and_never_on_the_command_line(llm_settings: Settings, deployed: str) -> None:
    info = get_llm_deployment(llm_settings, deployed)
    assert requests.get(f"{info.url}/v1/models", timeout=10).status_code == 401  # no key, no answer
    keyed = requests.get(f"{info.url}/v1/models", timeout=10, headers={"Authorization": f"Bearer {API_KEY}"})
    assert keyed.status_code == 200 and keyed.json()["data"][0]["id"] == "tiny"
    assert served_models(llm_settings, deployed) == ["tiny"]  # the workbench's client sends it
    proc = psutil.Process(info.pid)
    assert not any(API_KEY in arg for arg in proc.cmdline())  # `ps` shows argv to every user
    leaked = [p for p in llm_settings.state_dir.rglob("*") if p.is_file() and API_KEY.encode() in p.read_bytes()]
    assert leaked == [], f"the key is written in {leaked}"


def test_deploy_serves_completions_chat_and_streaming(llm_settings: Settings, deployed: str) -> None:
    info = get_llm_deployment(llm_settings, deployed)
    assert served_models(llm_settings, deployed) == ["tiny"]
    assert requests.get(f"{info.url}/health", timeout=5).status_code == 200
    done = complete(llm_settings, deployed, "the capital of france is", max_tokens=6)
    assert done.completion_tokens == 6 and done.finish_reason == "length" and done.text.strip()
    answer = chat(llm_settings, deployed, "hello world", max_tokens=5)
    assert answer.completion_tokens == 5 and answer.prompt_tokens == 2 and answer.text.strip()
    streamed = chat(llm_settings, deployed, [{"role": "user", "content": "what is the answer"}], max_tokens=8,
                    stream=True)
    assert streamed.completion_tokens == 8 and streamed.chunks >= 3  # vLLM may send several tokens a chunk
    assert streamed.time_to_first_token_s is not None and 0 < streamed.time_to_first_token_s <= streamed.latency_s
    # greedy decoding is deterministic: streamed and plain answers agree
    plain = chat(llm_settings, deployed, [{"role": "user", "content": "what is the answer"}], max_tokens=8)
    assert plain.text == streamed.text


def test_bad_requests_are_invalid_input_with_vllms_message(llm_settings: Settings, deployed: str) -> None:
    with pytest.raises(InvalidInput, match=r"HTTP 400.*maximum context length is 128"):
        complete(llm_settings, deployed, " ".join(["the"] * 200), max_tokens=4)
    with pytest.raises(InvalidInput, match=r"HTTP 404.*model `gpt-9` does not exist"):
        chat(llm_settings, deployed, "hello", model="gpt-9")
    with pytest.raises(InvalidInput, match="messages"):
        chat(llm_settings, deployed, [{"role": "robot", "content": "hi"}])
    with pytest.raises(NotFound, match="no vLLM deployment 'nope'"):
        chat(llm_settings, "nope", "hello")


def test_live_metrics_count_what_was_sent(llm_settings: Settings, deployed: str) -> None:
    info = get_llm_deployment(llm_settings, deployed)
    before = scrape_llm(info.metrics_url)
    for _ in range(3):
        chat(llm_settings, deployed, "hello world", max_tokens=7)
    after = scrape_llm(info.metrics_url)
    window = llm_interval(after, before, model_name="tiny")
    assert window.requests == 3 and window.generation_tokens == 21 and window.prompt_tokens == 6
    assert window.running == 0 and window.waiting == 0 and 0 <= window.kv_cache_usage <= 1
    assert 0 < window.ttft_p50_ms <= window.e2e_p99_ms and window.tpot_p50_ms > 0
    assert window.output_tokens_per_s > 0
    total = llm_snapshot(after.samples, model_name="tiny")
    assert total.requests >= 3 and total.generation_tokens >= 21
    cost = llm_token_cost(window, cpus=2, prices=llm_settings.prices)
    assert cost.cost_per_1m_tokens_usd == pytest.approx(
        2 * llm_settings.prices.cpu_hour_usd / (window.output_tokens_per_s * 3600) * 1e6)
    alerts = evaluate_alerts(default_llm_alert_rules(ttft_p99_ms=0.001), {**window.metrics(), **cost.metrics()})
    assert "llm_ttft_p99_high" in [a.rule for a in alerts]
    with pytest.raises(NotFound, match="no series for model 'other'"):
        llm_snapshot(after.samples, model_name="other")
    assert len(scrape_metrics(info.metrics_url)) > 50


def test_roll_stop_and_restart(llm_settings: Settings, deployed: str, versions: list[str]) -> None:
    with pytest.raises(InvalidInput, match="nothing to roll back to"):
        rollback_llm(llm_settings, deployed)  # (rollback_llm is roll_llm to the previous URI: one start less here)
    old = get_llm_deployment(llm_settings, deployed)
    rolled = roll_llm(llm_settings, deployed, versions[1])
    assert rolled.model_uri == versions[1] and rolled.history == [versions[0]]
    assert rolled.port != old.port and rolled.running and not old.running  # the old server was stopped
    assert chat(llm_settings, deployed, "hello world", max_tokens=3).completion_tokens == 3
    stopped = stop_llm(llm_settings, deployed)
    assert not get_llm_deployment(llm_settings, deployed).running
    with pytest.raises(ServiceUnavailable, match="not answering"):
        chat(llm_settings, deployed, "hello", max_tokens=2)
    restarted = restart_llm(llm_settings, deployed)
    assert restarted.running and restarted.model_uri == stopped.model_uri
    assert chat(llm_settings, deployed, "hello world", max_tokens=2).completion_tokens == 2
    with pytest.raises(InvalidInput, match="already running"):
        deploy_llm(llm_settings, versions[0], deployed)


def test_a_server_that_fails_to_start_reports_its_log(llm_settings: Settings, versions: list[str],
                                                      tmp_path: Path) -> None:
    missing = llm_settings.replace(vllm_python=str(tmp_path / "no-venv" / "bin" / "python"))
    with pytest.raises(ServiceUnavailable, match="make llm"):
        deploy_llm(missing, versions[0], "broken")
    script = tmp_path / "fake-vllm"
    script.write_text("#!/bin/sh\necho 'ValueError: this model is not supported (a fake server)' >&2\nexit 3\n")
    script.chmod(0o755)
    failing = llm_settings.replace(vllm_command=str(script))
    with pytest.raises(ServiceUnavailable, match=r"exited while starting(.|\n)*not supported \(a fake server\)"):
        deploy_llm(failing, versions[0], "broken")
    assert not get_llm_deployment_or_none(llm_settings, "broken")
    shutil.rmtree(tmp_path / "no-venv", ignore_errors=True)


def get_llm_deployment_or_none(settings: Settings, name: str) -> bool:
    try:
        get_llm_deployment(settings, name)
    except NotFound:
        return False
    return True
