"""The concurrent worker's dequeue and batched starts, and the deferred writing of RQ's executions.

Jobs are claimed by `Claims.claim_many` (one Lua step takes up to the free slots' worth of jobs,
`high` before `default` before `low`, each claim recorded). The jobs claimed together start in one
pipeline (status `started`, the attempt counted, the `started` event, the entry in RQ's started
registry). The rest of a job's RQ execution (its hash, its entries in the job's and the worker's
execution indexes) is written `EXECUTION_RECORD_DELAY` after it started, with those of the other
jobs then due, or with a heartbeat that comes first: a job that ends sooner (a CPU-trivial job) has
none, which spares Redis 8 of the ~25 commands of its run. Nothing but RQ's views of executions
reads them meanwhile: the claim guards the job, its status is `started` and it is in the started
registry from the start.
"""

from __future__ import annotations

import contextvars
import functools
import time
from typing import Any

from rq import Queue
from rq.job import Job
from rq.utils import current_timestamp
from rq.worker import DequeueStrategy, WorkerStatus

from core.connection import REDIS_DOWN
from core.rqadapter import bookkeeping, executions
from core.rqadapter.worker_hooks import bind_current_job, dequeue_strategy, ordered_queues
from workers.base import LOST_OUTCOME_REASON
from workers.claimed import load_claimed
from workers.observe import job_fields
from workers.observe import logger as job_log
from workers.runner import JobRunnerMixin
from workers.running import Running

#: Seconds a job runs before the rest of its RQ execution is written (the execution hash, the job's and
#: the worker's execution indexes; its started registry entry is written at the start): a job that ends
#: sooner ends without them (and without deleting them), 8 writes fewer.
EXECUTION_RECORD_DELAY = 0.1


class BatchStartMixin(JobRunnerMixin):
    def _dequeue(self, count: int) -> list[tuple[Job, Queue]]:
        """Up to `count` jobs, each claimed for this worker: in one step, highest-priority queue first, or,
        with `--dequeue-strategy round_robin` or `random`, one at a time, the queues reordered after each."""
        if dequeue_strategy(self) == DequeueStrategy.DEFAULT:
            claimed = self.recovery.claims.claim_many([q.key for q in ordered_queues(self)], self.name, count)
        else:
            claimed = self._claim_reordering(count)
        if not claimed:
            return []
        try:
            return load_claimed(self, claimed)
        except REDIS_DOWN:
            # Claimed, not started: hand them back (front of their queues, no retry spent) once Redis answers.
            for _, job_id in claimed:
                self._unsettled.append(functools.partial(self._hand_back, job_id))
            raise

    def _claim_reordering(self, count: int) -> list[tuple[str, str]]:
        """Up to `count` claims, one at a time, reordering the queues after each as RQ's worker does."""
        by_key = {queue.key: queue for queue in self.queues}
        claimed: list[tuple[str, str]] = []
        while len(claimed) < count:
            try:
                one = self.recovery.claims.claim([q.key for q in ordered_queues(self)], self.name)
            except REDIS_DOWN:
                if not claimed:
                    raise
                break  # start what is claimed; the next turn waits out the outage
            if one is None:
                break
            claimed.append(one)
            self.reorder_queues(reference_queue=by_key[one[0]])
        return claimed

    def _hand_back(self, job_id: str) -> object:
        return self.recovery.recover(job_id, self.name, "the worker lost Redis before starting it")

    def _start(self, batch: list[tuple[Job, Queue]]) -> None:
        """RQ's `prepare_job_execution` for every job of `batch`, in one round trip (the worker's own
        heartbeat is `_heartbeat_running`'s, on its schedule), each in RQ's started registry. The rest of
        their executions is written later, for those still running (`_record_executions`)."""
        started: list[Running] = []
        try:
            with self.connection.pipeline() as pipe:
                stamp = current_timestamp()
                for job, queue_ in batch:
                    execution = executions.new_execution(job, self.name)
                    executions.register_start(pipe, execution, self.get_heartbeat_ttl(job), stamp)
                    job.prepare_for_execution(self.name, pipeline=pipe)
                    bookkeeping.persist_while_running(pipe, job)
                    started.append(Running(job, queue_, execution))
                if self.get_state() != WorkerStatus.BUSY:
                    self.set_state(WorkerStatus.BUSY, pipeline=pipe)
                pipe.execute()
        except REDIS_DOWN:
            for job, _ in batch:  # started or not: `settle` finds out once Redis answers
                self._unsettled.append(functools.partial(self.recovery.settle, job, LOST_OUTCOME_REASON))
            raise
        self._launch(started)

    def _launch(self, started: list[Running]) -> None:
        """Run the jobs just started, each as a task on the loop."""
        assert self._loop is not None
        since = time.monotonic()
        for running in started:
            running.since = since
            self.executions[running.execution.id] = running.execution
            self.running[running.job.id] = running
            job_log.info("job started", extra=job_fields(running.job))
            context = contextvars.copy_context()
            context.run(bind_current_job, running.job)  # progress.report() finds its own job
            running.task = self._loop.create_task(self._run(running), context=context)
        self.log.debug("Worker %s: started %d jobs", self.name, len(started))

    # -- the rest of the executions -------------------------------------------------------

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
            executions.record_execution(pipe, running.execution, ttl, stamp)
            running.record_sent = True
        executions.expire_worker_executions(pipe, [running.execution for running in runnings], ttls)

    def _drop_execution(self, running: Running) -> None:
        """Delete this worker's execution of a job recovered elsewhere (it may have been written after the
        recovering worker looked for it)."""
        with self.connection.pipeline() as pipe:
            running.execution.delete(job=running.job, pipeline=pipe)
            pipe.execute()
