"""Fast abandoned-job recovery: jobs held by a dead worker are retried or failed within a bound.

Every live worker refreshes its liveness key (`workers.liveness`), and every job it takes is claimed in
`jobsvc:claims` (see `core.rqadapter.claims`). About every `ABANDONED_JOB_TIMEOUT / 4` seconds
one worker (whoever holds `jobsvc:recovery:lock`) sweeps the claims: a claim whose owner
has no liveness key is taken over and settled:

- the job was `started` -> the attempt was lost: retried when retries are left (one retry
  spent, backoff as usual), else `failed` with "worker died while running the job"; either
  way a message records the lost attempt;
- the job was claimed but never started -> put back at the front of its queue (no retry spent);
- the job already ended, or is scheduled / queued again -> the stale claim is dropped.

Dropping a claim frees its flow-control slots in the same step; the sweep also frees slots left without a claim
and indexes queued jobs the fair index lacks (`Claims.reconcile`).

So a job whose worker died is handled at most `ABANDONED_JOB_TIMEOUT * 3/4` (plus one sweep)
after the death, by any live worker, including one that was just started.

Deaths are only declared when `Liveness.may_declare_deaths` allows (not just after an outage). The same
sweep forgets RQ's records (`rq:worker:<name>`, `rq:workers`, `rq:workers:<queue>`) of every dead worker:
the owners of the claims it settles, and the service's idle workers without a liveness key
(`Liveness.dead_enlisted`; RQ alone would list them until their record's TTL, minutes later).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.queue import Queue
from rq.rate_limit import release_slot
from rq.serializers import Serializer
from rq.utils import now

from core import keys
from core.connection import REDIS_DOWN
from core.meta import ATTEMPT
from core.queues import QUEUE_NAMES
from core.rqadapter import bookkeeping, executions
from core.rqadapter.claims import Claims
from core.rqadapter.flow_index import index_in
from core.settings import get_settings
from jobs.control import cancel_dependents
from jobs.progress import append_message
from workers import lifecycle
from workers.flow import worker_limits
from workers.liveness import Liveness, Timing

logger = logging.getLogger("workers.recovery")

#: The reason a job fails with when its worker died and no retries are left.
WORKER_DIED = "worker died while running the job"

#: What settling a claim did with its job.
Settlement = Literal["retried", "failed", "requeued", "released", "skipped", "gone"]


class AbandonedJobError(RuntimeError):
    """The worker running a job died (or lost Redis) before the job's outcome was recorded."""


def announce_abandoned_failure(job: Job) -> None:
    """A job this module moved to `failed` (its worker died, no retries left): like any other
    failure, its final status is published, its `callback_url` called and its dependents canceled."""
    logger.info("job %s failed: %s", job.id, WORKER_DIED)
    lifecycle.job_ended(job, job.connection)
    cancel_dependents(job.connection, job.id, job.failure_ttl or get_settings().failure_ttl)


