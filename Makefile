# workbench — run `make help` for the targets. Needs only Python 3.11-3.13 and make; everything else is installed here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The first of python3.11, python3.12, python3.13, python3 found (override: make PYTHON=/path/to/python3.12 ...).
PYTHON ?= $(or $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3),python3)
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

.PHONY: help setup hooks run test test-all lint bench bento clean-runs data-convert lab browser notebooks-clean

help: ## Show this help
	@awk 'BEGIN{FS=":.*## "; printf "workbench make targets:\n"} /^[a-zA-Z_-]+:.*## /{printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; (3, 11) <= v < (3, 14) or sys.exit(f"workbench needs Python 3.11-3.13; $(PYTHON) is {v[0]}.{v[1]} (set PYTHON=...)")'
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

setup: $(VENV)/.synced hooks ## Create .venv with the locked dependencies (uv.lock) and install the git hooks

hooks: ## Install the pre-commit hook that normalises notebooks on commit (nbstripout; .githooks/)
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
		git config core.hooksPath .githooks && echo "git hooks: .githooks (notebooks are normalised on commit)"; \
	else echo "not a git checkout: no hooks installed"; fi

notebooks-clean: setup ## Normalise notebooks/*.ipynb now, as the pre-commit hook does on commit
	$(BIN)/python .githooks/normalize_notebooks.py notebooks/*.ipynb

run: setup ## Main job on the bundled Adult data: discovery + prototype run, then promotion through the gates
	$(BIN)/workbench run --brief briefs/adult.yaml
	$(BIN)/workbench promote latest

bento: setup ## Build a deployable Bento of the production model (service + workbench code; `bentoml containerize` next)
	$(BIN)/python bento/build.py

# The browser tests (tests/app/, marked `browser`) use Debian's /usr/bin/chromium and /usr/bin/chromedriver and
# skip without them. `make browser` installs them (root or sudo); `make test` installs them first only when that
# works without a password (root, as in CI, or passwordless sudo) and otherwise says the browser tests will skip.
CHROMIUM_OK = [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]
APT_CHROMIUM = DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver

browser: ## Install headless Chromium + chromedriver for the browser tests (Debian/Ubuntu; root or sudo; only when missing)
	@if $(CHROMIUM_OK); then echo "browser: /usr/bin/chromium and /usr/bin/chromedriver are installed"; \
	elif ! command -v apt-get >/dev/null; then \
		echo "browser: no apt-get here; install Chromium and chromedriver as /usr/bin/chromium and /usr/bin/chromedriver yourself" >&2; exit 1; \
	elif [ "$$(id -u)" = 0 ]; then $(APT_CHROMIUM); \
	elif command -v sudo >/dev/null; then sudo sh -c '$(APT_CHROMIUM)'; \
	else echo "browser: installing Chromium needs root (or sudo): run \`make browser\` as root" >&2; exit 1; fi

# Two pytest workers (pytest-xdist), one test module per worker at a time so module fixtures are built once: most of
# the suite waits on notebook kernels and servers, so two workers on two cores about halve its wall time.
# PYTEST_PARALLEL= (empty) runs it in one process.
PYTEST_PARALLEL ?= -n 2 --dist loadscope

test: setup ## Run the test suite (what .ci/run calls); browser tests run when Chromium is (or can be) installed
	@if $(CHROMIUM_OK); then :; \
	elif command -v apt-get >/dev/null && { [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then $(MAKE) --no-print-directory browser; \
	else echo "make test: no /usr/bin/chromium (installing it needs root: \`sudo make browser\`); the browser tests will be skipped"; fi
	$(BIN)/python -m pytest -m "not slow" -q $(PYTEST_PARALLEL)

test-all: setup ## Run every test, including the slow ones
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL)

lint: setup ## ruff
	$(BIN)/ruff check src tests benchmarks

bench: setup ## Run every benchmark (prints figures; JSON under benchmarks/results/; ~18 min; installs wrk if missing)
	$(BIN)/python benchmarks/bench_audit.py
	$(BIN)/python benchmarks/bench_run.py --repeats 3
	$(BIN)/python benchmarks/bench_drift.py
	$(BIN)/python benchmarks/bench_gbm.py
	$(BIN)/python benchmarks/bench_serving.py --install-wrk
	$(BIN)/python benchmarks/bench_deploy.py

lab: setup ## JupyterLab on 127.0.0.1 at the project root (notebooks, briefs, run folders), kernel "Python (workbench)"
	$(BIN)/python -m ipykernel install --sys-prefix --name workbench --display-name "Python (workbench)"
	$(BIN)/jupyter lab --notebook-dir=. --ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root,)

clean-runs: ## Delete every run folder under papermill_runs/
	find papermill_runs -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} +

data-convert: setup ## Re-create data/*.parquet from the published Adult files (ADULT_SRC=path)
	$(BIN)/python data/convert_adult.py $(or $(ADULT_SRC),../shared/datasets/adult)
