"""A worker that runs many jobs at once in one process: `rq worker -w workers.concurrent.ConcurrentWorker`.

RQ's workers run one job at a time, so a process waiting on an HTTP or LLM call sits idle.
`ConcurrentWorker` keeps up to `WORKER_CONCURRENCY` jobs running: coroutine jobs (an
`async def`, or a function returning a coroutine) as tasks on its event loop, plain
functions in threads. It stays an RQ worker: registered with RQ (rq-dashboard lists it),
one RQ `Execution` per running job in the `StartedJobRegistry` with heartbeats (its hash and
indexes from `EXECUTION_RECORD_DELAY` after its start, below), RQ's results, registries,
retries, callbacks and `stop-job` commands.

It keeps every guarantee of the forking `ServiceWorker` that does not need a process per job:

- dequeue: jobs are claimed by `workers.dequeue.Claims.claim_many` (one Lua step takes up to
  the free slots' worth of jobs, `high` before `default` before `low`, and records each
  `job -> worker` claim); every claim is settled once its job's outcome is recorded
  (`Recovery.settle`, or released inside the MULTI/EXEC that records a plain success);
- liveness and abandoned-job sweeps (`Recovery.tick`) run on every turn of the loop, so jobs
  of a dead worker are retried or failed within `ABANDONED_JOB_TIMEOUT`; RQ's own
  StartedJobRegistry cleanup stays disabled (`ReliableWorkerMixin.clean_registries`);
- a job whose claim was taken over (this worker was presumed dead) is abandoned here and its
  outcome is never recorded, as the forking worker kills its horse;
- SIGTERM: no new jobs; running ones may finish within `WORKER_SHUTDOWN_GRACE`, then are
  interrupted and requeued at the front without spending a retry; a second signal requeues at
  once; exit code 0;
- Redis outages: every step of the loop waits for Redis; outcomes that could not be saved are
  settled (the job retried) once Redis is back;
- status events and completion callbacks (`workers.lifecycle`), log lines and run-time histograms
  (`workers.observe`), stop grace and dependents of failed jobs (`workers.stopping`).

Bookkeeping is batched: the jobs claimed together start in one pipeline (status `started`,
the attempt counted, the `started` event, the entry in RQ's started registry); jobs that finish
together are recorded in one MULTI/EXEC, their status events, run times and claim releases
included. The rest of a job's RQ execution (its hash, its entries in the job's and the worker's
execution indexes) is written `EXECUTION_RECORD_DELAY` (0.1 s) after it started, with those of
the other jobs then due, or with a heartbeat that comes first: a job that ends sooner (a
CPU-trivial job) has none, which spares Redis 8 of the ~25 commands of its run. Nothing but RQ's
views of executions reads them meanwhile: the claim guards the job, its status is `started`
and it is in the started registry from the start. All of it writes RQ's keys and
values through `workers.batch` (no RQ helper object per job).
The worker's state flips to `idle` only when the work runs out, not between batches; its
heartbeat is the periodic one; while another worker's scheduler holds the scheduler locks, they
are retried once a second, not on every turn of the loop.
Whatever is not the plain case (a failure, a returned `Retry`, dependents, callbacks,
webhooks, repeats, rate limits, `result_ttl=0`) goes through the per-job handlers.

Timeouts and stops: a coroutine job is cancelled. A thread cannot be killed: the job is
recorded as timed out (or stopped) at once and an exception is raised in its thread at
the thread's next Python instruction (a call blocked in C, such as `time.sleep`, returns
first); whatever that thread returns afterwards is discarded.

What needs a process per job (`JOB_MAX_MEMORY`, surviving a segfault or the OOM killer, hard-
killing a job stuck in C past its timeout) needs `WORKER_CONCURRENCY=1`: then this class is
the forking `ServiceWorker`, one job per work horse.
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
from rq.job_lifecycle import record_job_failure
from rq.suspension import is_suspended
from rq.timeouts import JobTimeoutException
from rq.utils import current_timestamp, now
from rq.worker import DequeueStrategy, WorkerStatus

from core import events, keys, meta, runtimes
from core.connection import REDIS_DOWN
from core.settings import get_settings
from workers import batch as runs
from workers.dequeue import Claims
from workers.job import RegisteredJob
from workers.observe import finished_fields, job_fields, run_times
from workers.observe import logger as job_log
from workers.reliable import LOST_OUTCOME_REASON, SHUTDOWN_REASON
from workers.worker import ServiceWorker

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

#: Seconds between dequeue attempts while every queue is empty (and slots are free).
IDLE_POLL = 0.05

#: Longest wait between retries while Redis is unreachable.
REDIS_RETRY_MAX = 5.0

#: Seconds a job runs before the rest of its RQ execution is written (the execution hash, the job's and
#: the worker's execution indexes; its started registry entry is written at the start): a job that ends
#: sooner ends without them (and without deleting them), 8 writes fewer.
EXECUTION_RECORD_DELAY = 0.1


class JobInterruptedError(Exception):
    """Raised inside a job's thread once the worker gave up on it (timeout, stop, shutdown)."""


