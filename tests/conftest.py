"""Suite-wide pytest configuration: markers follow the directory a test lives in; coverage stays in the
processes that run tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import pytest


def _cache_bytecode() -> None:
    """Each `rq worker`, uvicorn and CLI process a test starts imports the service's modules; where the
    environment says PYTHONDONTWRITEBYTECODE, each compiles them all again (about half its start-up time).
    The processes of a run write and share Python's usual `__pycache__` instead (git ignores it)."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False


_cache_bytecode()

#: Set by `coverage run` (`[tool.coverage.run] patch = ["subprocess"]`) so that Python processes started
#: from it measure themselves: pytest-xdist's workers need it; the processes the tests start must not get it.
COVERAGE_SUBPROCESS_VARIABLE = "COVERAGE_PROCESS_CONFIG"


def pytest_configure(config: pytest.Config) -> None:
    """In a process that runs tests, the service processes it starts (`rq worker`, uvicorn, the CLI) run
    unmeasured, as they always have: on Python 3.11 tracing stalls the ConcurrentWorker's stops (see
    pyproject.toml). An xdist controller keeps the variable, so that the workers it starts are measured."""
    runs_tests_itself = "PYTEST_XDIST_WORKER" in os.environ or not getattr(config.option, "numprocesses", None)
    if runs_tests_itself:
        os.environ.pop(COVERAGE_SUBPROCESS_VARIABLE, None)


#: The order the parts of the suite run in: the longest tests first, so that the two xdist processes share
#: out the short ones at the end instead of one of them finishing a long test alone.
PART_ORDER = ("reliability", "integration", "differential")


def _part_rank(item: pytest.Item) -> int:
    path = str(item.path)
    return next((rank for rank, part in enumerate(PART_ORDER) if f"/tests/{part}/" in path), len(PART_ORDER))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_part_rank)  # stable: each part keeps its own order
    for item in items:
        path = str(item.path)
        if "/tests/integration/" in path or "/tests/reliability/" in path:
            item.add_marker(pytest.mark.integration)
        if "/tests/reliability/" in path:
            item.add_marker(pytest.mark.slow)


#: The `record_property` name under which a test records a line of what it measured (timings, counts).
REPORT = "report"

#: What `record_property` hands a test: record(name, value).
RecordProperty = Callable[[str, object], None]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the lines tests recorded as `record_property("report", ...)`: what a test prints does not reach
    the terminal from an xdist worker, while recorded properties travel with its report."""
    lines = [
        f"{report.nodeid}: {value}"
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == REPORT
    ]
    if lines:
        terminalreporter.section("measured by the tests")
        for line in lines:
            terminalreporter.write_line(line)
