"""The worker variants RQ's tests run against (see `plugin.py`): their classes, and what is swapped while
one of their tests runs. Imported by the plugin, in the session inside RQ's source distribution."""

from __future__ import annotations

import functools
import inspect
import sys
import zlib
from base64 import b64decode
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from pydantic import BaseModel, ConfigDict
from rq import Queue
from rq.serializers import DefaultSerializer, JSONSerializer
from rq.worker import BaseWorker

VARIANTS = ("rq", "forking", "concurrent", "forking-registered", "concurrent-registered")
#: The modules whose `Worker`/`SimpleWorker` are swapped besides the test module itself.
FIXTURE_MODULES = ("tests.fixtures",)
#: What the service's job class says when it refuses a job (`workers.job`, `workers.claimed`).
REFUSAL_MARKS = ("is not a registered job type", "names no registered function", "keyword arguments only", "not JSON")
#: Test node id -> the refusal its registered variant saw in Redis (read by the plugin's report hook).
REFUSALS: dict[str, str] = {}


@functools.cache
def worker_class(variant: str) -> type[Any]:
    """The variant's worker class: the service's, with the test's connection (and, unless registered, the
    test's job class and serializer)."""
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


def variant_case(case: type[Any], variant: str) -> type[Any]:
    """`case` (an RQ `TestCase`) for `variant`; a registered variant notes the refusals its tests met."""
    namespace: dict[str, Any] = {"__module__": case.__module__, "conformance_variant": variant}
    if variant.endswith("-registered"):

        def tearDown(self: Any) -> None:  # noqa: N802  (unittest's name)
            refusal = _refusal_in(self.connection)
            if refusal:
                REFUSALS[_node_id(self)] = refusal
            case.tearDown(self)

        namespace["tearDown"] = tearDown
    return type(case.__name__, (case,), namespace)


def _node_id(test: Any) -> str:
    cls = type(test)
    path = sys.modules[cls.__module__].__file__ or ""
    return f"tests/{path.rsplit('/', 1)[-1]}::{cls.__name__}[{cls.conformance_variant}]::{test._testMethodName}"


def _refusal_in(connection: redis.Redis) -> str | None:
    """The first refusal of the service's job class recorded in this test's database, if any."""
    texts: list[bytes] = []
    for key in connection.scan_iter("rq:job:*", count=1000):
        if connection.type(key) == b"hash":
            value = connection.hget(key, "exc_info")
            if isinstance(value, bytes):
                texts.append(zlib.decompress(value))
    for key in connection.scan_iter("rq:results:*", count=1000):
        for _, fields in connection.xrange(key) or []:
            value = (fields or {}).get(b"exc_string")
            if isinstance(value, bytes):
                texts.append(zlib.decompress(b64decode(value)))
    for text in texts:
        line = next((line for line in text.decode(errors="replace").splitlines()[::-1] if line.strip()), "")
        if any(mark in line for mark in REFUSAL_MARKS):
            return line.strip()
    return None


# -- what a test of a variant runs with -------------------------------------------------------


@contextmanager
def swapped(item: pytest.Item, variant: str) -> Iterator[None]:
    """While a test runs: `Worker` and `SimpleWorker` of its module and RQ's fixtures are the variant's
    class; for a registered variant, RQ's default serializer is JSON and RQ's test functions are job types."""
    if variant == "rq":
        yield
        return
    worker = worker_class(variant)
    module = getattr(item, "module", None)
    modules = [module] if module is not None else []
    modules += [sys.modules[name] for name in FIXTURE_MODULES if name in sys.modules]
    saved = [(m, name, getattr(m, name)) for m in modules for name in ("Worker", "SimpleWorker") if name in vars(m)]
    for m, name, _ in saved:
        setattr(m, name, worker)
    serializer = (DefaultSerializer.dumps, DefaultSerializer.loads)
    if variant.endswith("-registered"):
        for m in modules:
            _register_functions(m.__name__)
        DefaultSerializer.dumps = JSONSerializer.dumps
        DefaultSerializer.loads = JSONSerializer.loads
    try:
        yield
    finally:
        DefaultSerializer.dumps, DefaultSerializer.loads = serializer
        for m, name, value in saved:
            setattr(m, name, value)


class AnyKwargs(BaseModel):
    """RQ's test functions take whatever their tests give them."""

    model_config = ConfigDict(extra="allow")


@functools.cache
def _register_functions(module_name: str) -> None:
    """Every module-level function of `module_name` as an internal job type (the allow-list admits it)."""
    from jobs.catalog import registry
    from jobs.registry import JobSpec

    for function in vars(sys.modules[module_name]).values():
        if inspect.isfunction(function) and function.__module__ == module_name:
            path = f"{module_name}.{function.__qualname__}"
            registry.add(JobSpec(f"rq-tests.{path}", path, AnyKwargs, "one of RQ's test functions", internal=True))


class WorkerCount:
    """Counts the workers created in this process while it is entered (RQ's and ours)."""

    def __enter__(self) -> WorkerCount:
        self.count = 0
        self._init = BaseWorker.__init__

        def counting(worker: BaseWorker, *args: Any, **kwargs: Any) -> None:
            self.count += 1
            self._init(worker, *args, **kwargs)

        BaseWorker.__init__ = counting  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        BaseWorker.__init__ = self._init  # type: ignore[method-assign]
