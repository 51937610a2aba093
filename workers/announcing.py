"""Status events and completion callbacks for every status change a worker saves."""

from __future__ import annotations

from typing import Any

from rq import Queue
from rq.job import Job
from rq.worker import BaseWorker

from core import events
from workers import lifecycle


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
