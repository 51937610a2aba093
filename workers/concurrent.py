"""A worker that runs many jobs at once in one process: `rq worker -w workers.concurrent.ConcurrentWorker`.

RQ's workers run one job at a time, so a process waiting on an HTTP or LLM call sits idle.
`ConcurrentWorker` keeps up to `WORKER_CONCURRENCY` jobs running: coroutine jobs (an
`async def`, or a function returning a coroutine) as tasks on its event loop, plain
functions in threads. It stays an RQ worker: registered with RQ (rq-dashboard lists it),
one RQ `Execution` per running job in the `StartedJobRegistry` with heartbeats, RQ's
results, registries, retries, callbacks and `stop-job` commands.

What it does differently is batch its bookkeeping. Jobs are popped in priority order by a
Lua script that moves them to RQ's intermediate list in the same step (nothing is lost if
the process dies there); the jobs popped together start in one pipeline; jobs that finish
together are recorded in one MULTI/EXEC. Whatever is not the plain case (a failure, a
returned `Retry`, dependents, callbacks, webhooks, repeats, rate limits, `result_ttl=0`)
goes through RQ's own per-job handlers, unchanged.

Timeouts and stops: a coroutine job is cancelled. A thread cannot be killed: the job is
recorded as timed out (or stopped) at once and an exception is raised in its thread at
the thread's next Python instruction (a call blocked in C, such as `time.sleep`, returns
first); whatever that thread returns afterwards is discarded.

With `WORKER_CONCURRENCY=1` it is the forking `ServiceWorker`, one job per work horse.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import functools
import inspect
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any

import redis
from rq import Queue, Retry
from rq.callbacks import execute_stopped_callback
from rq.command import parse_payload
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import ShutDownImminentException
from rq.executions import Execution
from rq.job import JobStatus, _current_job
from rq.suspension import is_suspended
from rq.timeouts import JobTimeoutException
from rq.utils import now
from rq.worker import DequeueStrategy, WorkerStatus

from jobs.settings import get_settings
from workers.job import RegisteredJob
from workers.worker import ServiceWorker

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

#: Seconds between dequeue attempts while every queue is empty (and slots are free).
IDLE_POLL = 0.05

#: Pops up to ARGV[1] job ids, highest-priority queue first, onto each queue's intermediate
#: list (RQ's own reliability list) atomically. KEYS: the queues, then their intermediate lists.
POP_SCRIPT = """
local want = tonumber(ARGV[1])
local n = #KEYS / 2
local out = {}
for i = 1, n do
  if want <= 0 then break end
  local ids = redis.call('LPOP', KEYS[i], want)
  if ids then
    for _, id in ipairs(ids) do
      redis.call('RPUSH', KEYS[n + i], id)
      out[#out + 1] = i
      out[#out + 1] = id
    end
    want = want - #ids
  end
end
return out
"""


class JobInterruptedError(Exception):
    """Raised inside a job's thread once the worker gave up on it (timeout, stop, shutdown)."""


class JobStoppedError(Exception):
    """The job was stopped on request (`DELETE /jobs/{id}`, `send_stop_job_command`)."""


@dataclass(eq=False)
class Running:
    job: RegisteredJob
    queue: Queue
    execution: Execution
    task: asyncio.Task[None] | None = None
    thread_id: int | None = None
    #: Why the worker cancelled the job: "stop" (on request) or "shutdown" (warm shutdown ran out of time).
    cancelled_for: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(eq=False)
class Outcome:
    running: Running
    value: Any = None
    exc_info: ExcInfo | None = None
    stopped: bool = False


class JobThreads:
    """Daemon threads for sync jobs: one more is started whenever none is idle.

    A thread abandoned after a timeout stays busy until its job returns, without holding up
    later jobs; daemon threads never keep a shutting-down worker alive.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._started = 0

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            spawn = self._idle == 0
            if spawn:
                self._started += 1
            else:
                self._idle -= 1
        self._work.put((future, fn))
        if spawn:
            threading.Thread(target=self._serve, name=f"{self._name}-{self._started}", daemon=True).start()
        return future

    def _serve(self) -> None:
        while True:
            future, fn = self._work.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # noqa: B036  (the job's own exception, handed to the loop)
                    future.set_exception(exc)
            with self._lock:
                self._idle += 1


def _raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))


def _discard(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class ConcurrentWorker(ServiceWorker):
    """Runs up to `concurrency` (default `WORKER_CONCURRENCY`) jobs at once; see the module docstring."""

    def __init__(
        self, queues: Sequence[str | Queue] | str | Queue, *args: Any, concurrency: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(queues, *args, **kwargs)
        self.concurrency = concurrency if concurrency is not None else get_settings().worker_concurrency
        self.running: dict[str, Running] = {}
        self._done: list[Outcome] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._threads = JobThreads(f"{self.name}-job")
        self._force_stop = False
        self._shutdown_deadline: float | None = None
        self._pop = self.connection.register_script(POP_SCRIPT)

    # -- the work loop ------------------------------------------------------------------

    def work(
        self,
        burst: bool = False,
        logging_level: str | None = None,
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
        max_jobs: int | None = None,
        max_idle_time: int | None = None,
        with_scheduler: bool = False,
        dequeue_strategy: DequeueStrategy = DequeueStrategy.DEFAULT,
    ) -> bool:
        if self.concurrency <= 1:
            return bool(
                super().work(
                    burst,
                    logging_level,
                    date_format,
                    log_format,
                    max_jobs,
                    max_idle_time,
                    with_scheduler,
                    dequeue_strategy,
                )  # fmt: skip
            )
        self.bootstrap(logging_level, date_format, log_format)
        self.log.info("Worker %s: running up to %d jobs at once", self.name, self.concurrency)
        if with_scheduler:
            self._start_scheduler(burst, logging_level, date_format, log_format)
        self._install_signal_handlers()  # type: ignore[no-untyped-call]
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                return runner.run(self._serve(burst, max_jobs, max_idle_time))
        finally:
            self.teardown()  # type: ignore[no-untyped-call]

    async def _serve(self, burst: bool, max_jobs: int | None, max_idle_time: int | None) -> bool:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        started = 0
        idle_since = next_heartbeat = next_suspension_check = time.monotonic()
        suspended = False
        try:
            while not self._force_stop:
                clock = time.monotonic()
                if self._done:
                    self._finish(self._swap_done())
                if clock >= next_heartbeat:
                    self._heartbeat_running()
                    next_heartbeat = clock + self._heartbeat_interval()
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()  # type: ignore[no-untyped-call]
                if clock >= next_suspension_check:
                    suspended = self._suspended(burst)
                    next_suspension_check = clock + 1.0
                if self._shutdown_deadline is not None and clock >= self._shutdown_deadline:
                    for running in list(self.running.values()):
                        self.log.warning("Worker %s: shutting down, interrupting job %s", self.name, running.job.id)
                        self._cancel(running, "shutdown")
                    self._shutdown_deadline = None

                budget = self.concurrency - len(self.running)
                if max_jobs is not None:
                    budget = min(budget, max_jobs - started)
                accepting = not (self._stop_requested or suspended) and (max_jobs is None or started < max_jobs)
                popped = 0
                if accepting and budget > 0:
                    batch = self._dequeue(budget)
                    popped = len(batch)
                    if batch:
                        self._start(batch)
                        started += popped
                if self.running or self._done or popped:
                    idle_since = clock
                elif not accepting or burst:
                    break
                elif max_idle_time is not None and clock - idle_since >= max_idle_time:
                    self.log.info("Worker %s: idle for %d seconds, quitting", self.name, max_idle_time)
                    break

                if popped and len(self.running) < self.concurrency:
                    await asyncio.sleep(0)  # let the new jobs start, then take more
                    continue
                await self._wait(IDLE_POLL if accepting and len(self.running) < self.concurrency else 1.0)
            if self._done:
                self._finish(self._swap_done())
        finally:
            for running in list(self.running.values()):
                if running.task is not None:
                    running.task.cancel()
        return started > 0

    async def _wait(self, timeout: float) -> None:
        assert self._wake is not None
        if not self._done:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
        await asyncio.sleep(0)  # jobs finishing in the same instant join this batch
        self._wake.clear()

    def _swap_done(self) -> list[Outcome]:
        done, self._done = self._done, []
        return done

    def _heartbeat_interval(self) -> float:
        return float(max(1, min(self.job_monitoring_interval, self.worker_ttl // 3)))

    def _suspended(self, burst: bool) -> bool:
        if not is_suspended(self.connection, self):
            if self.get_state() == WorkerStatus.SUSPENDED:
                self.set_state(WorkerStatus.BUSY if self.running else WorkerStatus.IDLE)
            return False
        if burst:
            self.log.info("Worker %s: suspended in burst mode, exiting", self.name)
            self._stop_requested = True
        elif self.get_state() != WorkerStatus.SUSPENDED:
            self.log.info("Worker %s: suspended, run `rq resume` to resume", self.name)
            self.set_state(WorkerStatus.SUSPENDED)
        return True

    # -- dequeue and start --------------------------------------------------------------

    def _dequeue(self, count: int) -> list[tuple[RegisteredJob, Queue]]:
        """Up to `count` jobs, highest-priority queue first, each moved to its intermediate list."""
        queues: list[Queue] = self._ordered_queues
        raw = self._pop(keys=[q.key for q in queues] + [q.intermediate_queue_key for q in queues], args=[count])
        if not raw:
            return []
        popped = [(queues[int(raw[i]) - 1], raw[i + 1].decode()) for i in range(0, len(raw), 2)]
        with self.connection.pipeline(transaction=False) as pipe:
            for _, job_id in popped:
                pipe.hgetall(RegisteredJob.key_for(job_id))
            hashes = pipe.execute()
        batch: list[tuple[RegisteredJob, Queue]] = []
        version = self.get_redis_server_version()  # type: ignore[no-untyped-call]
        with self.connection.pipeline(transaction=False) as pipe:
            for (queue_, job_id), data in zip(popped, hashes, strict=True):
                if not data:  # deleted while queued: nothing to run
                    pipe.lrem(queue_.intermediate_queue_key, 1, job_id)
                    continue
                job = RegisteredJob(job_id, connection=self.connection, serializer=self.serializer)
                try:
                    job.restore(data)
                except Exception:
                    self.log.exception("Worker %s: job %s cannot be read; failing it", self.name, job_id)
                    self.handle_job_failure(job, queue_, exc_string="the job's data in Redis cannot be read")
                    pipe.lrem(queue_.intermediate_queue_key, 1, job_id)
                    continue
                job.redis_server_version = version
                batch.append((job, queue_))
            if len(pipe):
                pipe.execute()
        return batch

    def _start(self, batch: list[tuple[RegisteredJob, Queue]]) -> None:
        """RQ's `prepare_execution` + `prepare_job_execution` for every job of `batch`, in one round trip."""
        started: list[Running] = []
        with self.connection.pipeline() as pipe:
            for job, queue_ in batch:
                ttl = self.get_heartbeat_ttl(job)
                execution = Execution.create(job, ttl, pipeline=pipe, worker_name=self.name)
                self.executions[execution.id] = execution
                job.heartbeat(now(), ttl, pipeline=pipe)
                job.prepare_for_execution(self.name, pipeline=pipe)
                pipe.persist(job.key)
                pipe.lrem(queue_.intermediate_queue_key, 1, job.id)
                started.append(Running(job, queue_, execution))
            self.set_state(WorkerStatus.BUSY, pipeline=pipe)
            self.heartbeat(pipeline=pipe)
            pipe.execute()
        assert self._loop is not None
        for running in started:
            self.running[running.job.id] = running
            context = contextvars.copy_context()
            context.run(_current_job.set, running.job)  # progress.report() finds its own job
            running.task = self._loop.create_task(self._run(running), context=context)
        self.log.debug("Worker %s: started %d jobs", self.name, len(started))

    # -- running one job ----------------------------------------------------------------

    async def _run(self, running: Running) -> None:
        job = running.job
        timeout = job.timeout if job.timeout is not None else Queue.DEFAULT_TIMEOUT
        outcome = Outcome(running)
        try:
            async with asyncio.timeout(None if timeout == -1 else timeout) as scope:
                outcome.value = await self._call(running)
        except asyncio.CancelledError:
            if running.cancelled_for is None:
                raise
            outcome.stopped = running.cancelled_for == "stop"
            outcome.exc_info = _exc_info(
                JobStoppedError("stopped by request")
                if outcome.stopped
                else ShutDownImminentException("shut down imminent: the worker is stopping", {})
            )
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
        call = running.job.bound_call()
        if inspect.iscoroutinefunction(call.func):
            return await call()
        future = asyncio.wrap_future(self._threads.submit(functools.partial(self._in_thread, running, call)))
        try:
            value = await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_discard)
            self._interrupt(running, JobInterruptedError)
            raise
        if asyncio.iscoroutine(value):  # a plain function that returned a coroutine: await it here
            value = await value
        return value

    def _in_thread(self, running: Running, call: functools.partial[Any]) -> Any:
        token = _current_job.set(running.job)
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
            _current_job.reset(token)

    def _interrupt(self, running: Running, exc_type: type[BaseException]) -> None:
        with running.lock:
            if running.thread_id is not None:
                _raise_in_thread(running.thread_id, exc_type)

    def _cancel(self, running: Running, reason: str) -> None:
        if running.task is not None and running.cancelled_for is None:
            running.cancelled_for = reason
            running.task.cancel()

    # -- recording outcomes -------------------------------------------------------------

    def _finish(self, outcomes: list[Outcome]) -> None:
        plain = [o for o in outcomes if o.exc_info is None and self._is_plain_success(o)]
        if plain:
            self._finish_plain(plain)
        for outcome in outcomes:
            if outcome.exc_info is not None or not self._is_plain_success(outcome):
                self._finish_one(outcome)
        if not self.running:
            self.set_state(WorkerStatus.IDLE)

    def _is_plain_success(self, outcome: Outcome) -> bool:
        job = outcome.running.job
        return not (
            isinstance(outcome.value, Retry)
            or job._success_callback_name
            or job.webhooks
            or job.repeats_left
            or job.has_rate_limit
            or job.get_result_ttl(self.default_result_ttl) == 0
        )

    def _finish_plain(self, outcomes: list[Outcome]) -> None:
        """RQ's `handle_job_success` for jobs without dependents, all of them in one MULTI/EXEC.

        WATCHing the jobs' dependents sets closes the race with a dependent being added
        meanwhile; if any job has dependents (or one is added), RQ's own handler runs instead.
        """
        jobs = [o.running.job for o in outcomes]
        try:
            with self.connection.pipeline() as pipe:
                dependents = [job.dependents_key for job in jobs]
                pipe.watch(*dependents)  # type: ignore[no-untyped-call]
                if pipe.execute_command("EXISTS", *dependents):  # type: ignore[no-untyped-call]
                    pipe.unwatch()
                    raise redis.WatchError("a finished job has dependents")
                pipe.multi()
                pipe.hincrby(self.key, "successful_job_count", len(jobs))
                working = sum(
                    (job.ended_at - job.started_at).total_seconds() for job in jobs if job.started_at and job.ended_at
                )
                pipe.hincrbyfloat(self.key, "total_working_time", working)
                for outcome in outcomes:
                    job, execution = outcome.running.job, outcome.running.execution
                    job._status = JobStatus.FINISHED
                    job._result = outcome.value
                    result_ttl = job.get_result_ttl(self.default_result_ttl)
                    job._handle_success(
                        result_ttl,
                        pipeline=pipe,
                        worker_name=self.name,
                        execution_id=execution.id,
                        execution_started_at=execution.created_at,
                        execution_ended_at=job.ended_at,
                    )
                    job.cleanup(result_ttl, pipeline=pipe, remove_from_queue=False)
                    self.cleanup_execution(job, pipeline=pipe, execution=execution)
                pipe.execute()
        except redis.WatchError:
            for outcome in outcomes:
                self._finish_one(outcome)
            return
        self.log.info("Worker %s: %d jobs OK", self.name, len(outcomes))

    def _finish_one(self, outcome: Outcome) -> None:
        running = outcome.running
        job, queue_, execution = running.job, running.queue, running.execution
        try:
            if outcome.exc_info is None:
                self._finalize_success(job, queue_, execution, outcome.value)
            elif outcome.stopped:
                self.log.warning("Worker %s: job %s stopped by request", self.name, job.id)
                try:
                    execute_stopped_callback(job, self.death_penalty_class)
                except Exception:
                    self.log.exception("Worker %s: stopped callback for job %s raised", self.name, job.id)
                self._stopped_job_id = job.id
                self.handle_job_failure(job, queue_, exc_string="Job stopped by request.", execution=execution)
            else:
                self._finalize_failure(job, queue_, execution, outcome.exc_info)
        except Exception:
            self.log.exception("Worker %s: could not record the outcome of job %s", self.name, job.id)

    # -- heartbeats ---------------------------------------------------------------------

    def _heartbeat_running(self) -> None:
        """RQ's `maintain_heartbeats` for the worker and every running execution, in one round trip."""
        with self.connection.pipeline() as pipe:
            self.heartbeat(max(self.worker_ttl, self.job_monitoring_interval) + 60, pipeline=pipe)
            moment = now()
            for running in self.running.values():
                job = running.job
                working = (moment - job.started_at).total_seconds() if job.started_at else 0.0
                ttl = max(60, int(self.get_heartbeat_ttl(job, working_time=working)))
                running.execution.heartbeat(job.started_job_registry, ttl, pipeline=pipe)
                job.heartbeat(moment, ttl, pipeline=pipe, xx=True)
            pipe.execute()

    # -- commands and signals -----------------------------------------------------------

    def handle_payload(self, message: dict[str, Any]) -> None:
        """`stop-job` / `stop-execution` for any running job (RQ's handler knows one job only)."""
        payload = parse_payload(message)
        if payload.get("command") in ("stop-job", "stop-execution") and self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop_job, payload.get("job_id"), payload.get("execution_id"))
            return
        super().handle_payload(message)  # type: ignore[no-untyped-call]

    def _stop_job(self, job_id: str | None, execution_id: str | None) -> None:
        running = self.running.get(job_id or "")
        if running is None and execution_id:
            running = next((r for r in self.running.values() if r.execution.id == execution_id), None)
        if running is None:
            self.log.warning("Worker %s: not running job %s, stop command ignored", self.name, job_id)
            return
        self._cancel(running, "stop")

    def handle_warm_shutdown_request(self) -> None:
        self.log.info("Worker %s: warm shut down requested", self.name)

    def _shutdown(self) -> None:
        """Warm shutdown: take no more jobs; running ones get `imminent_shutdown_delay` seconds (as
        HerokuWorker's horses do), then are interrupted with ShutDownImminentException."""
        if self.concurrency <= 1:
            super()._shutdown()  # type: ignore[no-untyped-call]
            return
        self._stop_requested = True
        if self.running:
            self._shutdown_deadline = time.monotonic() + self.imminent_shutdown_delay
        if self.scheduler:
            self.stop_scheduler()  # type: ignore[no-untyped-call]
        self._nudge()

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        if self.concurrency <= 1:
            super().request_force_stop(signum, frame)
            return
        if self._shutdown_requested_date and (now() - self._shutdown_requested_date).total_seconds() < 1:
            return
        self.log.warning("Worker %s: cold shut down; running jobs are left to abandoned-job recovery", self.name)
        self._force_stop = True
        self._nudge()

    def _nudge(self) -> None:
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)


def _exc_info(exc: BaseException) -> ExcInfo:
    try:
        raise exc
    except BaseException:  # noqa: B036
        kind, value, tb = sys.exc_info()
    assert kind is not None and value is not None
    return kind, value, tb


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return None
    return uvloop.new_event_loop
