"""Job control shared by web and workers: stop requests, and canceling jobs that still wait.

Stopping a running job: the web sets a flag (`core.keys.stop_requested`) and sends RQ's
`stop-job` command. A job may notice the flag between steps (`cancel_requested()`) and raise
`StopRequested`; otherwise the worker kills it once `JOB_STOP_GRACE` has passed. Either
way RQ records it `stopped` and never retries it.

Canceling a waiting job (`queued`, `scheduled`, `deferred`) is one Lua script, so it cannot
race a worker or the scheduler taking the job: the job is canceled only if it is still in
the list or registry its status names. A canceled, failed or stopped parent cancels the
jobs that wait on it (`cancel_dependents`), so nothing stays deferred for ever.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import get_current_job
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import CanceledJobRegistry, DeferredJobRegistry, ScheduledJobRegistry
from rq.utils import as_text, utcformat

from core import events, keys
from core.queues import SERIALIZER

#: How often a running job's `cancel_requested()` asks Redis at most (s); in between it answers from memory.
STOP_CHECK_INTERVAL = 0.25

#: Statuses of jobs that have not started yet and can be canceled at once.
WAITING = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED)

#: KEYS: job hash, where it waits (queue list or registry), canceled registry, dependents, dependencies.
#: ARGV: job id, expected status, "list" | "zset", registry score, ttl, ended_at.
#: Returns 1 when canceled, 0 when the job is no longer where its status says (taken meanwhile).
CANCEL_WAITING = """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[2] then return 0 end
local removed
if ARGV[3] == 'list' then
  removed = redis.call('LREM', KEYS[2], 0, ARGV[1])
else
  removed = redis.call('ZREM', KEYS[2], ARGV[1])
end
if removed == 0 then return 0 end
redis.call('HSET', KEYS[1], 'status', 'canceled', 'ended_at', ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
for _, key in ipairs({KEYS[1], KEYS[4], KEYS[5]}) do redis.call('EXPIRE', key, ARGV[5]) end
return 1
"""


class StopRequested(Exception):
    """Raised by a job that noticed `cancel_requested()`: the worker records it `stopped`, never retried."""

    def __init__(self, message: str = "stopped by request") -> None:
        super().__init__(message)


#: The running job's last answer: job id -> (monotonic time asked, stop requested).
_checks: dict[str, tuple[float, bool]] = {}


def cancel_requested() -> bool:
    """True once someone asked to stop the running job (DELETE /jobs/{id}); False outside a worker.

    Cheap enough to call between steps: it asks Redis at most every STOP_CHECK_INTERVAL seconds.
    """
    job = get_current_job()
    if job is None:
        return False
    cached = _checks.get(job.id)
    now = time.monotonic()
    if cached is not None and (cached[1] or now - cached[0] < STOP_CHECK_INTERVAL):
        return cached[1]
    requested = stop_requested(job.connection, job.id)
    _checks.clear()  # one job per work horse: keep only the current one
    _checks[job.id] = (now, requested)
    return requested


def stop_requested(connection: Redis, job_id: str) -> bool:
    return bool(connection.exists(keys.stop_requested(job_id)))


def waiting_place(origin: str, status: str) -> tuple[str, str]:
    """Where a waiting job's id sits: (key, "list" | "zset")."""
    if status == JobStatus.QUEUED:
        return Queue.redis_queue_namespace_prefix + origin, "list"
    if status == JobStatus.SCHEDULED:
        return ScheduledJobRegistry.key_template.format(origin), "zset"
    if status == JobStatus.DEFERRED:
        return DeferredJobRegistry.key_template.format(origin), "zset"
    raise ValueError(f"a {status} job is not waiting")


def cancel_call(job_id: str, origin: str, status: str, ttl: int) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV for CANCEL_WAITING; the canceled job and its record expire after `ttl` seconds."""
    place, kind = waiting_place(origin, status)
    job_key = Job.key_for(job_id)
    now = datetime.now(UTC)
    return (
        [
            job_key,
            place,
            CanceledJobRegistry.key_template.format(origin),
            f"{job_key}:dependents",
            f"{job_key}:dependencies",
        ],
        [job_id, status, kind, int(now.timestamp()) + ttl, ttl, utcformat(now)],
    )


def cancel_dependents(connection: Redis, job_id: str, ttl: int) -> list[str]:
    """Cancel every job still deferred on `job_id`, and the jobs deferred on those; returns their ids."""
    script = connection.register_script(CANCEL_WAITING)
    canceled: list[str] = []
    parents = [job_id]
    seen: set[str] = set()
    while parents:
        parent = parents.pop()
        for raw in sorted(connection.smembers(Job.dependents_key_for(parent))):
            child = as_text(raw)
            if child in seen:
                continue
            seen.add(child)
            origin, status = connection.hmget(Job.key_for(child), ["origin", "status"])
            if origin is None or status is None or as_text(status) != JobStatus.DEFERRED:
                continue
            call_keys, call_args = cancel_call(child, as_text(origin), JobStatus.DEFERRED, ttl)
            if script(keys=call_keys, args=call_args) == 1:
                canceled.append(child)
                parents.append(child)
    announce_canceled(connection, canceled)
    return canceled


def announce_canceled(connection: Redis, job_ids: list[str]) -> None:
    """Publish the final `canceled` status of these jobs, so their live streams end (core.events)."""
    if not job_ids:
        return
    with connection.pipeline(transaction=True) as pipe:
        for job in Job.fetch_many(job_ids, connection=connection, serializer=SERIALIZER):
            if job is not None:
                events.add_status(pipe, job, JobStatus.CANCELED)
        pipe.execute()
