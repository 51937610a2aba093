"""The job class workers run: only registered job types, arguments re-validated, attempts counted."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq.exceptions import DeserializationError
from rq.job import JobStatus
from rq.utils import import_attribute

from core import events, tracing
from core.meta import ATTEMPT
from core.queues import JsonJob
from core.rqadapter import bookkeeping
from core.settings import get_settings
from jobs.catalog import registry
from jobs.output import OutputSession
from jobs.registry import JobSpec, UnknownJobTypeError

tracing.prepare("jobsvc-worker")  # with tracing on: loaded now, before a forking worker's first horse


class UnregisteredJobError(RuntimeError):
    """A job in Redis names a function that is not a registered job type; it is never imported."""


class UnreadableJobError(RuntimeError):
    """A job's data or meta in Redis is not JSON; it is never deserialized by any other means."""


class JobMemoryLimitError(MemoryError):
    """The job allocated more than `JOB_MAX_MEMORY` allows."""


@functools.lru_cache(maxsize=256)
def _function(func_path: str) -> Any:
    """A registered job function, imported once per process (the catalog is fixed at start-up)."""
    return import_attribute(func_path)


class RegisteredJob(JsonJob):
    """An RQ job that refuses to import or run anything but a registered job type (JSON by default,
    timestamps read fast: `core.queues.JsonJob`).

    RQ itself imports whatever dotted path a job names; anyone who can write to Redis could
    otherwise make a worker call `os.system`.
    """

    @classmethod
    def unrestored(cls, job_id: str, connection: Redis, serializer: Any) -> RegisteredJob:
        """A job to `restore()` from a hash already read (a batch reads them in one pipeline), `serializer`
        already resolved (the worker's): RQ's constructor re-checks it against its `Protocol` (~15 µs a job)."""
        job = cls(job_id, connection=connection)  # nothing to resolve; the serializer is set before any use
        job.serializer = serializer
        return job

    @property
    def spec(self) -> JobSpec:
        func_name = self.func_name
        if func_name is None or self.instance is not None:
            raise UnregisteredJobError(f"job {self.id} names no registered function")
        try:
            return registry.for_function(func_name)
        except UnknownJobTypeError:
            raise UnregisteredJobError(f"{func_name!r} is not a registered job type; refusing to run it") from None

    @property
    def func(self) -> Any:
        return _function(self.spec.func_path)

    def bound_call(self) -> functools.partial[Any]:
        """The registered function with its re-validated keyword arguments, not yet called."""
        spec = self.spec
        if self.args:
            raise UnregisteredJobError(f"job type {spec.name!r} takes keyword arguments only")
        kwargs = spec.args_model.model_validate(self.kwargs).model_dump()
        return functools.partial(_function(spec.func_path), **kwargs)

    def perform(self) -> Any:
        with tracing.job_run(self):  # this attempt's span (a no-op unless tracing is configured)
            return super().perform()

    def _execute(self) -> Any:
        call = self.bound_call()
        try:
            with OutputSession(self):  # its end sends the job's last output before RQ records the job's end
                result = call()
                if asyncio.iscoroutine(result):
                    return asyncio.run(result)
                return result
        except MemoryError as exc:
            limit = get_settings().job_max_memory
            if limit is None or isinstance(exc, JobMemoryLimitError):
                raise
            raise JobMemoryLimitError(f"the job exceeded its memory limit of {limit} MB (JOB_MAX_MEMORY)") from exc

    def ensure_json(self) -> None:
        """Refuse a job whose data or meta in Redis is not JSON (a planted pickle, say): nothing is unpickled."""
        if bookkeeping.meta_is_unreadable(self):
            raise UnreadableJobError(f"job {self.id}: meta in Redis is not JSON; refusing to run it")
        try:
            self.func_name  # noqa: B018  (decodes `data` with the JSON serializer)
        except DeserializationError:
            raise UnreadableJobError(f"job {self.id}: data in Redis is not JSON; refusing to run it") from None

    def prepare_for_execution(self, worker_name: str, pipeline: Pipeline) -> None:
        """RQ's `prepare_for_execution` (the same fields), with this start counted in `meta['attempt']` in the
        same HSET, and announced, in the same round trip as RQ's own bookkeeping."""
        self.ensure_json()
        self.meta[ATTEMPT] = int(self.meta.get(ATTEMPT, 0)) + 1
        bookkeeping.write_start(self, worker_name, pipeline)
        events.add_status(pipeline, self, JobStatus.STARTED.value)
