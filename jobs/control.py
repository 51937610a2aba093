"""Job control shared by web and workers: stop requests, and canceling jobs that still wait.

Stopping a running job: the web sets a flag (`core.keys.stop_requested`) and sends RQ's
`stop-job` command. A job may notice the flag between steps (`cancel_requested()`) and raise
`StopRequested`; otherwise the worker kills it once `JOB_STOP_GRACE` has passed. Either
way RQ records it `stopped` and never retries it.

Canceling a waiting job (`queued`, `scheduled`, `deferred`) is one Lua script (`core.rqadapter.scripts`), so it cannot
race a worker or the scheduler taking the job: the job is canceled only if it is still in
the list or registry its status names. A canceled, failed or stopped parent cancels the
jobs that wait on it (`cancel_dependents`), so nothing stays deferred for ever.
"""

from __future__ import annotations

import time

from redis import Redis
from rq import get_current_job
from rq.job import Job, JobStatus
from rq.utils import as_text

from core import events, keys
from core.meta import ATTEMPT
from core.queues import SERIALIZER
from core.rqadapter.jobdata import origin_and_status
from core.rqadapter.scripts import CANCEL_WAITING, cancel_call

#: How often a running job's `cancel_requested()` asks Redis at most (s); in between it answers from memory.
STOP_CHECK_INTERVAL = 0.25

#: Statuses of jobs that have not started yet and can be canceled at once.
WAITING = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED)


class StopRequested(Exception):
    """Raised by a job that noticed `cancel_requested()`: the worker records it `stopped`, never retried."""

    def __init__(self, message: str = "stopped by request") -> None:
        super().__init__(message)


#: The last answer per run: (job id, attempt) -> (monotonic time asked, stop requested). A run, not a
#: job id: a job stopped and then retried by hand starts a new run that must ask afresh. Several jobs
#: share a process under the concurrent worker, so the answers of other runs are kept (up to a bound).
_checks: dict[tuple[str, int], tuple[float, bool]] = {}
_CHECKS_KEPT = 1024


def cancel_requested() -> bool:
    """True once someone asked to stop the running job (DELETE /jobs/{id}); False outside a worker.

    Cheap enough to call between steps: it asks Redis at most every STOP_CHECK_INTERVAL seconds.
    """
    job = get_current_job()
    if job is None:
        return False
    run = (job.id, int(job.meta.get(ATTEMPT, 0)))
    cached = _checks.get(run)
    now = time.monotonic()
    if cached is not None and (cached[1] or now - cached[0] < STOP_CHECK_INTERVAL):
        return cached[1]
    requested = stop_requested(job.connection, job.id)
    if len(_checks) >= _CHECKS_KEPT:
        _checks.clear()
    _checks[run] = (now, requested)
    return requested


def stop_requested(connection: Redis, job_id: str) -> bool:
    return bool(connection.exists(keys.stop_requested(job_id)))


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
            origin, status = origin_and_status(connection, child)
            if origin is None or status != JobStatus.DEFERRED:
                continue
            call_keys, call_args = cancel_call(child, origin, JobStatus.DEFERRED, ttl)
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
