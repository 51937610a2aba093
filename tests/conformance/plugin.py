"""A pytest plugin that runs RQ's own test modules against the service's workers.

Loaded by `python -m tests.conformance` into pytest sessions run inside RQ's source distribution
(`-p plugin`, this directory on `PYTHONPATH` after RQ's `tests` package, which shadows ours there).
Each `unittest.TestCase` class of RQ's modules is collected once per variant (`TestWorker[concurrent]`);
while one of its tests runs, the names `Worker` and `SimpleWorker` of its module and of RQ's fixtures
are the variant's worker class (`variants.worker_class`):

    rq                     RQ's own classes: the baseline
    forking                `workers.worker.ServiceWorker` (what `workers.Worker` is at WORKER_CONCURRENCY=1)
    concurrent             `workers.concurrent.ConcurrentWorker` (WORKER_CONCURRENCY > 1)
    forking-registered     the same two with the service's job class and serializer (`RegisteredJob`,
    concurrent-registered  JSON); RQ's fixtures are registered job types and RQ's default serializer is JSON

Tests that create no worker (their source names none) run in the baseline only; the baseline checks
that claim (a worker created by one of them fails the run). The differences are in `expected.toml`:
a strict `xfail` each (one that passes fails the run), and for the registered variants, failures that
are the job class's refusals (checked: a refused job in Redis, or job data that JSON cannot encode).
Every other failure fails the run. RQ's tests find Redis at `localhost:6379`: redis-py's default port
is set to `CONFORMANCE_REDIS_PORT` first. A JSON summary per variant goes to `CONFORMANCE_SUMMARY`.
"""

from __future__ import annotations

import fcntl
import inspect
import json
import multiprocessing
import os
import re
import unittest
from collections import Counter
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.connection
from expectations import Expected  # type: ignore[import-not-found]
from variants import REFUSALS, VARIANTS, WorkerCount, swapped, variant_case  # type: ignore[import-not-found]

EXPECTED = Path(__file__).with_name("expected.toml")
#: What a test's failure says when JSON could not encode or decode what it gave a job or got from one.
PICKLE_MARKS = ("is not JSON serializable", "JSONDecodeError", "DeserializationError", "Unserializable return value")
#: A test whose source matches this may create a worker (itself, or through a helper or a process).
WORKER_INVOLVED = re.compile(r"orker|start_work|Process\(|\.work\(")


def _point_redis_at(port: int) -> None:
    """Make `Redis()` and a bare `Connection()` mean `localhost:<port>`, as RQ's tests assume 6379."""
    for function in (inspect.unwrap(redis.Redis.__init__), redis.connection.Connection.__init__):
        defaults = function.__defaults__
        if defaults is not None:
            function.__defaults__ = tuple(port if value == 6379 else value for value in defaults)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")