class Recovery:
    """Liveness, sweeping and settling for one worker process (`worker_name`)."""

    def __init__(
        self,
        connection: Redis,
        worker_name: str,
        timing: Timing,
        *,
        job_class: type[Job] = Job,
        serializer: Serializer | None = None,
        on_failed: Callable[[Job], None] = announce_abandoned_failure,
    ) -> None:
        self.connection = connection
        self.worker_name = worker_name
        self.timing = timing
        self.job_class = job_class
        self.serializer = serializer
        self.on_failed = on_failed
        self.claims = Claims(connection, worker_limits())
        self.liveness = Liveness(connection, worker_name, timing)
        self._last_sweep = -float("inf")
        #: Jobs of dead workers whose claim this worker may hold while their recovery is not saved yet (Redis
        #: refused it after the takeover): this worker's next sweeps settle them, since no other sweeper will.
        self._stranded: set[str] = set()

    # -- liveness (`workers.liveness`) ----------------------------------------------------

    def beat(self, force: bool = False) -> None:
        self.liveness.beat(force)

    def forget(self) -> None:
        self.liveness.forget()

    def enlist(self) -> None:
        self.liveness.enlist()

    def note_redis_error(self) -> None:
        """Called by the worker whenever Redis could not be reached."""
        self.liveness.note_redis_error()

    def tick(self) -> None:
        """Beat and, when due, sweep. Never raises for Redis being unreachable."""
        try:
            self.beat()
            if time.monotonic() - self._last_sweep >= self.timing.sweep_interval:
                self._last_sweep = time.monotonic()
                self.sweep()
        except REDIS_DOWN as exc:
            self.note_redis_error()
            logger.warning("worker %s: Redis unreachable during recovery tick (%s)", self.worker_name, exc)

    # -- sweeping -----------------------------------------------------------------------

    def sweep(self) -> dict[str, Settlement]:
        """Settle every claim whose owner is dead; release scheduler locks of dead schedulers."""
        if not self.liveness.may_declare_deaths():
            return {}
        lock_ms = max(100, int(self.timing.sweep_interval * 1000) - 50)
        if not self.connection.set(keys.RECOVERY_LOCK, self.worker_name, nx=True, px=lock_ms):
            return {}
        claims = self.claims.all()
        owners = sorted(set(claims.values()) - {self.worker_name})
        dead = self.liveness.dead_among(owners)
        outcomes: dict[str, Settlement] = {}
        for job_id in sorted(self._stranded):
            if claims.get(job_id) == self.worker_name:
                outcomes[job_id] = self.recover(job_id, self.worker_name, WORKER_DIED)
            self._stranded.discard(job_id)
        for job_id, owner in claims.items():
            if owner in dead:
                self._stranded.add(job_id)
                outcomes[job_id] = self.recover(job_id, owner, WORKER_DIED)
                self._stranded.discard(job_id)
        for owner in dead | self.liveness.dead_enlisted():
            self._bury(owner)
        self._release_dead_scheduler_locks()
        self._reconcile_flow()
        if outcomes:
            logger.warning("worker %s: recovered abandoned jobs %s", self.worker_name, outcomes)
        return outcomes

    def _bury(self, worker_name: str) -> None:
        """Forget a dead worker in RQ's registries at once (else it counts as alive for minutes)."""
        bookkeeping.bury_worker(self.connection, worker_name)
        self.liveness.discharge(worker_name)

    def _reconcile_flow(self) -> None:
        """Free flow-control slots whose claim is gone (a Redis restored from an older snapshot) and index jobs
        pushed onto the queues by code that does not write the fair index (`Claims.reconcile`)."""
        freed = self.claims.reconcile([Queue.redis_queue_namespace_prefix + name for name in QUEUE_NAMES])
        if freed:
            logger.warning("released the flow-control slots of unclaimed jobs %s", freed)

    def _release_dead_scheduler_locks(self) -> None:
        """A SIGKILLed worker's scheduler holds its queue locks for a minute; free them sooner."""
        for lock in bookkeeping.release_stale_scheduler_locks(self.connection, QUEUE_NAMES, self.timing.liveness_ttl):
            logger.warning("released the scheduler lock %s: its scheduler is dead", lock)

    # -- settling one job ---------------------------------------------------------------

    def settle(self, job: Job, reason: str) -> Settlement:
        """This worker is done with `job`: release its claim, recovering it first if its outcome was lost."""
        queue_key = Queue(job.origin, connection=self.connection).key
        state = self.claims.settle(job.key, queue_key, job.id, self.worker_name)
        if state == 1:
            return "released"
        if state == 0:
            return "skipped"
        return self.recover(job.id, self.worker_name, reason)

    def requeue_interrupted(self, job_id: str, reason: str) -> Settlement:
        """Put this worker's running job back at the front of its queue, spending no retry."""
        return self.recover(job_id, self.worker_name, reason, interrupted=True)

    def release_unstarted(self) -> list[str]:
        """On the way out: hand back jobs this worker claimed but never started."""
        returned = []
        for job_id in self.claims.held_by(self.worker_name):
            if self.recover(job_id, self.worker_name, "the worker stopped before starting it") == "requeued":
                returned.append(job_id)
        return returned

    def recover(self, job_id: str, owner: str, reason: str, *, interrupted: bool = False) -> Settlement:
        """Settle a claim of `owner` (dead, or this worker): see the module docstring."""
        if not self.claims.take_over(job_id, owner, self.worker_name):
            # Settled first by someone else, or (this worker's own claim) taken over meanwhile because this
            # worker was presumed dead: the claim's new owner settles it.
            return "skipped"
        try:
            job = self.job_class.fetch(job_id, connection=self.connection, serializer=self.serializer)
        except NoSuchJobError:
            self.claims.drop(job_id)
            return "gone"
        queue = Queue(job.origin, connection=self.connection, job_class=self.job_class, serializer=self.serializer)
        status = job.get_status(refresh=False)
        outcome: Settlement = "released"
        with self.connection.pipeline() as pipe:
            if status == JobStatus.STARTED:
                executions.drop_abandoned(self.connection, job, pipe)
                if interrupted:
                    outcome = self._requeue(job, queue, pipe, f"attempt {_attempt(job)} interrupted: {reason}")
                else:
                    outcome = self._lose_attempt(job, queue, pipe, reason)
            elif status == JobStatus.QUEUED and not bookkeeping.is_in_queue(self.connection, queue, job_id):
                executions.drop_abandoned(
                    self.connection, job, pipe
                )  # the worker may have died between its execution and the start
                outcome = self._requeue(job, queue, pipe, f"requeued: {reason}")
            Claims.drop_in(pipe, job_id)
            pipe.execute()
        if outcome != "released":
            logger.warning("job %s (%s, held by %s): %s", job_id, reason, owner, outcome)
        if outcome in ("retried", "failed"):
            release_slot(job)
        if outcome == "failed":
            self._announce(self.on_failed, job)
        elif outcome in ("retried", "requeued", "released"):  # released: an end its dead worker may not have announced
            self._announce(lambda ended: lifecycle.status_changed(ended, self.connection), job)
        return outcome

    def _announce(self, announce: Callable[[Job], None], job: Job) -> None:
        try:
            announce(job)
        except Exception:  # the recovery is saved; a lost announcement must not undo it
            logger.exception("could not announce the recovery of job %s", job.id)

    def _lose_attempt(self, job: Job, queue: Queue, pipe: Any, reason: str) -> Settlement:
        attempt = _attempt(job)
        if job.retries_left:
            left = job.retries_left - 1
            append_message(job.meta, f"attempt {attempt} lost: {reason}; retrying ({left} retries left)")
            job.retry(queue, pipe)  # saves the job, meta included
            if job.get_status(refresh=False) == JobStatus.QUEUED:  # pushed at once (no retry interval)
                index_in(pipe, queue.key, job, front=bool(job.enqueue_at_front_on_retry))
            return "retried"
        append_message(job.meta, f"attempt {attempt} lost: {reason}; no retries left")
        job.ended_at = now()
        record_job_failure(job, f"{AbandonedJobError.__name__}: {reason}", pipe)
        job.save(pipeline=pipe)
        return "failed"

    def _requeue(self, job: Job, queue: Queue, pipe: Any, message: str) -> Settlement:
        append_message(job.meta, message)
        bookkeeping.requeue_at_front(queue, job, pipe)
        index_in(pipe, queue.key, job, front=True)
        return "requeued"


def _attempt(job: Job) -> int:
    return int(job.meta.get(ATTEMPT, 0)) or 1
