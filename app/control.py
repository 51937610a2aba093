"""Cancel, stop and requeue jobs from the web process: Redis I/O on asyncio, races settled in Redis."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from redis.exceptions import WatchError
from rq.command import PUBSUB_CHANNEL_TEMPLATE
from rq.job import Job, JobStatus
from starlette.concurrency import run_in_threadpool

from app.errors import ConflictError, NotFoundError
from app.store import WATCH_ATTEMPTS, JobRecord, JobStore, contended
from app.views import ENDED
from core import events, keys
from core.rqadapter.enqueue import requeue_writes
from core.rqadapter.jobdata import is_stored
from core.rqadapter.scripts import CANCEL_WAITING, cancel_call
from jobs.control import WAITING, cancel_dependents

#: A job taken by a worker or the scheduler a moment ago is briefly in between states; look again.
_SETTLE_ATTEMPTS = 100
_SETTLE_PAUSE = 0.02


@dataclass(frozen=True)
class Canceled:
    record: JobRecord
    stopping: bool  # True: it was running and a stop was requested (202); False: canceled (200)


def _missing(job_id: str) -> NotFoundError:
    return NotFoundError(f"no job {job_id!r} (it never existed or has expired)")


async def cancel(store: JobStore, job_id: str, fetched: JobRecord | None = None) -> Canceled:
    """DELETE /jobs/{id}: cancel a waiting job (and the jobs deferred on it) or stop a running one.

    `fetched` is the job as the caller just read it (saves the first read)."""
    script = store.aio.register_script(CANCEL_WAITING)
    ttl = store.settings.failure_ttl
    for _ in range(_SETTLE_ATTEMPTS):
        record, fetched = fetched or await store.fetch(job_id), None
        if record is None:
            raise _missing(job_id)
        job = record.job
        status = job.get_status(refresh=False)
        if status in ENDED:
            raise ConflictError(f"job {job_id!r} has already ended ({status.value}); there is nothing to cancel")
        if status == JobStatus.STARTED:
            await request_stop(store, job)
            return Canceled(await store.fetch(job_id) or record, stopping=True)
        if status in WAITING:
            call_keys, call_args = cancel_call(job_id, job.origin, status, ttl)
            if await script(keys=call_keys, args=call_args) == 1:
                canceled = await store.fetch(job_id) or record
                # ends the job's live streams; a lone PUBLISH, no MULTI: a full Redis (maxmemory) still takes it
                async with store.aio.pipeline(transaction=False) as announce:
                    events.add_status(announce, canceled.job, JobStatus.CANCELED, store.settings)
                    await announce.execute()
                if await store.aio.scard(Job.dependents_key_for(job_id)):
                    await run_in_threadpool(cancel_dependents, store.sync, job_id, ttl)
                return Canceled(canceled, stopping=False)
        await asyncio.sleep(_SETTLE_PAUSE)  # taken by a worker or the scheduler just now: look again
    raise ConflictError(f"job {job_id!r} is changing state; try again")


async def request_stop(store: JobStore, job: Job) -> None:
    """Flag the job (jobs can check `cancel_requested()`) and send RQ's stop-job command to its worker."""
    grace = store.settings.job_stop_grace
    flag_ttl = int(max(job.timeout or 0, 0) + grace) + 60
    async with store.aio.pipeline(transaction=True) as pipe:
        pipe.set(keys.stop_requested(job.id), "1", ex=flag_ttl)
        if job.worker_name:
            payload = json.dumps({"command": "stop-job", "job_id": job.id})  # rq.command.send_command's format
            pipe.publish(PUBSUB_CHANNEL_TEMPLATE % job.worker_name, payload)
        await pipe.execute()


async def requeue(store: JobStore, job_id: str) -> JobRecord:
    """POST /jobs/{id}/retry: a failed or stopped job goes back on its queue with its retry budget restored."""
    key = Job.key_for(job_id)
    pipe: Any
    async with store.aio.pipeline(transaction=True) as pipe:
        for _ in range(WATCH_ATTEMPTS):
            try:
                await pipe.watch(key)
                raw = await pipe.hgetall(key)
                if not is_stored(raw):
                    raise _missing(job_id)
                job = store.restore(job_id, raw)
                status = job.get_status(refresh=False)
                if status not in (JobStatus.FAILED, JobStatus.STOPPED):
                    state = status.value if status else "unknown"
                    raise ConflictError(f"job {job_id!r} is {state}; only failed or stopped jobs can be retried")
                pipe.multi()
                # build_job gives a job one retry interval per retry, so this is the budget it was submitted with
                retries = len(job.retry_intervals or []) or None
                for command in requeue_writes(store.sync, store.queues[job.origin], job, retries):
                    pipe.execute_command(*command)
                pipe.delete(keys.stop_requested(job_id))
                await pipe.execute()
                break
            except WatchError:
                continue
        else:
            raise contended()
    record = await store.fetch(job_id)
    if record is None:
        raise _missing(job_id)
    return record
