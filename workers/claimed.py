"""From claimed job ids to jobs to run: read in one round trip; an unreadable job is failed once."""

from __future__ import annotations

from collections.abc import Sequence

from rq import Queue
from rq.job import Job
from rq.job_lifecycle import record_job_failure
from rq.utils import now

from core.rqadapter import bookkeeping
from core.rqadapter.claims import Claims
from workers.base import ServiceBase
from workers.job import RegisteredJob


def load_claimed(worker: ServiceBase, claimed: Sequence[tuple[str, str]]) -> list[tuple[Job, Queue]]:
    """The jobs of `claimed` ((queue key, job id), as the claims script took them) with their queues.

    A job deleted while queued loses its claim; one whose data or meta is not JSON is failed
    (`fail_unreadable`); neither is returned."""
    by_key = {queue.key: queue for queue in worker.queues}
    hashes = bookkeeping.read_job_hashes(worker.connection, [job_id for _, job_id in claimed])
    batch: list[tuple[Job, Queue]] = []
    version = worker.get_redis_server_version()  # type: ignore[no-untyped-call]
    for (queue_key, job_id), data in zip(claimed, hashes, strict=True):
        if not data:  # deleted while queued: nothing to run
            worker.recovery.claims.drop(job_id)
            continue
        job = _unrestored(worker, job_id)
        try:
            job.restore(data)
            if isinstance(job, RegisteredJob):
                job.ensure_json()
        except Exception as exc:
            fail_unreadable(worker, job, exc)
            continue
        job.redis_server_version = version
        batch.append((job, by_key[queue_key]))
    if batch:
        worker.pause_after_dequeue()
    return batch


def _unrestored(worker: ServiceBase, job_id: str) -> Job:
    """A job of the worker's job class to `restore()` (the service's is `RegisteredJob`; RQ's tests run
    the workers with RQ's `Job` too)."""
    job_class: type[Job] = worker.job_class
    if issubclass(job_class, RegisteredJob):
        return job_class.unrestored(job_id, worker.connection, worker.serializer)
    return job_class(job_id, connection=worker.connection, serializer=worker.serializer)


def fail_unreadable(worker: ServiceBase, job: Job, exc: Exception) -> None:
    """A job that cannot be read would fail in every worker: fail it once (RQ's worker-less failure: the
    failed registry for the job's `failure_ttl`, a failure result), running nothing, and announce it."""
    worker.log.error("Worker %s: %s", worker.name, exc)
    job.ended_at = now()
    with worker.connection.pipeline() as pipe:
        record_job_failure(job, f"{type(exc).__name__}: {exc}", pipe)
        Claims.drop_in(pipe, job.id)
        pipe.execute()
    worker.announce(job)
