"""The forking worker's supervision of its work horse (one forked process per job).

Instead of RQ's SIGALRM slices, the worker waits on the horse with a pidfd; beats and sweeps
every `ABANDONED_JOB_TIMEOUT / 6` s; kills a horse `HARD_KILL_GRACE` s after its job's timeout
(a job that ignores SIGALRM) and still reports a timeout; names the signal that killed a horse;
kills the horse if its claim was taken over (this worker was presumed dead), so a job never runs
on two workers for longer than one beat, and neither horse nor worker records an outcome for a job
whose claim is no longer theirs (`ServiceBase.may_record_outcome`, checked just before the write);
kills it when the shutdown grace is over, and requeues its job without spending a retry.
`JOB_MAX_MEMORY` caps the horse's memory.
"""

from __future__ import annotations

import os
import select
import signal
import time
from typing import Any

from rq.exceptions import InvalidJobOperation
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.utils import now
from rq.worker import WorkerStatus

from core.connection import REDIS_DOWN
from core.meta import ATTEMPT
from core.rqadapter import worker_hooks
from core.settings import get_settings
from jobs.progress import append_message
from workers import lifeline
from workers.base import LOST_OUTCOME_REASON, SHUTDOWN_REASON, ServiceBase

#: Seconds past its timeout that a job ignoring SIGALRM may live before its horse is SIGKILLed.
HARD_KILL_GRACE = 5.0


class HorseSupervisionMixin(ServiceBase):
    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.until_redis(lambda: self.prepare_execution(job), "preparing the job")
        self.fork_work_horse(job, queue)
        self.monitor_work_horse(job, queue, execution)
        self.until_redis(lambda: self.recovery.settle(job, LOST_OUTCOME_REASON), "settling the job")
        self.until_redis(lambda: self.set_state(WorkerStatus.IDLE), "going idle")

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
                killed_for = killed_for or self._kill_if_due(job, moment, kill_at)
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
        worker_hooks.horse_reaped(self)
        self.executions.pop(execution.id, None)
        self.log.debug("Worker %s: horse of job %s ended: %s", self.name, job.id, ret_val)
        try:
            self._after_horse(job, queue, execution, killed_for, ret_val, timeout, retpid, rusage)
        except REDIS_DOWN as exc:  # `settle` in execute_job recovers the job once Redis is back
            self.note_unrecorded(f"the end of job {job.id}", exc)

    def _kill_if_due(self, job: Job, moment: float, kill_at: float) -> str | None:
        """Kill the horse once the shutdown grace is over ("shutdown") or past its job's hard deadline
        ("timeout"); None while neither is due."""
        deadline = self._shutdown_deadline
        reason = "shutdown" if deadline is not None and moment >= deadline else "timeout" if moment >= kill_at else None
        if reason:
            self.log.warning("Worker %s: killing horse of job %s (%s)", self.name, job.id, reason)
            self.kill_horse(signal.SIGKILL)
        return reason

    def _supervision_tick(self, job: Job, execution: Execution) -> bool:
        """Heartbeats and sweeps while a horse runs; False when another worker now holds the job."""
        try:
            self.maintain_heartbeats(job, execution)
            self._maintain()
            return self.recovery.claims.owner(job.id) in (self.name, None)
        except REDIS_DOWN as exc:
            self.note_outage(f"job {job.id} runs", exc)
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
            self.until_redis(lambda: self.recovery.requeue_interrupted(job.id, SHUTDOWN_REASON), "requeueing")
            return
        if killed_for == "claim lost" or ret_val == os.EX_OK or not self.may_record_outcome(job):
            return
        try:
            job_status = job.get_status()
        except InvalidJobOperation:
            return  # the job finished and expired already
        if worker_hooks.stopped_job_id(self) == job.id:
            worker_hooks.handle_stopped_job(self, job, queue, execution)
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
