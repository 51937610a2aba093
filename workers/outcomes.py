"""Recording what the concurrent worker's jobs did, and settling their claims.

Jobs that finish together are recorded in one MULTI/EXEC (`core.rqadapter.bookkeeping`), their
status events, run times and claim releases included. Whatever is not the plain case (a failure,
a returned `Retry`, dependents, callbacks, webhooks, repeats, rate limits, `result_ttl=0`) goes
through RQ's per-job handlers. An outcome Redis could not take is settled (the job retried) once
Redis is back; a job whose claim was taken over (this worker was presumed dead) has its outcome
discarded, as the forking worker kills its horse.

The claim is checked before anything is recorded: for the plain successes atomically (the batch's
claims are read right after the WATCH that also covers this worker's lost-claims counter, so a takeover
before the EXEC either is seen or fails the EXEC; `core.rqadapter.claims`), at no extra round trip;
for the per-job handlers by a read just before them (`ServiceBase.may_record_outcome`, again inside
RQ's finalizers), which leaves a window of the few milliseconds between that read and RQ's EXEC.
"""

from __future__ import annotations

import functools

import redis
from rq import Retry
from rq.callbacks import execute_stopped_callback
from rq.job import JobStatus
from rq.utils import current_timestamp

from core import events, meta, runtimes
from core.connection import REDIS_DOWN
from core.rqadapter import bookkeeping, worker_hooks
from core.rqadapter.claims import Claims
from core.settings import get_settings
from workers.base import LOST_OUTCOME_REASON, SHUTDOWN_REASON
from workers.observe import finished_fields, run_times
from workers.observe import logger as job_log
from workers.running import Running, RunOutcome
from workers.starts import BatchStartMixin

#: The failure recorded for a job the `kill-horse` command killed (RQ's reads "Work-horse terminated unexpectedly").
KILLED_REASON = "Work-horse terminated unexpectedly: the job was killed by the kill-horse command"


