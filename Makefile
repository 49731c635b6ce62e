# One-command set-up: everything is installed from the lock file into .venv,
# using only the python3 found on the machine.
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: setup test check lint typecheck contracts pytest simulate bench clean postgres

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --python $(PYTHON) --quiet
	touch $@

setup: $(VENV)/.synced

## test: every check and every test (what CI runs).
test: setup postgres lint typecheck contracts pytest

postgres:
	@bash scripts/ensure-postgres.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

contracts: setup
	$(BIN)/lint-imports

pytest: setup
	$(BIN)/pytest -q -p no:cacheprovider

## simulate: the loopback cloud simulator on port 8700.
simulate: setup
	$(BIN)/fleet simulate --port 8700

bench: setup
	$(BIN)/python bench/ratelimit.py

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
