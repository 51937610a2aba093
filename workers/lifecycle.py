"""Status changes seen from outside a job: announce them, and call back when a job ends.

The worker calls these after RQ has saved a change (`workers.worker.ServiceWorker`); so
can anything else that ends a job, such as recovering one whose worker died. Each call is
one round trip.
"""

from __future__ import annotations

import logging

import redis
from rq import Queue
from rq.job import Job

from core import events, meta
from core.settings import Settings, get_settings
from jobs.builtin import callbacks

logger = logging.getLogger(__name__)


def job_ended(job: Job, connection: redis.Redis, settings: Settings | None = None) -> None:
    """`job` reached finished, failed or stopped (saved): publish the final status, enqueue its callback."""
    settings = settings or get_settings()
    status = events.status_value(job.get_status(refresh=False))
    if status not in events.FINAL_STATUSES:
        raise ValueError(f"job {job.id} has not ended (status {status!r})")
    with connection.pipeline(transaction=True) as pipe:
        pipe.multi()  # explicit, as RQ's enqueue expects of a caller's pipeline
        events.add_status(pipe, job, status, settings)
        if status in callbacks.CALLBACK_STATUSES and job.meta.get(meta.CALLBACK_URL):
            callbacks.enqueue_delivery(job, status, connection, pipe, settings)
        pipe.execute()


def status_changed(job: Job, connection: redis.Redis, settings: Settings | None = None) -> None:
    """`job` moved to a status that is not final (queued or scheduled again for a retry): publish it."""
    status = job.get_status(refresh=False)
    if status is None:
        return
    with connection.pipeline(transaction=True) as pipe:
        events.add_status(pipe, job, events.status_value(status), settings)
        pipe.execute()


class AnnouncingQueue(Queue):
    """RQ's `Queue`, announcing the dependents it moves from `deferred` to `queued` once their
    parents finished (RQ does that inside the worker's success handling, with no hook of its own)."""

    def enqueue_ready_jobs_by_queue(self, job_ids_by_queue_name: dict[str, list[str]]) -> None:
        super().enqueue_ready_jobs_by_queue(job_ids_by_queue_name)
        job_ids = [job_id for ids in job_ids_by_queue_name.values() for job_id in ids]
        if not job_ids:
            return
        try:
            with self.connection.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    events.announce(pipe, job_id)
                pipe.execute()
        except redis.RedisError:  # the dependents are queued; a lost announcement must not change that
            logger.exception("could not announce the dependents %s, now queued", job_ids)
