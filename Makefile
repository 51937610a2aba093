# One command to run the stack, one to test it. Each makes the venv it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint system-deps browser unit integration conformance bench clean

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

# Test processes pytest-xdist runs the suite in (`make test PYTEST_WORKERS=0`: all in one process).
PYTEST_WORKERS ?= 2
XDIST := -n $(PYTEST_WORKERS) --dist worksteal

# The suite runs under coverage (pyproject.toml, [tool.coverage.*]), one data file per test process, combined;
# the report is printed whether the tests passed or not and ends with the TOTAL line. It fails if the tests
# do or the total is below the floor.
test: lint system-deps browser  ## lint, type-check, then the whole suite (unit, integration, reliability) with coverage
	mkdir -p .data && $(BIN)/coverage erase
	$(BIN)/coverage run -m pytest $(XDIST) $(PYTEST_ARGS); tests=$$?; \
	  $(BIN)/coverage combine -q; \
	  $(BIN)/coverage report; report=$$?; \
	  $(MAKE) --no-print-directory conformance; conformance=$$?; \
	  [ $$tests -eq 0 ] && [ $$report -eq 0 ] && [ $$conformance -eq 0 ]

browser:  ## Debian's chromium + chromedriver for the dashboard browser test (skipped where apt-get cannot install them)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 \
	    || echo "make browser: could not install chromium + chromium-driver; the browser test will be skipped"; }

unit: $(VENV)/.dev
	$(BIN)/pytest $(XDIST) tests/unit $(PYTEST_ARGS)

integration: $(VENV)/.dev system-deps browser
	$(BIN)/pytest $(XDIST) -m integration $(PYTEST_ARGS)

# RQ's own worker tests (from RQ's sdist, fetched into .data/conformance/) against RQ's worker and the
# service's, each variant in its own pytest session; fails on any difference not in tests/conformance/expected.toml.
conformance: $(VENV)/.dev  ## RQ's test suite against the service's workers (docs/workers.md)
	$(BIN)/python -m tests.conformance $(CONFORMANCE_ARGS)

# `make bench BENCH_ARGS='web workers'`: chosen sections; BENCH_ARGS='peers [--quick] [--only PEER]': the
# service beside SAQ, Dramatiq, arq, taskiq, Celery and BullMQ (each installed into its own .venv-bench/<peer>).
bench: $(VENV)/.dev
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
