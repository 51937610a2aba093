# One command to run the stack, one to test it. Each makes the venv it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint system-deps unit integration bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime  ## web + workers (+ embedded Redis when REDIS_URL is unset)
	$(BIN)/python -m stack

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Debian packages some tests need (iproute2 for `ip netns`, redis-server built with TLS, openssl):
# installed where missing, as root; elsewhere the tests that need them skip and say why.
system-deps: $(VENV)/.dev
	$(BIN)/python -m tests.support.system

test: lint system-deps  ## lint, type-check, then the whole suite (unit, integration, reliability)
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(VENV)/.dev
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: $(VENV)/.dev system-deps
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

bench: $(VENV)/.dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
