"""Hugging Face ``generate()`` on the GPU with SmolLM2-135M's architecture and tokenizer.

For a GPU host that cannot take the model's weights (the device machine here receives at most 64 MiB):
the weights are random, initialised from the real config, and every sequence is forced to its full
length (``min_new_tokens``), so tokens/s and latency are those of the real model; the text is not.

    python benchmarks/gpu/hf_generate_gpu.py MODEL_DIR [--prompts 64] [--max-tokens 128]

MODEL_DIR holds SmolLM2's config.json and tokenizer files (weights not needed).
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

QUESTIONS = ["What is the capital of France?", "How many legs does a spider have?", "Name a primary colour.",
             "What do bees make?", "What is the boiling point of water in Celsius?", "What is 7 times 8?",
             "Which planet is known as the red planet?", "How many hours are in a day?"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--sequential", type=int, default=8, help="prompts run one at a time")
    parser.add_argument("--device", default="cuda", help="cpu only to check the script itself")
    args = parser.parse_args()
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(args.model_dir)
    tok.padding_side = "left"
    tok.pad_token = tok.pad_token or tok.eos_token
    config = AutoConfig.from_pretrained(args.model_dir)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).eval().to(args.device)
    texts = [str(tok.apply_chat_template([{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
                                         add_generation_prompt=True, tokenize=False)) for i in range(args.prompts)]

    def generate(chunk: list[str]) -> int:
        enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(args.device)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=args.max_tokens, min_new_tokens=args.max_tokens,
                                 do_sample=False, pad_token_id=tok.pad_token_id)
        if args.device == "cuda":
            torch.cuda.synchronize()
        return int((out.shape[1] - enc["input_ids"].shape[1]) * len(chunk))

    generate(texts[:2])  # warm-up
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    print(f"{name}, torch {torch.__version__}, SmolLM2-135M architecture, bf16, "
          f"{args.max_tokens} new tokens per prompt")
    for batch in sorted({args.prompts, min(16, args.prompts), 1}, reverse=True):
        t0 = time.perf_counter()
        tokens = generate(texts[:batch])
        wall = time.perf_counter() - t0
        print(f"HF generate(), one batch of {batch:>3}: {tokens / wall:9.1f} tokens/s, batch latency {wall:6.2f} s")
    t0, done = time.perf_counter(), []
    for text in texts[: args.sequential]:
        generate([text])
        done.append(time.perf_counter() - t0)
    print(f"HF generate(), {args.sequential} prompts one at a time: "
          f"{args.sequential * args.max_tokens / done[-1]:9.1f} tokens/s, last answer after {done[-1]:.2f} s")


if __name__ == "__main__":
    main()