class JobStoppedError(Exception):
    """The job was stopped on request (`DELETE /jobs/{id}`, `send_stop_job_command`)."""


@dataclass(eq=False)
class Running:
    job: RegisteredJob
    queue: Queue
    execution: Execution
    #: `time.monotonic()` when it started.
    since: float = 0.0
    #: Whether its RQ execution is written (`ConcurrentWorker._record_executions`)...
    recorded: bool = False
    #: ...or may be: a write of it went out, and its reply may have been lost.
    record_sent: bool = False
    task: asyncio.Task[None] | None = None
    thread_id: int | None = None
    #: Why the worker cancelled the job: "stop" (on request), "shutdown" (requeue it) or "claim lost"
    #: (another worker recovered it: record nothing).
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
        #: Claims still to settle, each a call retried until Redis answers it.
        self._unsettled: list[Callable[[], object]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._threads = JobThreads(f"{self.name}-job")
        #: A second signal: stop even with outcomes Redis has not taken yet (the sweep settles them).
        self._forced_stop = False

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
        if get_settings().job_max_memory:
            self.log.warning(
                "Worker %s: JOB_MAX_MEMORY needs a work horse per job and is not applied at WORKER_CONCURRENCY=%d",
                self.name,
                self.concurrency,
            )
        if with_scheduler:
            self._until_redis(lambda: self._start_scheduler(burst, logging_level, date_format, log_format), "start")
        self._install_signal_handlers()  # type: ignore[no-untyped-call]
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                return runner.run(self._serve(burst, max_jobs, max_idle_time))
        finally:
            self.teardown()

    async def _serve(self, burst: bool, max_jobs: int | None, max_idle_time: int | None) -> bool:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        started = 0
        idle_since = next_heartbeat = next_suspension_check = time.monotonic()
        suspended = False
        backoff = 0.25
        try:
            while True:
                clock = time.monotonic()
                popped = 0
                accepting = False
                try:
                    self._settle_pending()
                    if self._done:
                        self._finish(self._swap_done())
                    self._record_executions(self._unrecorded(clock))
                    self._maintain()
                    if clock >= next_heartbeat:
                        self._heartbeat_running()
                        next_heartbeat = clock + self._heartbeat_interval()
                    if self.should_run_maintenance_tasks:
                        self.run_maintenance_tasks()
                    if clock >= next_suspension_check:
                        suspended = self._suspended(burst)
                        next_suspension_check = clock + 1.0
                    self._interrupt_past_deadline(clock)

                    budget = self.concurrency - len(self.running)
                    if max_jobs is not None:
                        budget = min(budget, max_jobs - started)
                    accepting = not (self._stop_requested or suspended) and (max_jobs is None or started < max_jobs)
                    if accepting and budget > 0:
                        batch = self._dequeue(budget)
                        popped = len(batch)
                        if batch:
                            self._start(batch)
                            started += popped
                    if not (self.running or popped) and self.get_state() == WorkerStatus.BUSY:
                        self.set_state(WorkerStatus.IDLE)  # only once the work ran out, not between batches
                    backoff = 0.25
                except REDIS_DOWN as exc:
                    self.recovery.note_redis_error()
                    self._interrupt_past_deadline(clock)
                    unrecorded = len(self._done) + len(self._unsettled)
                    if self._stop_requested and not self.running and (self._forced_stop or not unrecorded):
                        # What could not be recorded stays claimed by this worker: the abandoned-job sweep of
                        # whichever worker next reaches Redis settles it (as after a crash).
                        self.log.error(
                            "Worker %s: stopping while Redis is unreachable (%s); %d unrecorded outcomes are left "
                            "to the abandoned-job sweep",
                            self.name,
                            exc,
                            unrecorded,
                        )
                        break
                    self.log.error("Worker %s: Redis unreachable (%s); retrying in %.2fs", self.name, exc, backoff)
                    deadline = self._shutdown_deadline
                    if deadline is not None and self.running:  # interrupt the running jobs on time
                        await self._wait(min(backoff, max(0.05, deadline - clock)), outcomes_wake=False)
                    else:
                        await self._wait(backoff, outcomes_wake=False)
                    backoff = min(backoff * 2, self.recovery.timing.beat_interval, REDIS_RETRY_MAX)
                    continue
                if self.running or self._done or self._unsettled or popped:
                    idle_since = clock
                elif not accepting or burst:
                    break
                elif max_idle_time is not None and clock - idle_since >= max_idle_time:
                    self.log.info("Worker %s: idle for %d seconds, quitting", self.name, max_idle_time)
                    break

                if popped and len(self.running) < self.concurrency:
                    await asyncio.sleep(0)  # let the new jobs start, then take more
                    continue
                timeout = IDLE_POLL if accepting and len(self.running) < self.concurrency else 1.0
                await self._wait(min(timeout, self._next_record_in(time.monotonic())))
        finally:
            for running in list(self.running.values()):
                if running.task is not None:
                    running.task.cancel()
        return started > 0

    def _interrupt_past_deadline(self, clock: float) -> None:
        """Once the shutdown grace is over, interrupt the running jobs (to be requeued, no retry spent)."""
        deadline = self._shutdown_deadline
        if deadline is not None and clock >= deadline:
            for running in list(self.running.values()):
                if running.cancelled_for is None:
                    self.log.warning("Worker %s: shutting down, requeueing job %s", self.name, running.job.id)
                self._cancel(running, "shutdown")

    async def _wait(self, timeout: float, *, outcomes_wake: bool = True) -> None:
        """Until woken (a job ended, a signal) or `timeout`; at once while outcomes wait to be recorded,
        unless `outcomes_wake` is False (Redis refused them just now: waiting is the point)."""
        assert self._wake is not None
        if not (outcomes_wake and self._done):
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
        """Up to `count` jobs, highest-priority queue first, each claimed for this worker."""
        queues: list[Queue] = self._ordered_queues
        claimed = self.recovery.claims.claim_many([q.key for q in queues], self.name, count)
        if not claimed:
            return []
        try:
            return self._load(claimed, {q.key: q for q in queues})
        except REDIS_DOWN:
            # Claimed, not started: hand them back (front of their queues, no retry spent) once Redis answers.
            for _, job_id in claimed:
                self._unsettled.append(functools.partial(self._hand_back, job_id))
            raise

    def _load(self, claimed: list[tuple[str, str]], by_key: dict[str, Queue]) -> list[tuple[RegisteredJob, Queue]]:
        with self.connection.pipeline(transaction=False) as pipe:
            for _, job_id in claimed:
                pipe.hgetall(RegisteredJob.key_for(job_id))
            hashes = pipe.execute()
        batch: list[tuple[RegisteredJob, Queue]] = []
        version = self.get_redis_server_version()  # type: ignore[no-untyped-call]
        for (queue_key, job_id), data in zip(claimed, hashes, strict=True):
            queue_ = by_key[queue_key]
            if not data:  # deleted while queued: nothing to run
                self.connection.hdel(keys.CLAIMS, job_id)
                continue
            job = RegisteredJob.unrestored(job_id, self.connection, self.serializer)
            try:
                job.restore(data)
                job.ensure_json()
            except Exception as exc:
                self._refuse(job, queue_, exc)
                continue
            job.redis_server_version = version
            batch.append((job, queue_))
        if batch:
            self._pause_after_dequeue()
        return batch

    def _refuse(self, job: RegisteredJob, queue_: Queue, exc: Exception) -> None:
        """A job that cannot be read would fail in every worker: fail it once, running nothing."""
        self.log.error("Worker %s: %s", self.name, exc)
        job.ended_at = now()
        with self.connection.pipeline() as pipe:
            record_job_failure(job, f"{type(exc).__name__}: {exc}", pipe)
            pipe.hdel(keys.CLAIMS, job.id)
            pipe.execute()
        self.announce(job)

    def _start(self, batch: list[tuple[RegisteredJob, Queue]]) -> None:
        """RQ's `prepare_job_execution` for every job of `batch`, in one round trip (`workers.batch`; the
        worker's own heartbeat is `_heartbeat_running`'s, on its schedule), each in RQ's started registry.
        The rest of their executions is written later, for those still running (`_record_executions`)."""
        started: list[Running] = []
        try:
            with self.connection.pipeline() as pipe:
                stamp = current_timestamp()
                for job, queue_ in batch:
                    execution = runs.new_execution(job, self.name)
                    runs.register_start(pipe, execution, self.get_heartbeat_ttl(job), stamp)
                    job.prepare_for_execution(self.name, pipeline=pipe)
                    pipe.persist(job.key)
                    started.append(Running(job, queue_, execution))
                if self.get_state() != WorkerStatus.BUSY:
                    self.set_state(WorkerStatus.BUSY, pipeline=pipe)
                pipe.execute()
        except REDIS_DOWN:
            for job, _ in batch:  # started or not: `settle` finds out once Redis answers
                self._unsettled.append(functools.partial(self.recovery.settle, job, LOST_OUTCOME_REASON))
            raise
        assert self._loop is not None
        since = time.monotonic()
        for running in started:
            running.since = since
            self.executions[running.execution.id] = running.execution
            self.running[running.job.id] = running
            job_log.info("job started", extra=job_fields(running.job))
            context = contextvars.copy_context()
            context.run(_current_job.set, running.job)  # progress.report() finds its own job
            running.task = self._loop.create_task(self._run(running), context=context)
        self.log.debug("Worker %s: started %d jobs", self.name, len(started))

    def _unrecorded(self, clock: float | None = None) -> list[Running]:
        """Running jobs whose execution is still to be written: all of them, or those started
        `EXECUTION_RECORD_DELAY` before `clock`. Never one the worker gave up on (cancelled)."""
        return [
            running
            for running in self.running.values()
            if not running.recorded
            and running.cancelled_for is None
            and (clock is None or clock - running.since >= EXECUTION_RECORD_DELAY)
        ]

    def _next_record_in(self, clock: float) -> float:
        """Seconds until the next execution is due to be written (`inf`: none is); at least 5 ms, so that
        a timer firing a hair early costs one more turn of the loop, not a spin."""
        pending = [running.since for running in self._unrecorded()]
        return max(0.005, min(pending) + EXECUTION_RECORD_DELAY - clock) if pending else float("inf")

    def _record_executions(self, runnings: list[Running]) -> None:
        """Write the rest of the executions of `runnings` (`_queue_records`), in one round trip."""
        if not runnings:
            return
        with self.connection.pipeline() as pipe:
            self._queue_records(pipe, runnings)
            pipe.execute()
        for running in runnings:
            running.recorded = True

    def _queue_records(self, pipe: Any, runnings: list[Running]) -> None:
        """The rest of RQ's `Execution.create` for `runnings` (started registry entries are written at the
        start), queued on `pipe`: execution hashes, and entries in the job's and the worker's execution
        indexes (what `Job.get_executions` and rq-dashboard's worker view read)."""
        if not runnings:
            return
        stamp = current_timestamp()
        ttls = [self.get_heartbeat_ttl(running.job) for running in runnings]
        for running, ttl in zip(runnings, ttls, strict=True):
            runs.record_execution(pipe, running.execution, ttl, stamp)
            running.record_sent = True
        runs.expire_worker_executions(pipe, [running.execution for running in runnings], ttls)

    def _drop_execution(self, running: Running) -> None:
        """Delete this worker's execution of a job recovered elsewhere (it may have been written after the
        recovering worker looked for it)."""
        with self.connection.pipeline() as pipe:
            running.execution.delete(job=running.job, pipeline=pipe)
            pipe.execute()

    def _hand_back(self, job_id: str) -> object:
        return self.recovery.recover(job_id, self.name, "the worker lost Redis before starting it")

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
        """Record every outcome and settle its claim; what Redis could not take is settled later."""
        recorded = []
        for outcome in outcomes:
            job, reason = outcome.running.job, outcome.running.cancelled_for
            self.executions.pop(outcome.running.execution.id, None)
            if reason == "claim lost":
                self.log.error("Worker %s: job %s was recovered elsewhere; its outcome is discarded", self.name, job.id)
                if outcome.running.record_sent:
                    self._unsettled.append(functools.partial(self._drop_execution, outcome.running))
            elif reason == "shutdown" and outcome.exc_info is not None:
                self._unsettled.append(functools.partial(self.recovery.requeue_interrupted, job.id, SHUTDOWN_REASON))
            else:
                recorded.append(outcome)
        plain = [o for o in recorded if o.exc_info is None and self._is_plain_success(o)]
        if plain:
            self._finish_plain(plain)
        for outcome in recorded:
            if outcome.exc_info is not None or not self._is_plain_success(outcome):
                self._finish_one(outcome)
        self._settle_pending()

    def _settle_pending(self) -> None:
        while self._unsettled:
            self._unsettled[0]()  # REDIS_DOWN: the rest waits for the next turn
            self._unsettled.pop(0)

    def _is_plain_success(self, outcome: Outcome) -> bool:
        job = outcome.running.job
        return not (
            isinstance(outcome.value, Retry)
            or job._success_callback_name
            or job.webhooks
            or job.repeats_left
            or job.has_rate_limit
            or job.meta.get(meta.CALLBACK_URL)
            or job.get_result_ttl(self.default_result_ttl) == 0
        )

    def _finish_plain(self, outcomes: list[Outcome]) -> None:
        """`handle_job_success` for jobs without dependents, all of them in one MULTI/EXEC: RQ's
        bookkeeping (`workers.batch`), run times, `finished` status events, and the release of their
        claims (their outcome is recorded in the same transaction).

        WATCHing the jobs' dependents sets closes the race with a dependent being added
        meanwhile; if any job has dependents (or one is added), the per-job handler runs instead.
        """
        jobs = [o.running.job for o in outcomes]
        settings = get_settings()
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
                stamp = current_timestamp()
                for outcome in outcomes:
                    job, execution = outcome.running.job, outcome.running.execution
                    result_ttl = job.get_result_ttl(self.default_result_ttl)
                    runs.record_success(
                        pipe,
                        job,
                        execution,
                        outcome.value,
                        result_ttl,
                        self.name,
                        stamp,
                        recorded=outcome.running.record_sent,
                    )
                    events.add_status(pipe, job, JobStatus.FINISHED.value, settings)
                runtimes.record_many(pipe, run_times(jobs))
                Claims.release_in(pipe, [job.id for job in jobs], self.name)
                pipe.execute()
        except redis.WatchError:
            for outcome in outcomes:
                self._finish_one(outcome)
            return
        except REDIS_DOWN as exc:
            self.recovery.note_redis_error()
            self.log.error("Worker %s: could not record %d finished jobs (%s)", self.name, len(jobs), exc)
            for job in jobs:
                self._unsettled.append(functools.partial(self.recovery.settle, job, LOST_OUTCOME_REASON))
            return
        for job in jobs:
            job_log.info("job finished", extra=finished_fields(job))

    def _finish_one(self, outcome: Outcome) -> None:
        """RQ's per-job handlers (through ServiceWorker's: announce, stop, dependents, logs), then settle."""
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
        except REDIS_DOWN as exc:
            self.recovery.note_redis_error()
            self.log.error("Worker %s: could not record the outcome of job %s (%s)", self.name, job.id, exc)
        except Exception:
            self.log.exception("Worker %s: could not record the outcome of job %s", self.name, job.id)
        self._unsettled.append(functools.partial(self.recovery.settle, job, LOST_OUTCOME_REASON))

    # -- heartbeats ---------------------------------------------------------------------

    def _heartbeat_running(self) -> None:
        """RQ's `maintain_heartbeats` for the worker and every running execution, and a check that every
        running job is still claimed by this worker, in one round trip, with the executions not written
        yet (a heartbeat extends them; `_finish` deletes those of jobs found recovered elsewhere)."""
        fresh = self._unrecorded()
        ids = list(self.running)
        with self.connection.pipeline() as pipe:
            self._queue_records(pipe, fresh)
            self.heartbeat(max(self.worker_ttl, self.job_monitoring_interval) + 60, pipeline=pipe)
            moment = now()
            for running in self.running.values():
                job = running.job
                working = (moment - job.started_at).total_seconds() if job.started_at else 0.0
                ttl = max(60, int(self.get_heartbeat_ttl(job, working_time=working)))
                if running.record_sent:  # never one given up on before it was written
                    running.execution.heartbeat(job.started_job_registry, ttl, pipeline=pipe)
                job.heartbeat(moment, ttl, pipeline=pipe, xx=True)
            if ids:
                pipe.hmget(keys.CLAIMS, ids)
            replies = pipe.execute()
        for running in fresh:
            running.recorded = True
        if not ids:
            return
        for job_id, owner in zip(ids, replies[-1], strict=True):
            held = self.running.get(job_id)
            if held is not None and owner is not None and owner.decode() != self.name:
                self.log.error("Worker %s: job %s was recovered elsewhere; abandoning it here", self.name, job_id)
                self._cancel(held, "claim lost")

    # -- commands and signals -----------------------------------------------------------

    def handle_payload(self, message: dict[str, Any]) -> None:
        """`stop-job` / `stop-execution` for any running job (RQ's handler knows one job only)."""
        payload = parse_payload(message)
        if payload.get("command") in ("stop-job", "stop-execution") and self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop_job, payload.get("job_id"), payload.get("execution_id"))
            return
        super().handle_payload(message)

    def _stop_job(self, job_id: str | None, execution_id: str | None) -> None:
        running = self.running.get(job_id or "")
        if running is None and execution_id:
            running = next((r for r in self.running.values() if r.execution.id == execution_id), None)
        if running is None:
            self.log.warning("Worker %s: not running job %s, stop command ignored", self.name, job_id)
            return
        grace = get_settings().job_stop_grace
        if grace <= 0 or self._loop is None:
            self._cancel(running, "stop")
            return
        # JOB_STOP_GRACE: a job that checks `cancel_requested()` may stop itself first (recorded stopped too).
        self._loop.call_later(grace, self._stop_if_running, running)

    def _stop_if_running(self, running: Running) -> None:
        if self.running.get(running.job.id) is running:
            self.log.info("Worker %s: job %s did not stop within its grace; stopping it", self.name, running.job.id)
            self._cancel(running, "stop")

    def handle_warm_shutdown_request(self) -> None:
        if self.concurrency <= 1:
            super().handle_warm_shutdown_request()
            return
        self.log.info(
            "Worker %s: warm shutdown; running jobs may finish within %ss, else they are requeued",
            self.name,
            self.shutdown_grace,
        )

    def _shutdown(self) -> None:
        """Warm shutdown: take no more jobs; running ones get `WORKER_SHUTDOWN_GRACE` seconds, then are
        requeued at the front of their queues without spending a retry."""
        if self.concurrency <= 1:
            super()._shutdown()
            return
        self._stop_requested = True
        self._shutdown_deadline = time.monotonic() + self.shutdown_grace
        if self.scheduler:
            self.stop_scheduler()  # type: ignore[no-untyped-call]
        self._nudge()

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        if self.concurrency <= 1:
            super().request_force_stop(signum, frame)
            return
        requested = self._shutdown_requested_date
        if requested is not None and (now() - requested).total_seconds() < 1:
            return  # the same shutdown delivered twice (process group and process)
        self.log.warning("Worker %s: cold shutdown, requeueing the running jobs now", self.name)
        self._stop_requested = True
        self._forced_stop = True
        self._shutdown_deadline = time.monotonic()
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
