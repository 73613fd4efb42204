# workbench — run `make help` for the targets. Needs only python3.11 and make; everything else is installed here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_LINK_MODE := copy
# Bytecode compiled at install: without it (PYTHONDONTWRITEBYTECODE is common in CI) every kernel and server
# start compiles the stack from source.
export UV_COMPILE_BYTECODE := 1
export OMP_NUM_THREADS ?= 1

.PHONY: help setup run test test-all lint bench bento clean-runs data-convert lab browser

help: ## Show this help
	@awk 'BEGIN{FS=":.*## "; printf "workbench make targets:\n"} /^[a-zA-Z_-]+:.*## /{printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "workbench needs Python 3.11 (set PYTHON=...)"'
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

setup: $(VENV)/.synced ## Create .venv with the locked dependencies (uv.lock)

run: setup ## Main job on the bundled Adult data: discovery + prototype run, then promotion through the gates
	$(BIN)/workbench run --brief briefs/adult.yaml
	$(BIN)/workbench promote latest

bento: setup ## Build a deployable Bento of the production model (service + workbench code; `bentoml containerize` next)
	$(BIN)/python bento/build.py

browser: ## Install headless Chromium + chromedriver from Debian for the browser tests (only when missing; needs root)
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		apt-get update && apt-get install -y chromium chromium-driver; \
	fi

test: setup browser ## Run the test suite (what .ci/run calls)
	$(BIN)/python -m pytest -m "not slow" -q

test-all: setup ## Run every test, including the slow ones
	$(BIN)/python -m pytest -q

lint: setup ## ruff
	$(BIN)/ruff check src tests benchmarks

bench: setup ## Run every benchmark (prints figures; JSON under benchmarks/results/; ~15 min; installs wrk if missing)
	$(BIN)/python benchmarks/bench_audit.py
	$(BIN)/python benchmarks/bench_run.py --repeats 3
	$(BIN)/python benchmarks/bench_drift.py
	$(BIN)/python benchmarks/bench_serving.py --install-wrk

lab: setup ## Register the kernel "Python (workbench)" and open JupyterLab on 127.0.0.1
	$(BIN)/python -m ipykernel install --sys-prefix --name workbench --display-name "Python (workbench)"
	$(BIN)/jupyter lab --notebook-dir=notebooks --ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root,)

clean-runs: ## Delete every run folder under papermill_runs/
	find papermill_runs -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} +

data-convert: setup ## Re-create data/*.parquet from the published Adult files (ADULT_SRC=path)
	$(BIN)/python data/convert_adult.py $(or $(ADULT_SRC),../shared/datasets/adult)
