"""The worker class started by `rq worker -w workers.worker.ServiceWorker`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rq import Queue
from rq.job import Job
from rq.worker import BaseWorker, HerokuWorker

from core import events
from core.connection import sync_redis
from core.queues import SERIALIZER
from core.settings import get_settings
from workers import lifecycle, stopping
from workers.job import RegisteredJob
from workers.observe import ObservedWorker
from workers.reliable import ReliableWorkerMixin


class AnnouncingWorker(BaseWorker):
    """Publishes every status change RQ saves in the worker (live events) and enqueues completion callbacks.

    A mixin for any RQ worker class: `class MyWorker(AnnouncingWorker, SimpleWorker)`.
    (`started` is announced by `RegisteredJob.prepare_for_execution`, in RQ's own round trip.)
    """

    def handle_job_success(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        super().handle_job_success(job, queue, *args, **kwargs)
        self.announce(job)

    def handle_job_failure(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        super().handle_job_failure(job, queue, *args, **kwargs)
        self.announce(job)

    def handle_job_retry(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        super().handle_job_retry(job, queue, *args, **kwargs)
        self.announce(job)

    def announce(self, job: Job) -> None:
        try:
            if events.status_value(job.get_status(refresh=False)) in events.FINAL_STATUSES:
                lifecycle.job_ended(job, self.connection)
            else:
                lifecycle.status_changed(job, self.connection)
        except Exception:  # the job's outcome is saved; a lost announcement must not change it
            self.log.exception("Worker %s: could not announce the status of job %s", self.name, job.id)


class ServiceWorker(ReliableWorkerMixin, AnnouncingWorker, ObservedWorker, HerokuWorker):
    """RQ's Heroku worker (SIGTERM-safe horses) pinned to this service's conventions.

    Whatever the command line says, it uses the JSON serializer, `RegisteredJob`, queues that
    announce the dependents they enqueue (`AnnouncingQueue`) and a Redis client built from settings
    (bounded connect timeout, TLS options). `ReliableWorkerMixin`
    adds claim-based dequeue, abandoned-job recovery, horse supervision and graceful shutdown.
    """

    def __init__(self, queues: Sequence[str | Queue] | str | Queue, *args: Any, **kwargs: Any) -> None:
        names = [queues] if isinstance(queues, str | Queue) else list(queues)
        queue_names = [q.name if isinstance(q, Queue) else q for q in names]
        kwargs.update(
            connection=sync_redis(get_settings()),
            job_class=RegisteredJob,
            queue_class=lifecycle.AnnouncingQueue,
            serializer=SERIALIZER,
        )
        super().__init__(queue_names, *args, **kwargs)
        self.setup_reliability()

    def handle_job_failure(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        # In the parent (horse crashed or was stopped) `job.meta` is the copy from dequeue time;
        # re-read it so the retry's save keeps what the horse reported.
        if not self.is_horse:
            job.get_meta(refresh=True)
        stopping.note_stop_request(self, job)
        super().handle_job_failure(job, queue, *args, **kwargs)
        stopping.cancel_dependents_if_ended(self, job)

    def handle_payload(self, message: dict[Any, Any]) -> None:
        stopping.handle_payload(self, message, super().handle_payload)
