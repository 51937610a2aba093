"""A pytest plugin that runs RQ's own test modules against the service's workers.

Loaded by `python -m tests.conformance` into a pytest session run inside RQ's source distribution
(`-p plugin`, this directory on `PYTHONPATH`, after RQ's `tests` package, which shadows ours there).
Each `unittest.TestCase` class of RQ's modules is collected once per variant (`TestWorker[concurrent]`);
while one of its tests runs, the names `Worker` and `SimpleWorker` of RQ's test modules and fixtures
are the variant's worker class:

    rq                     RQ's own classes: the baseline
    forking                `workers.worker.ServiceWorker` (what `workers.Worker` is at WORKER_CONCURRENCY=1)
    concurrent             `workers.concurrent.ConcurrentWorker` (WORKER_CONCURRENCY > 1)
    forking-registered     the same two with the service's job class and serializer forced
    concurrent-registered  (`RegisteredJob`, JSON), RQ's fixtures registered as job types

The service's workers fix their connection, job class and serializer (`ServiceBase.conventions`); here
they take the test's connection, and in the first two variants the test's job class and serializer too.
The tests that fail by design, or test RQ's internals, are in `expected.toml` (a strict `xfail` each, so
one that passes fails the run); every other failure fails the run. RQ's tests find their Redis at
`localhost:6379`: redis-py's default port is set to `CONFORMANCE_REDIS_PORT` before they import.
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
import multiprocessing
import os
import sys
import tomllib
import unittest
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.connection

VARIANTS = ("rq", "forking", "concurrent", "forking-registered", "concurrent-registered")
EXPECTED = Path(__file__).with_name("expected.toml")
#: The module names whose `Worker`/`SimpleWorker` are swapped besides the test module itself.
FIXTURE_MODULES = ("tests.fixtures",)


def _point_redis_at(port: int) -> None:
    """Make `Redis()` and a bare `Connection()` mean `localhost:<port>`, as RQ's tests assume 6379."""
    for function in (inspect.unwrap(redis.Redis.__init__), redis.connection.Connection.__init__):
        defaults = function.__defaults__
        if defaults is not None:
            function.__defaults__ = tuple(port if value == 6379 else value for value in defaults)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated worker variants to run RQ's tests against (of {', '.join(VARIANTS)})",
    )


def pytest_configure(config: pytest.Config) -> None:
    _point_redis_at(int(os.environ["CONFORMANCE_REDIS_PORT"]))
    variants = [name.strip() for name in str(config.getoption("variants")).split(",") if name.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise pytest.UsageError(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    config.stash[_VARIANTS] = variants
    config.stash[_EXPECTED] = Expected.load(EXPECTED)


_VARIANTS = pytest.StashKey[list[str]]()
_LEFTOVERS = pytest.StashKey[list[str]]()
_EXPECTED = pytest.StashKey["Expected"]()


# -- collection: one class per variant ------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    if not (isinstance(obj, type) and issubclass(obj, unittest.TestCase)) or "[" in name:
        return None
    from _pytest.unittest import UnitTestCase

    items = []
    module = getattr(collector, "obj", None)
    for variant in collector.config.stash[_VARIANTS]:
        cls = type(name, (obj,), {"__module__": obj.__module__, "conformance_variant": variant})
        setattr(module, f"{name}[{variant}]", cls)  # where pytest looks the class up by its node's name
        items.append(UnitTestCase.from_parent(collector, name=f"{name}[{variant}]"))
    return items


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expected = config.stash[_EXPECTED]
    for item in items:
        variant = _variant(item)
        if variant is None:
            continue
        test_id = _test_id(item)
        skip = expected.skip_reason(test_id)
        if skip:
            item.add_marker(pytest.mark.skip(reason=skip))
            continue
        reason = expected.reason(test_id, variant)
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))


def _variant(item: pytest.Item) -> str | None:
    cls = getattr(item, "cls", None)
    return getattr(cls, "conformance_variant", None)


