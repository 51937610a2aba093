"""`ServiceBase`: what the forking and the concurrent worker share, on top of RQ's Heroku worker.

- the service's conventions whatever the command line says: the JSON serializer, `RegisteredJob`,
  queues that announce the dependents they enqueue (`AnnouncingQueue`), a Redis client built from
  settings (bounded connect timeout, TLS options);
- status events and callbacks (`workers.announcing`), log lines and run times (`workers.observe`),
  stop flags and dependents of failed jobs (`workers.stopping`);
- liveness and abandoned-job recovery (`workers.recovery`), the scheduler kept going
  (`workers.scheduling`), Redis outages waited out (`workers.outages`), RQ's clean-up minus its
  started-registry sweep (`workers.cleanup`);
- children (horse, scheduler) die with the worker (`workers.lifeline`); start-up warns about a
  Redis without persistence (`core.durability`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rq import Queue
from rq.job import Job
from rq.worker import HerokuWorker

from core import durability
from core.connection import REDIS_DOWN, sync_redis
from core.queues import SERIALIZER
from core.rqadapter import worker_hooks
from core.rqadapter.pipelines import fast_client
from core.rqadapter.version import check_rq_version
from core.settings import get_settings
from workers import lifecycle, lifeline, stopping
from workers.announcing import AnnouncingWorker
from workers.cleanup import RegistryCleanupMixin
from workers.job import RegisteredJob
from workers.liveness import Timing
from workers.observe import ObservedWorker
from workers.outages import OutageTolerantMixin
from workers.periodic import PeriodicScheduler
from workers.recovery import Recovery
from workers.scheduling import SchedulerWatch, stop_scheduler_process

SHUTDOWN_REASON = "the worker shut down before the job finished; requeued without spending a retry"
LOST_OUTCOME_REASON = "the worker lost Redis before the job's outcome was saved"


class ServiceBase(OutageTolerantMixin, RegistryCleanupMixin, AnnouncingWorker, ObservedWorker, HerokuWorker):
    """Not a worker to run by itself: `workers.worker.ServiceWorker` and `workers.concurrent.ConcurrentWorker`."""

    def __init__(self, queues: Sequence[str | Queue] | str | Queue, *args: Any, **kwargs: Any) -> None:
        names = [queues] if isinstance(queues, str | Queue) else list(queues)
        queue_names = [q.name if isinstance(q, Queue) else q for q in names]
        kwargs.update(self.conventions())
        super().__init__(queue_names, *args, **kwargs)
        settings = get_settings()
        timing = Timing(settings.abandoned_job_timeout)
        self.job_monitoring_interval = max(1, int(timing.beat_interval))
        self.shutdown_grace = settings.worker_shutdown_grace
        #: `time.monotonic()` by which running jobs are interrupted and requeued (a stop signal came).
        self._shutdown_deadline: float | None = None
        self._scheduler_watch = SchedulerWatch()
        self.periodic = PeriodicScheduler(self.connection)
        #: Whether `work()` runs in burst mode: its scheduler (if any) made its one pass at the start.
        self.in_burst = False
        #: Whether a warm shutdown request is written to the worker's hash (`shutdown_requested_date`).
        self._shutdown_request_saved = False
        self.recovery = Recovery(
            self.connection, self.name, timing, job_class=self.job_class, serializer=self.serializer
        )

    def conventions(self) -> dict[str, Any]:
        """The worker's arguments the service fixes whatever the command line says: its Redis client (built
        from settings, its pipelines `core.rqadapter.pipelines`' faster ones), `RegisteredJob`, `AnnouncingQueue`,
        the JSON serializer."""
        return {
            "connection": fast_client(sync_redis(get_settings())),
            "job_class": RegisteredJob,
            "queue_class": lifecycle.AnnouncingQueue,
            "serializer": SERIALIZER,
        }

    # -- start and stop -----------------------------------------------------------------

    def work(self, burst: bool = False, *args: Any, **kwargs: Any) -> bool:
        self.in_burst = burst
        return bool(super().work(burst, *args, **kwargs))

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        check_rq_version(get_settings())
        lifeline.install()
        for warning in durability.check(self.connection):
            self.log.warning("Worker %s: %s", self.name, warning)
        super().bootstrap(*args, **kwargs)
        self.recovery.beat(force=True)
        self.recovery.enlist()
        self.recovery.tick()

    def stop_scheduler(self) -> None:
        """RQ's, bounded: a scheduler process that ignores SIGTERM is killed (`workers.scheduling`)."""
        stop_scheduler_process(self.scheduler)

    def teardown(self) -> None:
        if not self.is_horse:
            self.save_shutdown_request()
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

    # -- besides running jobs -------------------------------------------------------------

    def _maintain(self) -> None:
        """While idle or supervising: liveness, abandoned-job sweep, a scheduler that died restarted
        (or the locks of another worker's scheduler taken over), at most every `SCHEDULER_RETRY_INTERVAL`."""
        self.recovery.tick()
        self.periodic.maybe_tick()
        self.save_shutdown_request()
        scheduler = self.scheduler
        if (
            scheduler is None
            or self.in_burst  # RQ's burst: one scheduler pass at the start, no scheduler process
            or worker_hooks.stop_requested(self)
            or not self._scheduler_watch.needs_start(scheduler)
        ):
            return
        try:
            scheduler.acquire_locks(auto_start=True)
        except REDIS_DOWN:
            self.recovery.note_redis_error()

    def save_shutdown_request(self) -> None:
        """Once a warm shutdown lets running work finish: its date in the worker's hash, as RQ writes it
        (`shutdown_requested_date`), written here rather than in the signal handler, where a down Redis
        would raise."""
        if self._shutdown_request_saved or not worker_hooks.stop_requested(self):
            return
        if worker_hooks.shutdown_requested_at(self) is None:
            return
        try:
            self.set_shutdown_requested_date()  # type: ignore[no-untyped-call]
            self._shutdown_request_saved = True
        except REDIS_DOWN:
            self.recovery.note_redis_error()

    def pause_after_dequeue(self) -> None:
        """TEST HOOK (`WORKER_TEST_PAUSE_AFTER_DEQUEUE`): widen the window between claim and start."""
        pause = get_settings().worker_test_pause_after_dequeue
        if pause:
            self.log.warning("Worker %s: test hook: pausing %ss between dequeue and start", self.name, pause)
            deadline = time.monotonic() + pause
            while time.monotonic() < deadline:
                self.recovery.tick()
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    # -- job control --------------------------------------------------------------------

    def may_record_outcome(self, job: Job) -> bool:
        """Whether this worker still holds `job`'s claim: if another worker took the job over (this one was
        presumed dead), nothing of this run is recorded. A read just before the write: a takeover in the
        milliseconds between it and the write's EXEC is not seen (the concurrent worker's batch of plain
        successes has no such window, see `workers.outcomes`)."""
        if self.recovery.claims.holds(job.id, self.name):
            return True
        self.log.error("Worker %s: job %s was recovered elsewhere; its outcome is not recorded", self.name, job.id)
        return False

    def handle_job_failure(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        # In the parent (horse crashed or was stopped) `job.meta` is the copy from dequeue time;
        # re-read it so the retry's save keeps what the horse reported.
        if not self.is_horse:
            job.get_meta(refresh=True)
        stopping.note_stop_request(self, job)
        super().handle_job_failure(job, queue, *args, **kwargs)
        stopping.cancel_dependents_if_ended(self, job)