def pytest_configure(config: pytest.Config) -> None:
    _point_redis_at(int(os.environ["CONFORMANCE_REDIS_PORT"]))
    variants = [name.strip() for name in str(config.getoption("variants")).split(",") if name.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise pytest.UsageError(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    config.stash[_STATE] = State(variants, Expected.load(EXPECTED))
    _SESSION_STATE[:] = [config.stash[_STATE]]


class State:
    """What the session knows: its variants, the expected differences, and the outcomes so far."""

    def __init__(self, variants: list[str], expected: Expected) -> None:
        self.variants = variants
        self.expected = expected
        self.outcomes: dict[str, Counter[str]] = {variant: Counter() for variant in variants}
        self.leftovers: list[str] = []
        self.misjudged: list[str] = []


_STATE = pytest.StashKey[State]()
#: The session's state, for the hooks that get no `config` (`pytest_runtest_logreport`).
_SESSION_STATE: list[State] = []


# -- collection: one class per variant; tests without a worker in the baseline only ----------


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    if not (isinstance(obj, type) and issubclass(obj, unittest.TestCase)) or "[" in name:
        return None
    from _pytest.unittest import UnitTestCase

    module = getattr(collector, "obj", None)
    items = []
    for variant in collector.config.stash[_STATE].variants:
        setattr(module, f"{name}[{variant}]", variant_case(obj, variant))  # pytest looks it up by the node's name
        items.append(UnitTestCase.from_parent(collector, name=f"{name}[{variant}]"))
    return items


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[_STATE]
    kept, deselected = [], []
    for item in items:
        variant = _variant(item)
        if variant is None:
            kept.append(item)
            continue
        if variant != "rq" and not _involves_worker(item):
            state.outcomes[variant]["not run"] += 1
            deselected.append(item)
            continue
        kept.append(item)
        test_id = _test_id(item)
        skip = state.expected.skip_reason(test_id, variant)
        if skip:
            item.add_marker(pytest.mark.skip(reason=skip))
            continue
        reason = state.expected.reason(test_id, variant)
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def _variant(item: pytest.Item) -> str | None:
    return getattr(getattr(item, "cls", None), "conformance_variant", None)


def _test_id(item: pytest.Item) -> str:
    """`test_worker.py::TestWorker::test_x`, the form `expected.toml` uses."""
    cls = getattr(item, "cls", None)
    return f"{item.path.name}::{cls.__name__ if cls else ''}::{item.name}"


def _involves_worker(item: pytest.Item) -> bool:
    method = getattr(getattr(item, "cls", None), item.name, None)
    try:
        source = inspect.getsource(method) if method is not None else ""
    except (OSError, TypeError):
        return True
    return bool(WORKER_INVOLVED.search(source))


# -- running ---------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    variant = _variant(item)
    if variant is None:
        return (yield)
    state = item.config.stash[_STATE]
    with _fixed_paths_lock(item), swapped(item, variant), WorkerCount() as created:
        try:
            return (yield)
        finally:
            _end_leftover_children(item, state)
            if variant == "rq" and created.count and not _involves_worker(item):
                state.misjudged.append(item.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    variant = _variant(item)
    if variant is None or report.when != "call" and not report.failed:
        return report
    if report.failed and not hasattr(report, "wasxfail"):
        refusal = _refusal(item, report)
        reason = item.config.stash[_STATE].expected.refusal_reason(_test_id(item), variant, refusal)
        if reason:
            report.outcome = "skipped"
            report.wasxfail = f"{reason} ({refusal})"
            report.user_properties.append(("refusal", refusal))
    return report


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count each test once: its call, or the setup or teardown that failed or skipped it."""
    match = re.search(r"\[([a-z-]+)\]::", report.nodeid)
    counted = report.when == "call" or report.failed or (report.when == "setup" and report.skipped)
    if match and counted and type(report) is pytest.TestReport and _SESSION_STATE:  # not a subtest's report
        _count(_SESSION_STATE[0], match.group(1), report)


def _count(state: State, variant: str, report: pytest.TestReport) -> None:
    if hasattr(report, "wasxfail"):
        key = "unexpected" if report.failed else "expected"  # failed: an expected failure passed
        if any(name == "refusal" for name, _ in report.user_properties):
            state.outcomes[variant]["of which refusals"] += 1
    else:
        key = {"passed": "passed", "failed": "unexpected", "skipped": "skipped"}[report.outcome]
    state.outcomes[variant][key] += 1


def _refusal(item: pytest.Item, report: pytest.TestReport) -> str | None:
    """What the registered job class refused in this test, if anything: a job in Redis, or job data the
    test could not encode as JSON."""
    found: str | None = REFUSALS.pop(item.nodeid, None)
    if found:
        return found
    text = str(report.longrepr)
    if any(mark in text for mark in PICKLE_MARKS):
        return "job data that is not JSON"
    return None


@contextmanager
def _fixed_paths_lock(item: pytest.Item) -> Iterator[None]:
    """Some of RQ's tests use fixed paths under /tmp (sentinel files, a sandbox directory): the sessions of
    the variants run those one at a time (`CONFORMANCE_TMP_LOCK`, a file lock they share)."""
    cls = getattr(item, "cls", None)
    lock_path = os.environ.get("CONFORMANCE_TMP_LOCK")
    source = ""
    for function in (getattr(cls, item.name, None), vars(cls.__mro__[1]).get("setUp") if cls else None):
        try:
            source += inspect.getsource(function) if function is not None else ""
        except (OSError, TypeError):
            pass
    if not lock_path or "'/tmp/" not in source:
        yield
        return
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _end_leftover_children(item: pytest.Item, state: State) -> None:
    """Kill the processes a test started and left running (a worker it failed to stop): they would hold
    up the end of the session and write into the next tests' database."""
    for child in multiprocessing.active_children():
        child.kill()
        child.join(5)
        state.leftovers.append(item.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash[_STATE]
    if state.misjudged:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    path = os.environ.get("CONFORMANCE_SUMMARY")
    if path:
        summary = {"outcomes": {v: dict(c) for v, c in state.outcomes.items()}, "misjudged": state.misjudged}
        Path(path).write_text(json.dumps(summary, indent=1))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash[_STATE]
    if state.leftovers:
        terminalreporter.write_line(f"processes left running (killed) after: {', '.join(sorted(set(state.leftovers)))}")
    for nodeid in state.misjudged:
        terminalreporter.write_line(f"ERROR {nodeid}: created a worker, but its source names none (WORKER_INVOLVED)")
    for variant, counts in state.outcomes.items():
        terminalreporter.write_line(
            f"conformance {variant}: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
        )
