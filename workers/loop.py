"""The concurrent worker's work loop: one turn records what ended, keeps the worker alive and starts
what fits, then waits for a job to end, a signal, a job pushed (`workers.wake`), or the next thing due.

The worker's state flips to `idle` only when the work runs out, not between batches; its
heartbeat is the periodic one. Every step of the loop waits out a Redis outage; on the way out
(a stop signal) what Redis never took is left to the abandoned-job sweep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.suspension import is_suspended
from rq.worker import DequeueStrategy, WorkerStatus

from core.connection import REDIS_DOWN
from core.rqadapter import worker_hooks
from core.settings import get_settings
from workers.backoff import Backoff
from workers.commands import ConcurrentCommandsMixin
from workers.running import RunOutcome
from workers.wake import WakeThread

#: Seconds between dequeue attempts while every queue is empty (and slots are free); a push the service makes
#: wakes the worker sooner (`workers.wake`).
IDLE_POLL = 0.05

#: Seconds between checks whether the worker is suspended (`rq suspend`).
SUSPENSION_CHECK_INTERVAL = 1.0


@dataclass
class LoopState:
    """What the loop carries from one turn to the next."""

    outage: Backoff
    max_jobs: int | None = None
    #: Jobs started so far.
    started: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    next_heartbeat: float = field(default_factory=time.monotonic)
    next_suspension_check: float = field(default_factory=time.monotonic)
    suspended: bool = False


class WorkLoopMixin(ConcurrentCommandsMixin):
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
        self.in_burst = burst
        self.bootstrap(logging_level, date_format, log_format)
        worker_hooks.set_dequeue_strategy(self, dequeue_strategy)
        self.log.info("Worker %s: running up to %d jobs at once", self.name, self.concurrency)
        if get_settings().job_max_memory:
            self.log.warning(
                "Worker %s: JOB_MAX_MEMORY needs a work horse per job and is not applied at WORKER_CONCURRENCY=%d",
                self.name,
                self.concurrency,
            )
        if with_scheduler:
            self.until_redis(
                lambda: worker_hooks.start_scheduler(self, burst, logging_level, date_format, log_format),
                "starting the scheduler",
            )
        worker_hooks.install_signal_handlers(self)
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                return runner.run(self._serve(burst, max_jobs, max_idle_time))
        finally:
            self.teardown()

    async def _serve(self, burst: bool, max_jobs: int | None, max_idle_time: int | None) -> bool:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        state = LoopState(outage=self.redis_backoff(), max_jobs=max_jobs)
        waker = None if burst else WakeThread(self.connection, self._woken_by_a_push).start()
        try:
            while True:
                clock = time.monotonic()
                try:
                    popped, accepting = self._turn(clock, state, burst)
                    state.outage.reset()
                except REDIS_DOWN as exc:
                    if self._give_up_on_redis(clock, exc):
                        break
                    await self._wait_for_redis(clock, exc, state.outage.next())
                    continue
                if self._done_working(clock, state, popped, accepting, burst, max_idle_time):
                    break
                await self._pause(popped, accepting)
        finally:
            if waker is not None:
                waker.stop()
            for running in list(self.running.values()):
                if running.task is not None:
                    running.task.cancel()
        return state.started > 0

    def _woken_by_a_push(self) -> None:
        """From the wake-up thread: a job was pushed; look at once if a slot is free (a full worker claims
        when a job of its own ends, and would only turn for nothing)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and len(self.running) < self.concurrency:
            loop.call_soon_threadsafe(wake.set)

    def _turn(self, clock: float, state: LoopState, burst: bool) -> tuple[int, bool]:
        """Record what ended, keep the worker alive, start what fits: (jobs started, whether accepting)."""
        self._settle_pending()
        if self._done:
            self._finish(self._swap_done())
        self._record_executions(self._unrecorded(clock))
        self._maintain()
        if clock >= state.next_heartbeat:
            self._heartbeat_running()
            state.next_heartbeat = clock + self._heartbeat_interval()
        if self.should_run_maintenance_tasks:
            self.run_maintenance_tasks()
        if clock >= state.next_suspension_check:
            state.suspended = self._suspended(burst)
            state.next_suspension_check = clock + SUSPENSION_CHECK_INTERVAL
        self._interrupt_past_deadline(clock)
        return self._take_jobs(state)

    def _take_jobs(self, state: LoopState) -> tuple[int, bool]:
        """Claim and start as many jobs as there are free slots (and `max_jobs` allows)."""
        budget = self.concurrency - len(self.running)
        under_max = state.max_jobs is None or state.started < state.max_jobs
        if state.max_jobs is not None:
            budget = min(budget, state.max_jobs - state.started)
        accepting = not (worker_hooks.stop_requested(self) or state.suspended) and under_max
        popped = 0
        if accepting and budget > 0:
            batch = self._dequeue(budget)
            popped = len(batch)
            if batch:
                self._start(batch)
                state.started += popped
        # `idle` once started with nothing to do, or once the work ran out (not between batches)
        if not (self.running or popped) and self.get_state() in (WorkerStatus.STARTED, WorkerStatus.BUSY):
            self.set_state(WorkerStatus.IDLE)
        return popped, accepting

    def _give_up_on_redis(self, clock: float, exc: Exception) -> bool:
        """Redis failed this turn: interrupt jobs past the shutdown grace; True if stopping now anyway."""
        self.recovery.note_redis_error()
        self._interrupt_past_deadline(clock)
        unrecorded = len(self._done) + len(self._unsettled)
        if not (worker_hooks.stop_requested(self) and not self.running and (self._forced_stop or not unrecorded)):
            return False
        # What could not be recorded stays claimed by this worker: the abandoned-job sweep of
        # whichever worker next reaches Redis settles it (as after a crash).
        self.log.error(
            "Worker %s: stopping while Redis is unreachable (%s); %d unrecorded outcomes are left "
            "to the abandoned-job sweep",
            self.name,
            exc,
            unrecorded,
        )
        return True

    async def _wait_for_redis(self, clock: float, exc: Exception, delay: float) -> None:
        self.log.error("Worker %s: Redis unreachable (%s); retrying in %.2fs", self.name, exc, delay)
        deadline = self._shutdown_deadline
        if deadline is not None and self.running:  # interrupt the running jobs on time
            delay = min(delay, max(0.05, deadline - clock))
        await self._wait(delay, outcomes_wake=False)

    def _done_working(
        self, clock: float, state: LoopState, popped: int, accepting: bool, burst: bool, max_idle_time: int | None
    ) -> bool:
        """Whether the loop ends: nothing running or to record, and stopping (not merely suspended), in burst
        mode, or idle too long."""
        if self.running or self._done or self._unsettled or popped:
            state.idle_since = clock
            return False
        if burst or not (accepting or state.suspended):  # suspended: wait for `rq resume`
            return True
        if max_idle_time is not None and clock - state.idle_since >= max_idle_time:
            self.log.info("Worker %s: idle for %d seconds, quitting", self.name, max_idle_time)
            return True
        return False

    async def _pause(self, popped: int, accepting: bool) -> None:
        """Until the next turn is due: at once after taking jobs (while slots are free), else until woken."""
        if popped and len(self.running) < self.concurrency:
            await asyncio.sleep(0)  # let the new jobs start, then take more
            return
        timeout = IDLE_POLL if accepting and len(self.running) < self.concurrency else 1.0
        await self._wait(min(timeout, self._next_record_in(time.monotonic())))

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

    def _swap_done(self) -> list[RunOutcome]:
        done, self._done = self._done, []
        return done

    def _suspended(self, burst: bool) -> bool:
        if not is_suspended(self.connection, self):
            if self.get_state() == WorkerStatus.SUSPENDED:
                self.set_state(WorkerStatus.BUSY if self.running else WorkerStatus.IDLE)
            return False
        if burst:  # the loop ends with nothing running; a later `work()` of this worker may work again
            self.log.info("Worker %s: suspended in burst mode, exiting", self.name)
        elif self.get_state() != WorkerStatus.SUSPENDED:
            self.log.info("Worker %s: suspended, run `rq resume` to resume", self.name)
            self.set_state(WorkerStatus.SUSPENDED)
        return True


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return None
    return uvloop.new_event_loop
