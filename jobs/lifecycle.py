"""Status changes seen from outside a job: announce them, and call back when a job ends.

The worker calls these after RQ has saved a change (`workers.worker.ServiceWorker`); so
can anything else that ends a job, such as recovering one whose worker died. Each call is
one round trip.
"""

from __future__ import annotations

import redis
from rq.job import Job

from jobs import callbacks, events
from jobs.settings import Settings, get_settings


def job_ended(job: Job, connection: redis.Redis, settings: Settings | None = None) -> None:
    """`job` reached finished, failed or stopped (saved): publish the final status, enqueue its callback."""
    settings = settings or get_settings()
    status = events.status_value(job.get_status(refresh=False))
    if status not in events.FINAL_STATUSES:
        raise ValueError(f"job {job.id} has not ended (status {status!r})")
    with connection.pipeline(transaction=True) as pipe:
        pipe.multi()  # explicit, as RQ's enqueue expects of a caller's pipeline
        events.add_status(pipe, job, status, settings)
        if status in callbacks.CALLBACK_STATUSES and job.meta.get(callbacks.CALLBACK_URL):
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
