"""`ReliableWorkerMixin`: the parts of a forking RQ worker that must survive deaths and outages.

Mixed in before a forking RQ worker class (`Worker`, `HerokuWorker`), it replaces:

- dequeue: `workers.dequeue.Claims` (atomic claim across the priority queues) instead of
  BLPOP, with liveness beats and abandoned-job sweeps (`workers.recovery`) while idle;
- horse supervision: waits on the horse with a pidfd instead of SIGALRM slices; beats and
  sweeps every `ABANDONED_JOB_TIMEOUT / 6` s; kills a horse `HARD_KILL_GRACE` s after its
  job's timeout (a job that ignores SIGALRM) and still reports a timeout; names the signal
  that killed a horse; kills the horse if its claim was taken over (this worker was presumed
  dead), so a job never runs on two workers for longer than one beat;
- warm shutdown (SIGTERM): the running job may finish within `WORKER_SHUTDOWN_GRACE`, else
  it is killed and requeued at the front of its queue without spending a retry; the worker
  then exits with code 0. A second SIGTERM/SIGINT requeues at once;
- Redis outages: every Redis call of the work loop waits for Redis instead of quitting
  (RQ's loop quits on `redis.TimeoutError` and on any unexpected error);
- children (horse, scheduler) die with the worker (`workers.lifeline`); `JOB_MAX_MEMORY` caps
  the horse; start-up warns about a Redis without persistence (`core.durability`).
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from rq import worker_registration
from rq.exceptions import DeserializationError, InvalidJobOperation, NoSuchJobError, StopRequested
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import DeferredJobRegistry, FailedJobRegistry, FinishedJobRegistry, ReadyJobRegistry
from rq.utils import now
from rq.worker import WorkerStatus

from core import durability, keys
from core.connection import REDIS_DOWN
from core.meta import ATTEMPT
from core.settings import get_settings
from jobs.progress import append_message
from workers import lifeline
from workers.dequeue import POLL_MAX, POLL_MIN
from workers.recovery import Recovery, Timing

if TYPE_CHECKING:
    from rq.executions import Execution
    from rq.worker import Worker

    _Base = Worker
else:
    _Base = object

T = TypeVar("T")

#: Seconds past its timeout that a job ignoring SIGALRM may live before its horse is SIGKILLed.
HARD_KILL_GRACE = 5.0

#: Seconds between attempts to take the scheduler locks while another worker's scheduler holds them
#: (RQ's scheduler itself works in 1 s steps; each attempt costs a round trip per queue).
SCHEDULER_RETRY_INTERVAL = 1.0
#: A scheduler that keeps crashing (on a Redis that refuses its writes: full, say) is restarted after a
#: delay that doubles from `SCHEDULER_RETRY_INTERVAL` up to this, instead of once a second with a traceback.
SCHEDULER_RESTART_MAX = 60.0

SHUTDOWN_REASON = "the worker shut down before the job finished; requeued without spending a retry"
LOST_OUTCOME_REASON = "the worker lost Redis before the job's outcome was saved"


class ReliableWorkerMixin(_Base):
    recovery: Recovery
    shutdown_grace: float
    _shutdown_deadline: float | None

    def setup_reliability(self) -> None:
        """Call at the end of `__init__`."""
        settings = get_settings()
        timing = Timing(settings.abandoned_job_timeout)
        self.job_monitoring_interval = max(1, int(timing.beat_interval))
        self.shutdown_grace = settings.worker_shutdown_grace
        self._shutdown_deadline = None
        self._redis_backoff = 0.25
        self._next_scheduler_check = 0.0
        self._scheduler_delay = SCHEDULER_RETRY_INTERVAL
        self.recovery = Recovery(
            self.connection, self.name, timing, job_class=self.job_class, serializer=self.serializer
        )

    # -- start and stop -----------------------------------------------------------------

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        lifeline.install()
        for warning in durability.check(self.connection):
            self.log.warning("Worker %s: %s", self.name, warning)
        super().bootstrap(*args, **kwargs)
        self.recovery.beat(force=True)
        self.recovery.tick()

    def teardown(self) -> None:
        if not self.is_horse:
            try:
                returned = self.recovery.release_unstarted()
                if returned:
                    self.log.info("Worker %s: handed back unstarted jobs %s", self.name, returned)
                self.recovery.forget()
            except REDIS_DOWN as exc:
                self.log.error("Worker %s: Redis unreachable at shutdown (%s); recovery will follow", self.name, exc)
        try:
            super().teardown()  # type: ignore[no-untyped-call]
        except REDIS_DOWN as exc:
            self.log.error("Worker %s: could not register its death (%s)", self.name, exc)

    def handle_warm_shutdown_request(self) -> None:
        if self.horse_pid:
            self._shutdown_deadline = time.monotonic() + self.shutdown_grace
            self.log.info(
                "Worker %s: warm shutdown; the running job may finish within %ss, else it is requeued",
                self.name,
                self.shutdown_grace,
            )
        else:
            self.log.info("Worker %s: warm shutdown", self.name)

    def _shutdown(self) -> None:
        # RQ's version also writes to Redis inside the signal handler; a down Redis would raise there.
        if self.get_state() == WorkerStatus.BUSY:
            self._stop_requested = True
            if self.scheduler:
                self.stop_scheduler()  # type: ignore[no-untyped-call]
        else:
            raise StopRequested()

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        requested = self._shutdown_requested_date
        if requested is not None and (now() - requested).total_seconds() < 1:
            return  # the same shutdown delivered twice (process group and process)
        if self.horse_pid:
            self.log.warning("Worker %s: cold shutdown, requeueing the running job now", self.name)
            self._shutdown_deadline = time.monotonic()
            return
        raise SystemExit()

    # -- Redis outages ------------------------------------------------------------------

    def _until_redis(self, action: Callable[[], T], what: str) -> T:
        """Run `action`, waiting for Redis as long as it takes (the worker never quits over an outage)."""
        delay = 0.25
        while True:
            try:
                result = action()
                self._redis_backoff = 0.25
                return result
            except REDIS_DOWN as exc:
                self.recovery.note_redis_error()
                self.log.error(
                    "Worker %s: Redis unreachable while %s (%s); retrying in %.2fs", self.name, what, exc, delay
                )
                time.sleep(delay)
                delay = min(delay * 2, self.recovery.timing.beat_interval, 5.0)

    def check_for_suspension(self, burst: bool) -> None:
        self._until_redis(lambda: super(ReliableWorkerMixin, self).check_for_suspension(burst), "checking suspension")

    def run_maintenance_tasks(self) -> None:
        try:
            super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        except REDIS_DOWN as exc:
            self.recovery.note_redis_error()
            self.last_cleaned_at = now()  # type: ignore[assignment]  # next try after a maintenance interval
            self.log.error("Worker %s: maintenance skipped, Redis unavailable (%s)", self.name, exc)

    def clean_registries(self) -> None:
        """RQ's maintenance minus its StartedJobRegistry sweep: `workers.recovery` owns abandoned jobs
        (RQ's sweep would retry jobs that are still running after a long Redis outage)."""
        for queue in self.queues:
            if queue.acquire_maintenance_lock():
                for registry_class in (FinishedJobRegistry, FailedJobRegistry, DeferredJobRegistry, ReadyJobRegistry):
                    registry_class(queue=queue, job_class=self.job_class).cleanup()
                worker_registration.clean_worker_registry(queue)
                queue.release_maintenance_lock()
        self.last_cleaned_at = now()  # type: ignore[assignment]

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        try:
            super().heartbeat(timeout)
        except REDIS_DOWN as exc:
            self.recovery.note_redis_error()
            self.log.error("Worker %s: heartbeat failed, Redis unreachable (%s)", self.name, exc)

    def _pubsub_exception_handler(self, exc: Exception, pubsub: Any, pubsub_thread: Any) -> None:
        if isinstance(exc, REDIS_DOWN):
            self.log.error("Worker %s: pubsub lost Redis (%s); retrying in 2s", self.name, exc)
            time.sleep(2.0)
            return
        super()._pubsub_exception_handler(exc, pubsub, pubsub_thread)

    # -- dequeue ------------------------------------------------------------------------

    def _maintain(self) -> None:
        """While idle or supervising: liveness, abandoned-job sweep, a scheduler that died restarted
        (or the locks of another worker's scheduler taken over), at most every `SCHEDULER_RETRY_INTERVAL`."""
        self.recovery.tick()
        scheduler = self.scheduler
        moment = time.monotonic()
        if scheduler is not None and not self._stop_requested and moment >= self._next_scheduler_check:
            process = scheduler._process
            crashed = process is not None and not process.is_alive() and process.exitcode not in (0, None)
            delay = min(self._scheduler_delay * 2, SCHEDULER_RESTART_MAX) if crashed else SCHEDULER_RETRY_INTERVAL
            self._scheduler_delay = delay
            self._next_scheduler_check = moment + delay
            if process is None or not process.is_alive():
                try:
                    scheduler.acquire_locks(auto_start=True)
                except REDIS_DOWN:
                    self.recovery.note_redis_error()

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        try:
            self.set_state(WorkerStatus.IDLE)
        except REDIS_DOWN:
            self.recovery.note_redis_error()
        self.procline("Listening on " + ",".join(self.queue_names()))  # type: ignore[no-untyped-call]
        queue_keys = [queue.key for queue in self._ordered_queues]
        idle_since = time.monotonic()
        last_rq_heartbeat = time.monotonic()
        poll = POLL_MIN
        delay = 0.25
        while True:
            try:
                self._maintain()
                if time.monotonic() - last_rq_heartbeat > self.recovery.timing.beat_interval:
                    super().heartbeat()
                    last_rq_heartbeat = time.monotonic()
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()
                claimed = self.recovery.claims.claim(queue_keys, self.name)
                delay = 0.25
                if claimed is not None:
                    result = self._load_claimed(*claimed)
                    if result is None:
                        continue
                    self._pause_after_dequeue()
                    self.heartbeat()
                    return result
                if timeout is None:
                    return None
                if max_idle_time is not None and time.monotonic() - idle_since >= max_idle_time:
                    return None
                time.sleep(poll)
                poll = min(POLL_MAX, poll * 2)
            except REDIS_DOWN as exc:
                self.recovery.note_redis_error()
                self.log.error("Worker %s: Redis unreachable (%s); retrying in %.2fs", self.name, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, self.recovery.timing.beat_interval, 5.0)

    def _load_claimed(self, queue_key: str, job_id: str) -> tuple[Job, Queue] | None:
        queue = self.queue_class.from_queue_key(
            queue_key,
            connection=self.connection,
            job_class=self.job_class,
            serializer=self.serializer,
            death_penalty_class=self.death_penalty_class,
        )
        try:
            job = self.job_class.fetch(job_id, connection=self.connection, serializer=self.serializer)
        except NoSuchJobError:
            self.connection.hdel(keys.CLAIMS, job_id)
            return None
        except DeserializationError as exc:
            self._reject_unreadable(job_id, queue, exc)
            return None
        job.redis_server_version = self.get_redis_server_version()  # type: ignore[no-untyped-call]
        self.reorder_queues(reference_queue=queue)
        self.log.info("Worker %s: %s: %s", self.name, queue.name, job.id)
        return job, queue

    def _reject_unreadable(self, job_id: str, queue: Queue, exc: Exception) -> None:
        """A job whose data cannot be read would crash every worker that takes it: fail it once."""
        self.log.error("Worker %s: job %s is unreadable (%s); failing it", self.name, job_id, exc)
        failed = FailedJobRegistry(queue=queue)
        with self.connection.pipeline() as pipe:
            pipe.hset(Job.key_for(job_id), mapping={"status": JobStatus.FAILED.value, "exc_info": f"{exc!r}"})
            pipe.zadd(failed.key, {job_id: time.time() + 7 * 86400})
            pipe.hdel(keys.CLAIMS, job_id)
            pipe.execute()

    def _pause_after_dequeue(self) -> None:
        """TEST HOOK (`WORKER_TEST_PAUSE_AFTER_DEQUEUE`): widen the window between claim and start."""
        pause = get_settings().worker_test_pause_after_dequeue
        if pause:
            self.log.warning("Worker %s: test hook: pausing %ss between dequeue and start", self.name, pause)
            deadline = time.monotonic() + pause
            while time.monotonic() < deadline:
                self.recovery.tick()
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    # -- running a job ------------------------------------------------------------------

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self._until_redis(lambda: self.prepare_execution(job), "preparing the job")
        self.fork_work_horse(job, queue)
        self.monitor_work_horse(job, queue, execution)
        self._until_redis(lambda: self.recovery.settle(job, LOST_OUTCOME_REASON), "settling the job")
        self._until_redis(lambda: self.set_state(WorkerStatus.IDLE), "going idle")

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        limit = get_settings().job_max_memory
        if limit:
            lifeline.limit_memory(limit)
        super().main_work_horse(job, queue)

    def monitor_work_horse(self, job: Job, queue: Queue, execution: Execution) -> None:
        job.started_at = now()
        timeout = int(job.timeout if job.timeout is not None else self.queue_class.DEFAULT_TIMEOUT)
        kill_at = time.monotonic() + timeout + HARD_KILL_GRACE if timeout and timeout > 0 else float("inf")
        killed_for: str | None = None
        pidfd = _pidfd(self.horse_pid)
        next_tick = time.monotonic() + self.recovery.timing.beat_interval
        try:
            while True:
                retpid, ret_val, rusage = _reap(self.horse_pid)
                if retpid:
                    break
                moment = time.monotonic()
                if killed_for is None:
                    deadline = self._shutdown_deadline
                    if deadline is not None and moment >= deadline:
                        killed_for = "shutdown"
                    elif moment >= kill_at:
                        killed_for = "timeout"
                    if killed_for:
                        self.log.warning("Worker %s: killing horse of job %s (%s)", self.name, job.id, killed_for)
                        self.kill_horse(signal.SIGKILL)
                if moment >= next_tick:
                    next_tick = moment + self.recovery.timing.beat_interval
                    if not self._supervision_tick(job, execution) and killed_for is None:
                        killed_for = "claim lost"
                        self.log.error(
                            "Worker %s: job %s was recovered elsewhere; killing its horse", self.name, job.id
                        )
                        self.kill_horse(signal.SIGKILL)
                wake = min(next_tick, kill_at, self._shutdown_deadline or float("inf"), moment + 1.0)
                _wait_for_exit(pidfd, max(0.0, wake - time.monotonic()))
        finally:
            if pidfd is not None:
                os.close(pidfd)
        self._horse_pid = 0
        self.executions.pop(execution.id, None)
        self.log.debug("Worker %s: horse of job %s ended: %s", self.name, job.id, ret_val)
        try:
            self._after_horse(job, queue, execution, killed_for, ret_val, timeout, retpid, rusage)
        except REDIS_DOWN as exc:  # `settle` in execute_job recovers the job once Redis is back
            self.recovery.note_redis_error()
            self.log.error("Worker %s: could not record the end of job %s (%s)", self.name, job.id, exc)

    def _supervision_tick(self, job: Job, execution: Execution) -> bool:
        """Heartbeats and sweeps while a horse runs; False when another worker now holds the job."""
        try:
            self.maintain_heartbeats(job, execution)
            self._maintain()
            return self.recovery.claims.owner(job.id) in (self.name, None)
        except REDIS_DOWN as exc:
            self.recovery.note_redis_error()
            self.log.error("Worker %s: Redis unreachable while job %s runs (%s)", self.name, job.id, exc)
            return True

    def _after_horse(
        self,
        job: Job,
        queue: Queue,
        execution: Execution,
        killed_for: str | None,
        ret_val: int | None,
        timeout: int,
        retpid: int | None,
        rusage: Any,
    ) -> None:
        if killed_for == "shutdown":
            self._until_redis(lambda: self.recovery.requeue_interrupted(job.id, SHUTDOWN_REASON), "requeueing")
            return
        if killed_for == "claim lost" or ret_val == os.EX_OK:
            return
        try:
            job_status = job.get_status()
        except InvalidJobOperation:
            return  # the job finished and expired already
        if self._stopped_job_id == job.id:
            self._handle_stopped_job(job, queue, execution)
            return
        if job_status in (JobStatus.FINISHED, JobStatus.FAILED):
            return
        job.ended_at = now()
        exc_string, message = horse_death(ret_val, timed_out=killed_for == "timeout", timeout=timeout)
        self.log.warning("Worker %s: job %s: %s", self.name, job.id, exc_string)
        job.get_meta(refresh=True)
        append_message(job.meta, f"attempt {int(job.meta.get(ATTEMPT, 0)) or 1} ended: {message}")
        job.save_meta()
        self.handle_work_horse_killed(job, retpid, ret_val, rusage)  # type: ignore[no-untyped-call]
        self.handle_job_failure(job, queue=queue, exc_string=exc_string, execution=execution)


def horse_death(ret_val: int | None, *, timed_out: bool, timeout: int) -> tuple[str, str]:
    """(exception line for RQ's failure record, short message) for a horse that did not end cleanly."""
    if timed_out:
        message = f"timed out after {timeout} s; the job ignored the timeout signal and its horse was killed"
        return f"JobTimeoutException: Task exceeded maximum timeout value ({timeout} seconds); {message}", message
    if ret_val is not None and os.WIFSIGNALED(ret_val):
        number = os.WTERMSIG(ret_val)
        name = signal.Signals(number).name if number in signal.valid_signals() else f"signal {number}"
        hint = " (out of memory, or killed from outside)" if number == signal.SIGKILL else ""
        message = f"work horse killed by {name} (signal {number}){hint}"
    else:
        code = os.WEXITSTATUS(ret_val) if ret_val is not None and os.WIFEXITED(ret_val) else ret_val
        message = f"work horse exited with code {code} before the job ended"
    return f"WorkHorseKilledError: {message}", message


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _wait_for_exit(pidfd: int | None, seconds: float) -> None:
    if pidfd is None:
        time.sleep(min(seconds, 0.05))
    elif seconds > 0:
        select.select([pidfd], [], [], seconds)


def _reap(pid: int) -> tuple[int | None, int | None, Any]:
    try:
        retpid, status, rusage = os.wait4(pid, os.WNOHANG)
    except ChildProcessError:
        return pid, None, None
    if retpid == 0:
        return None, None, None
    return retpid, status, rusage
