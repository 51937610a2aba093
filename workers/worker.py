"""The worker class started by `rq worker -w workers.worker.ServiceWorker`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rq import Queue
from rq.job import Job
from rq.worker import HerokuWorker

from jobs.connection import sync_redis
from jobs.queues import SERIALIZER
from jobs.settings import get_settings
from workers.job import RegisteredJob
from workers.reliable import ReliableWorkerMixin


class ServiceWorker(ReliableWorkerMixin, HerokuWorker):
    """RQ's Heroku worker (SIGTERM-safe horses) pinned to this service's conventions.

    Whatever the command line says, it uses the JSON serializer, `RegisteredJob` and a Redis
    client built from settings (bounded connect timeout, TLS options). `ReliableWorkerMixin`
    adds claim-based dequeue, abandoned-job recovery, horse supervision and graceful shutdown.
    """

    def __init__(self, queues: Sequence[str | Queue] | str | Queue, *args: Any, **kwargs: Any) -> None:
        names = [queues] if isinstance(queues, str | Queue) else list(queues)
        queue_names = [q.name if isinstance(q, Queue) else q for q in names]
        kwargs.update(connection=sync_redis(get_settings()), job_class=RegisteredJob, serializer=SERIALIZER)
        super().__init__(queue_names, *args, **kwargs)
        self.setup_reliability()

    def handle_job_failure(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        # In the parent (horse crashed or was stopped) `job.meta` is the copy from dequeue time;
        # re-read it so the retry's save keeps what the horse reported.
        if not self.is_horse:
            job.get_meta(refresh=True)
        super().handle_job_failure(job, queue, *args, **kwargs)