class OutcomeRecorderMixin(BatchStartMixin):
    def _finish(self, outcomes: list[RunOutcome]) -> None:
        """Record every outcome and settle its claim; what Redis could not take is settled later."""
        recorded = [outcome for outcome in outcomes if self._to_record(outcome)]
        plain = [o for o in recorded if self._is_plain_success(o)]
        if plain:
            self._finish_plain(plain)
        for outcome in recorded:
            if not self._is_plain_success(outcome):
                self._finish_one(outcome)
        self._settle_pending()

    def _to_record(self, outcome: RunOutcome) -> bool:
        """Whether `outcome` is to be recorded; if not, what replaces it is queued to settle."""
        running = outcome.running
        job, reason = running.job, running.cancelled_for
        self.executions.pop(running.execution.id, None)
        if reason == "claim lost":
            self._discard(running)
            return False
        if reason == "shutdown" and outcome.exc_info is not None:
            self._unsettled.append(functools.partial(self.recovery.requeue_interrupted, job.id, SHUTDOWN_REASON))
            return False
        return True

    def _discard(self, running: Running) -> None:
        """Record nothing for a job another worker took over (this worker was presumed dead)."""
        self.log.error("Worker %s: job %s was recovered elsewhere; its outcome is discarded", self.name, running.job.id)
        if running.record_sent:
            self._unsettled.append(functools.partial(self._drop_execution, running))

    def _settle_pending(self) -> None:
        while self._unsettled:
            self._unsettled[0]()  # REDIS_DOWN: the rest waits for the next turn
            self._unsettled.pop(0)

    def _is_plain_success(self, outcome: RunOutcome) -> bool:
        job = outcome.running.job
        return outcome.exc_info is None and not (
            isinstance(outcome.value, Retry)
            or bookkeeping.has_success_callback(job)
            or job.webhooks
            or job.repeats_left
            or job.has_rate_limit
            or job.meta.get(meta.CALLBACK_URL)
            or job.get_result_ttl(self.default_result_ttl) == 0
        )

    def _finish_plain(self, outcomes: list[RunOutcome]) -> None:
        """`handle_job_success` for jobs without dependents, all of them in one MULTI/EXEC: RQ's
        bookkeeping (`core.rqadapter.bookkeeping`), run times, `finished` status events, and the release of
        their claims (their outcome is recorded in the same transaction).

        WATCHing the jobs' dependents sets closes the race with a dependent being added
        meanwhile; if any job has dependents (or one is added), the per-job handler runs instead.
        WATCHing this worker's lost-claims counter too, and reading the batch's claims in the same round
        trip as the dependents, makes the batch atomic with its claims: jobs taken over before are left
        out (their outcomes discarded), a takeover after fails the EXEC (then each job's own check decides).
        """
        jobs = [o.running.job for o in outcomes]
        lost: set[str] = set()
        try:
            with self.connection.pipeline() as pipe:
                has_dependents, lost = bookkeeping.watch_dependents(pipe, jobs, self.name)
                if has_dependents and not lost:
                    raise redis.WatchError("a finished job has dependents")
                if not lost:
                    pipe.multi()
                    self._queue_successes(pipe, outcomes)
                    pipe.execute()
        except redis.WatchError:
            for outcome in outcomes:
                self._finish_one(outcome)
            return
        except REDIS_DOWN as exc:
            self.note_unrecorded(f"{len(jobs)} finished jobs", exc)
            for job in jobs:
                self._unsettled.append(functools.partial(self.recovery.settle, job, LOST_OUTCOME_REASON))
            return
        if lost:
            self._finish_held(outcomes, lost)
            return
        for job in jobs:
            job_log.info("job finished", extra=finished_fields(job))

    def _finish_held(self, outcomes: list[RunOutcome], lost: set[str]) -> None:
        """Discard the outcomes of the jobs in `lost` (taken over), record the others."""
        for outcome in outcomes:
            if outcome.running.job.id in lost:
                self._discard(outcome.running)
        held = [outcome for outcome in outcomes if outcome.running.job.id not in lost]
        if held:
            self._finish_plain(held)

    def _queue_successes(self, pipe: redis.client.Pipeline, outcomes: list[RunOutcome]) -> None:
        """Everything `_finish_plain` records, queued on its MULTI."""
        jobs = [o.running.job for o in outcomes]
        settings = get_settings()
        bookkeeping.count_successes(pipe, self.key, jobs)
        stamp = current_timestamp()
        for outcome in outcomes:
            job, execution = outcome.running.job, outcome.running.execution
            result_ttl = job.get_result_ttl(self.default_result_ttl)
            recorded = outcome.running.record_sent
            bookkeeping.record_success(
                pipe, job, execution, outcome.value, result_ttl, self.name, stamp, recorded=recorded
            )
            events.add_status(pipe, job, JobStatus.FINISHED.value, settings)
        runtimes.record_many(pipe, run_times(jobs))
        Claims.release_in(pipe, [job.id for job in jobs], self.name)

    def _finish_one(self, outcome: RunOutcome) -> None:
        """RQ's per-job handlers (through ServiceBase's: announce, stop, dependents, logs), then settle."""
        running = outcome.running
        job, queue_, execution = running.job, running.queue, running.execution
        try:
            if not self.may_record_outcome(job):
                self._discard(running)
                return
            if outcome.exc_info is None:
                worker_hooks.finalize_success(self, job, queue_, execution, outcome.value)
            elif outcome.stopped:
                self.log.warning("Worker %s: job %s stopped by request", self.name, job.id)
                try:
                    execute_stopped_callback(job, self.death_penalty_class)
                except Exception:
                    self.log.exception("Worker %s: stopped callback for job %s raised", self.name, job.id)
                worker_hooks.mark_stopped(self, job.id)
                self.handle_job_failure(job, queue_, exc_string="Job stopped by request.", execution=execution)
            elif outcome.killed:  # as RQ's worker records a horse `kill-horse` killed: no callback, no handlers
                self.log.warning("Worker %s: job %s killed by the kill-horse command", self.name, job.id)
                self.handle_work_horse_killed(job, None, None, None)  # type: ignore[no-untyped-call]
                self.handle_job_failure(job, queue_, exc_string=KILLED_REASON, execution=execution)
            else:
                worker_hooks.finalize_failure(self, job, queue_, execution, outcome.exc_info)
        except REDIS_DOWN as exc:
            self.note_unrecorded(f"the outcome of job {job.id}", exc)
        except Exception:
            self.log.exception("Worker %s: could not record the outcome of job %s", self.name, job.id)
        self._unsettled.append(functools.partial(self.recovery.settle, job, LOST_OUTCOME_REASON))
