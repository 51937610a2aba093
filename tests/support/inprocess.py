"""Run queued jobs in the test process, through the same worker hooks as the real workers."""

from __future__ import annotations

from redis import Redis
from rq import SimpleWorker

from core.queues import SERIALIZER, all_queues
from workers.job import RegisteredJob
from workers.observe import ObservedWorker


class ObservedSimpleWorker(ObservedWorker, SimpleWorker):
    """RQ's in-process worker with the service's logging and run-time recording."""


def run_jobs(connection: Redis) -> None:
    """Run every queued job (high, default, low) to its end, then return."""
    worker = ObservedSimpleWorker(
        all_queues(connection), connection=connection, serializer=SERIALIZER, job_class=RegisteredJob
    )
    worker.work(burst=True)
