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
# Machines may set PYTHONDONTWRITEBYTECODE: compile once at install time so that every process
# (the service, workers, the CLI, test subprocesses) does not recompile every module at start.
export UV_COMPILE_BYTECODE := 1

.PHONY: setup test check lint typecheck contracts pytest simulate bench clean postgres chromium demo serve

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --python $(PYTHON) --quiet
	$(VENV)/bin/python -m compileall -q fleet jobs
	touch $@

setup: $(VENV)/.synced

## test: every check and every test (what CI runs).
test: setup postgres chromium lint typecheck contracts pytest

postgres:
	@bash scripts/ensure-postgres.sh

## chromium: the system browser the console's browser tests drive (tests/browser).
chromium:
	@bash scripts/ensure-chromium.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

contracts: setup
	$(BIN)/lint-imports

pytest: setup
	$(BIN)/pytest -q -p no:cacheprovider

## demo: migrate a fresh SQLite database, start the simulator and the service, run a scripted
## campaign through the REST API (dry run, reboot in waves, stop with a fault, resize); exits 0.
demo: setup
	$(BIN)/python scripts/demo.py

## serve: the simulator (port 8701) and the service (http://127.0.0.1:8080) until Ctrl-C;
## an admin token is kept in var/admin.token (see the README for curl and CLI examples);
## the console is at http://127.0.0.1:8080/ (sign in with that token).
SERVE_ENV := FLEET_SIMULATOR__PORT=8701 FLEET_BOOTSTRAP_TOKEN_FILE=var/admin.token
serve: setup
	$(SERVE_ENV) $(BIN)/fleet db upgrade --config config/demo.toml
	$(SERVE_ENV) $(BIN)/fleet serve --config config/demo.toml

## simulate: the loopback cloud simulator on port 8700.
simulate: setup
	$(BIN)/fleet simulate --port 8700

bench: setup
	$(BIN)/python bench/ratelimit.py
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/recorder.py

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