def _test_id(item: pytest.Item) -> str:
    """`test_worker.py::TestWorker::test_x`, the form `expected.toml` uses."""
    cls = getattr(item, "cls", None)
    return f"{item.path.name}::{cls.__name__ if cls else ''}::{item.name}"


# -- running: the variant's worker classes ---------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    variant = _variant(item)
    swapped = _swap_workers(item, variant) if variant not in (None, "rq") else []
    try:
        return (yield)
    finally:
        for module, name, value in swapped:
            setattr(module, name, value)
        _end_leftover_children(item)


def _swap_workers(item: pytest.Item, variant: str) -> list[tuple[Any, str, Any]]:
    """Make `Worker` and `SimpleWorker` the variant's class in the test's module and RQ's fixtures;
    returns what to put back."""
    worker = worker_class(variant)
    module = getattr(item, "module", None)
    modules = [module] if module is not None else []
    modules += [sys.modules[name] for name in FIXTURE_MODULES if name in sys.modules]
    swapped = []
    for module in modules:
        for name in ("Worker", "SimpleWorker"):
            if name in vars(module):
                swapped.append((module, name, getattr(module, name)))
                setattr(module, name, worker)
    return swapped


def _end_leftover_children(item: pytest.Item) -> None:
    """Kill the processes a test started and left running (a worker it failed to stop): they would hold
    up the end of the session and write into the next tests' database."""
    for child in multiprocessing.active_children():
        child.kill()
        child.join(5)
        item.config.stash.setdefault(_LEFTOVERS, []).append(item.nodeid)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    leftovers = config.stash.get(_LEFTOVERS, [])
    if leftovers:
        terminalreporter.write_line(f"processes left running (killed) after: {', '.join(sorted(set(leftovers)))}")


@functools.cache
def worker_class(variant: str) -> type[Any]:
    """The variant's worker class: the service's, with the test's connection (and, unless `registered`,
    the test's job class and serializer)."""
    from rq import Queue

    from workers.concurrent import ConcurrentWorker
    from workers.lifecycle import AnnouncingQueue
    from workers.worker import ServiceWorker

    base: type[Any] = ConcurrentWorker if variant.startswith("concurrent") else ServiceWorker
    registered = variant.endswith("-registered")

    def conventions(self: Any) -> dict[str, Any]:
        if not registered:
            return {"queue_class": AnnouncingQueue}
        from core.queues import SERIALIZER
        from workers.job import RegisteredJob

        return {"queue_class": AnnouncingQueue, "job_class": RegisteredJob, "serializer": SERIALIZER}

    def __init__(self: Any, queues: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("connection") is None:  # RQ's workers take it from their queues
            listed = [queues] if isinstance(queues, str | Queue) else list(queues)
            kwargs["connection"] = next(q.connection for q in listed if isinstance(q, Queue))
        base.__init__(self, queues, *args, **kwargs)

    namespace = {"__module__": base.__module__, "__init__": __init__, "conventions": conventions}
    return type(base.__name__, (base,), namespace)


# -- the expected differences ---------------------------------------------------------------


class Expected:
    """`expected.toml`: per variant group, test id patterns (fnmatch) and the reason each fails."""

    def __init__(self, entries: Iterable[dict[str, Any]], skips: Iterable[dict[str, Any]]) -> None:
        self.entries = list(entries)
        self.skips = list(skips)

    @classmethod
    def load(cls, path: Path) -> Expected:
        data = tomllib.loads(path.read_text())
        for entry in data.get("expected", []) + data.get("skip", []):
            if not entry.get("reason"):
                raise pytest.UsageError(f"{path.name}: every entry needs a reason: {entry}")
        return cls(data.get("expected", []), data.get("skip", []))

    def reason(self, test_id: str, variant: str) -> str | None:
        for entry in self.entries:
            if variant in entry["variants"] and any(fnmatch.fnmatchcase(test_id, p) for p in entry["tests"]):
                return str(entry["reason"])
        return None

    def skip_reason(self, test_id: str) -> str | None:
        for entry in self.skips:
            if any(fnmatch.fnmatchcase(test_id, p) for p in entry["tests"]):
                return str(entry["reason"])
        return None
