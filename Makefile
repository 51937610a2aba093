# One command to run the stack, one to test it. Each makes the venv it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint unit integration bench clean

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

test: lint  ## lint, type-check, then the whole suite (unit, integration, reliability)
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(VENV)/.dev
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: $(VENV)/.dev
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

bench: $(VENV)/.dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
