"""The writes that put a job on RQ's queues, as commands for one atomic script run or transaction.

- `enqueue_writes`: what RQ's `Queue.enqueue_job` (or `schedule_job`) writes for a new job, as a
  command list. A plain job (no dependencies, TTL or rate limit) takes `queued_job_writes`, the same
  writes made without RQ's recording pipeline (~10 us less per submission); a job with dependencies
  is recorded by RQ itself, which reads its parents' statuses (blocking) to choose queued or deferred.
- `requeue_writes`: RQ's requeue of a failed job (`FailedJobRegistry.requeue`), kept for good.

Both add the fair index's writes for a job they push onto a queue list (`core.rqadapter.flow_index`);
`queued_job_writes` alone is RQ's writes, exactly.

tests/unit/test_scripts.py holds `queued_job_writes` to RQ's own writes, key by key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.utils import now

from core.rqadapter.flow_index import index_writes, pushes_of

Command = tuple[Any, ...]


def is_plain(job: Job) -> bool:
    """True for a job RQ would enqueue without reading anything: no dependencies, TTL or rate limit."""
    return not job._dependency_ids and job.ttl is None and not job.has_rate_limit


def queued_job_writes(queue: Queue, job: Job) -> list[Command]:
    """The writes of RQ's `Queue.enqueue_job` for a plain job (`is_plain`), made without its recording
    pipeline; the job object is updated as RQ updates it."""
    job.origin = queue.name
    job.enqueued_at = now()
    if job.timeout is None:
        job.timeout = queue._default_timeout
    job._status = JobStatus.QUEUED
    fields = [part for pair in job.to_dict().items() for part in pair]
    return [("SADD", queue.redis_queues_keys, queue.key), ("HSET", job.key, *fields), ("RPUSH", queue.key, job.id)]


def enqueue_writes(connection: Redis, queue: Queue, job: Job, at: datetime | None = None) -> list[Command]:
    """What RQ writes to enqueue `job` (or schedule it for `at`), recorded, not executed. Blocking only for
    a job with dependencies (RQ reads the parents on `connection`); for those, guard the writes with the
    parents' statuses as read before this call (`core.rqadapter.scripts.submit_args`)."""
    if at is None and is_plain(job):
        return [*queued_job_writes(queue, job), *index_writes(queue.key, job)]
    with connection.pipeline(transaction=True) as recorder:  # leaving it UNWATCHes and frees its connection
        if at is None:
            queue.enqueue_job(job, pipeline=recorder)
        else:
            queue.schedule_job(job, at, pipeline=recorder)
        return _indexed([args for args, _options in recorder.command_stack], queue, job)


def _indexed(commands: list[Command], queue: Queue, job: Job) -> list[Command]:
    """`commands`, and the fair index's writes when they push `job` onto `queue`."""
    pushed = pushes_of(commands, queue.key, job.id)
    return commands if pushed is None else [*commands, *index_writes(queue.key, job, front=pushed == "LPUSH")]


def requeue_writes(connection: Redis, queue: Queue, job: Job, retries: int | None) -> list[Command]:
    """RQ's requeue of a failed or stopped `job` with `retries` left, recorded, not executed: out of the
    failed registry, back on its queue, its keys no longer set to expire (they were when it failed)."""
    recorder = connection.pipeline(transaction=True)
    recorder.zrem(queue.failed_job_registry.key, job.id)
    job.started_at = None
    job.ended_at = None
    job._exc_info = ""
    job.retries_left = retries
    queue._enqueue_job(job, pipeline=recorder)
    for owned in (job.key, job.dependents_key, job.dependencies_key):
        recorder.persist(owned)
    commands = [args for args, _options in recorder.command_stack]
    recorder.reset()
    return _indexed(commands, queue, job)
