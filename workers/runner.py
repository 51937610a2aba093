"""Running one job in the concurrent worker: a coroutine job as a task, a plain function in a thread.

Timeouts and stops: a coroutine job is cancelled. A thread cannot be killed: the job is
recorded as timed out (or stopped) at once and an exception is raised in its thread at the
thread's next Python instruction (a call blocked in C, such as `time.sleep`, returns first);
whatever that thread returns afterwards is discarded.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import threading
from typing import Any

from rq import Queue
from rq.exceptions import ShutDownImminentException
from rq.job import Job
from rq.timeouts import JobTimeoutException
from rq.utils import now

from core import tracing
from core.rqadapter.worker_hooks import bind_current_job, unbind_current_job
from jobs.output import OutputSession
from workers.job import RegisteredJob
from workers.running import (
    ConcurrentState,
    ExcInfo,
    JobInterruptedError,
    JobKilledError,
    JobStoppedError,
    Running,
    RunOutcome,
)
from workers.threads import raise_in_thread


class JobRunnerMixin(ConcurrentState):
    async def _run(self, running: Running) -> None:
        """Run the job to its end (or its timeout, or a cancellation) and hand its outcome to the loop."""
        job = running.job
        timeout = job.timeout if job.timeout is not None else Queue.DEFAULT_TIMEOUT
        outcome = RunOutcome(running)
        try:
            async with asyncio.timeout(None if timeout == -1 else timeout) as scope:
                with tracing.job_run(job), OutputSession(job):  # OutputSession's end: the last output, then the end
                    outcome.value = await self._call(running)
        except asyncio.CancelledError:
            if running.cancelled_for is None:
                raise
            outcome.exc_info = _exc_info(_cancellation(running.cancelled_for))
            outcome.stopped = running.cancelled_for == "stop"
            outcome.killed = running.cancelled_for == "kill"
        except TimeoutError as exc:
            outcome.exc_info = (
                _exc_info(JobTimeoutException(f"Task exceeded maximum timeout value ({timeout} seconds)"))
                if scope.expired()
                else (type(exc), exc, exc.__traceback__)
            )
        except BaseException as exc:  # noqa: B036  (a job's failure, whatever it raised, is recorded)
            outcome.exc_info = (type(exc), exc, exc.__traceback__)
        job.ended_at = now()
        self.running.pop(job.id, None)
        self._done.append(outcome)
        assert self._wake is not None
        self._wake.set()

    async def _call(self, running: Running) -> Any:
        call = _bound_call(running.job)
        if inspect.iscoroutinefunction(call.func):
            return await call()
        in_thread = tracing.in_context(functools.partial(self._in_thread, running, call))  # the run's span current
        future = self._threads.submit(in_thread)
        try:
            value = await future
        except asyncio.CancelledError:  # the future is cancelled too: whatever the thread returns is dropped
            self._interrupt(running, JobInterruptedError)
            raise
        if asyncio.iscoroutine(value):  # a plain function that returned a coroutine: await it here
            value = await value
        return value

    def _in_thread(self, running: Running, call: functools.partial[Any]) -> Any:
        token = bind_current_job(running.job)
        try:
            with running.lock:
                running.thread_id = threading.get_ident()
            try:
                return call()
            finally:
                with running.lock:
                    running.thread_id = None
        except JobInterruptedError:
            return None  # the worker already recorded why it gave up on this job
        finally:
            unbind_current_job(token)

    def _interrupt(self, running: Running, exc_type: type[BaseException]) -> None:
        with running.lock:
            if running.thread_id is not None:
                raise_in_thread(running.thread_id, exc_type)


def _bound_call(job: Job) -> functools.partial[Any]:
    """The job's function with its arguments, not yet called: `RegisteredJob`'s checked call, or (RQ's
    `Job` and other job classes) what `Job.perform` would call."""
    if isinstance(job, RegisteredJob):
        return job.bound_call()
    return functools.partial(job.func, *job.args, **job.kwargs)


def _cancellation(reason: str) -> BaseException:
    """What a job the worker cancelled for `reason` is recorded as having raised."""
    if reason == "stop":
        return JobStoppedError("stopped by request")
    if reason == "kill":
        return JobKilledError("killed by the kill-horse command")
    return ShutDownImminentException("shut down imminent: the worker is stopping", {})


def _exc_info(exc: BaseException) -> ExcInfo:
    try:
        raise exc
    except BaseException:  # noqa: B036
        kind, value, tb = sys.exc_info()
    assert kind is not None and value is not None
    return kind, value, tb
