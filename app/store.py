"""The web process's gateway to Redis: RQ's own job logic, Redis I/O on asyncio.

RQ builds and serializes jobs, but its clients are blocking. Here RQ writes into an
unexecuted (recording) pipeline, and the recorded commands are sent in one MULTI/EXEC on
the asyncio client: one round trip, no thread hop, and either all of a submission lands or
none of it. Reads fetch the raw hashes with asyncio and let RQ's `Job.restore` decode them.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import WatchError
from rq import Queue, Retry
from rq.job import Job, JobStatus
from rq.registry import BaseRegistry
from rq.results import Result
from rq.utils import now
from rq.worker_registration import REDIS_WORKER_KEYS

from app.errors import ConflictError, ValidationFailedError
from app.idempotency import Claim
from app.quota import Quota, over_quota, prune_and_check_sync
from app.scripts import ListingEntry, Scripts
from core import keys
from core.meta import OWNER
from core.queues import QUEUE_NAMES, SERIALIZER, JsonJob, make_queue
from core.settings import Settings

logger = logging.getLogger("app.store")


@dataclass(frozen=True)
class JobRecord:
    job: Job
    result: Result | None
    position: int | None


#: Optimistic transactions (WATCH) retry this often before giving up with a 409.
WATCH_ATTEMPTS = 100


def contended() -> ConflictError:
    return ConflictError("the jobs involved kept changing while this request was applied; try again")


def retry_intervals(retries: int, base: int, cap: int) -> list[int]:
    """Exponential backoff: base, 2*base, 4*base ... each capped. One interval per retry, so a job's
    `retry_intervals` also tell how many retries it was submitted with (POST /jobs/{id}/retry)."""
    return [min(cap, base * 2**attempt) for attempt in range(retries)]


class JobStore:
    def __init__(self, settings: Settings, sync: redis.Redis, aio: aioredis.Redis) -> None:
        self.settings = settings
        self.sync = sync
        self.aio = aio
        self.queues: dict[str, Queue] = {name: make_queue(name, sync) for name in QUEUE_NAMES}
        self.scripts = Scripts(aio)
        self._warm = False

    async def warm_up(self) -> None:
        """Learn the server version once, so RQ never asks for it (blocking) while recording."""
        try:
            info = await self.aio.info("server")
            version = tuple(int(part) for part in str(info["redis_version"]).split(".")[:3])
        except redis.ResponseError:  # INFO disabled (some managed servers, fakeredis): assume RQ's minimum
            version = (5, 0, 0)
        for queue in self.queues.values():
            queue.redis_server_version = version  # type: ignore[assignment]
        self._warm = True

    # -- writes -------------------------------------------------------------------------

    def build_job(
        self,
        *,
        func_path: str,
        kwargs: dict[str, Any],
        queue: str,
        timeout: int,
        retries: int,
        description: str,
        meta: dict[str, Any],
        depends_on: Sequence[str] = (),
    ) -> Job:
        """An RQ job, built in memory only."""
        settings = self.settings
        retry = (
            Retry(
                max=retries, interval=retry_intervals(retries, settings.retry_backoff_base, settings.retry_backoff_max)
            )
            if retries
            else None
        )
        return self.queues[queue].create_job(
            func_path,
            kwargs=kwargs,
            timeout=timeout,
            result_ttl=settings.result_ttl,
            failure_ttl=settings.failure_ttl,
            description=description,
            retry=retry,
            meta=meta,
            depends_on=list(depends_on) or None,
        )

    async def enqueue(
        self,
        job: Job,
        job_type: str,
        *,
        at: datetime | None = None,
        claim: Claim | None = None,
        quota: Quota | None = None,
    ) -> str | None:
        """Enqueue `job` (or schedule it for `at`) atomically, with the listing indexes, in one script run.

        With `claim` the job is written only if the claim's key is still free; with `quota` only if
        its owner has fewer active jobs than the limit (429 otherwise). Both are checked in the same
        script that writes (`app.scripts`), so concurrent requests on any process agree. When the
        claim was taken, nothing is written and the id of the job the claim names is returned.
        """
        if not self._warm:
            await self.warm_up()
        queue = self.queues[job.origin]
        pushed_onto = None
        if at is None and not job._dependency_ids and job.ttl is None and not job.has_rate_limit:
            commands, pushed_onto = queued_job_writes(queue, job), queue.name
        else:
            recorder = self.sync.pipeline(transaction=True)
            if at is None:
                queue.enqueue_job(job, pipeline=recorder)
            else:
                queue.schedule_job(job, at, pipeline=recorder)
            commands = [args for args, _options in recorder.command_stack]
        outcome = await self.scripts.submit(
            commands,
            job.id,
            claim=(claim.key, claim.value(job.id), claim.ttl) if claim is not None else None,
            quota=(quota.key, quota.limit) if quota is not None else None,
            listing=self._listing_entry(job, job_type),
            pushed_onto=pushed_onto,
        )
        if outcome.existing_claim is not None:
            assert claim is not None
            return claim.job_for(outcome.existing_claim)
        if outcome.active is not None:
            assert quota is not None
            raise over_quota(outcome.active, quota.limit)
        return None

    def enqueue_dependent(
        self,
        make_job: Callable[[], Job],
        job_type: str,
        parents: Sequence[str],
        claim: Claim | None,
        quota: Quota | None = None,
    ) -> tuple[Job | None, str | None]:
        """Blocking (run it in a thread): enqueue a job that depends on `parents` with RQ's own
        dependency logic, which WATCHes the parents. Returns (job, None), or (None, id of the job
        `claim` names) when the claim was taken. Unknown or failed parents are a 422; a full
        `quota` is a 429."""
        parent_keys = [Job.key_for(parent) for parent in parents]
        pipe: Any
        with self.sync.pipeline(transaction=True) as pipe:
            for _ in range(WATCH_ATTEMPTS):
                try:
                    if claim is not None:
                        pipe.watch(claim.key)
                        stored = pipe.get(claim.key)
                        if stored is not None:
                            return None, claim.job_for(stored)
                    ended: list[bytes] = []
                    if quota is not None:
                        pipe.watch(quota.key)
                        ended = prune_and_check_sync(self.sync, pipe, quota)
                    pipe.watch(*parent_keys)
                    _check_parents(parents, [pipe.hget(key, "status") for key in parent_keys])
                    job = make_job()
                    self.queues[job.origin].enqueue_job(job, pipeline=pipe)
                    self._record_indexes(pipe, job, job_type)
                    if claim is not None:
                        pipe.set(claim.key, claim.value(job.id), ex=claim.ttl)
                    if quota is not None:
                        if ended:
                            pipe.srem(quota.key, *ended)
                        pipe.sadd(quota.key, job.id)
                    pipe.execute()
                    return job, None
                except WatchError:
                    continue
        raise contended()

    def _listing_entry(self, job: Job, job_type: str) -> ListingEntry:
        score = job.created_at.timestamp() * 1_000_000
        indexes = [keys.INDEX_ALL, keys.index_for_queue(job.origin), keys.index_for_type(job_type)]
        owner = job.meta.get(OWNER)
        if owner:
            indexes.append(keys.index_for_owner(str(owner)))
        return ListingEntry(tuple(indexes), score, f"({score - self._index_horizon_us()}")

    def _record_indexes(self, pipe: Any, job: Job, job_type: str) -> None:
        entry = self._listing_entry(job, job_type)
        for index in entry.indexes:
            pipe.zadd(index, {job.id: entry.score})
            pipe.zremrangebyscore(index, "-inf", entry.stale_below)

    def _index_horizon_us(self) -> float:
        return (2 * max(self.settings.result_ttl, self.settings.failure_ttl) + 86400) * 1_000_000

    @staticmethod
    def copy_commands(recorder: Any, pipe: Any) -> None:
        """Queue on `pipe` (asyncio, in MULTI) what RQ recorded on `recorder` (sync, never executed)."""
        for args, options in recorder.command_stack:
            pipe.execute_command(*args, **options)
        recorder.reset()

    # -- reads --------------------------------------------------------------------------

    async def fetch(self, job_id: str) -> JobRecord | None:
        """The job, its newest result and its queue position, read in one script run."""
        found = await self.scripts.fetch(
            Job.key_for(job_id), Result.get_key(job_id), Queue.redis_queue_namespace_prefix, job_id
        )
        if found is None:
            return None
        raw, results, position = found
        if b"data" not in raw:
            return None
        job = self.restore(job_id, raw)
        if job.origin not in self.queues:
            position = None
        return JobRecord(job, self._latest_result(job_id, results), position)

    def restore(self, job_id: str, raw: dict[bytes, bytes]) -> Job:
        job = JsonJob(job_id, connection=self.sync)
        job.restore(raw)
        return job

    def _latest_result(self, job_id: str, entries: Sequence[Any]) -> Result | None:
        if not entries:
            return None
        result_id, payload = entries[0]
        try:
            return Result.restore(job_id, result_id.decode(), payload, connection=self.sync, serializer=SERIALIZER)
        except (ValueError, TypeError, zlib.error) as exc:  # not JSON (a planted pickle, say): never unpickled
            logger.warning("job %s: stored result is not readable as JSON (%s); showing none", job_id, exc)
            return None

    async def stats(self) -> dict[str, Any]:
        """Counters per queue from RQ's own lists and registries: O(queues), not O(jobs)."""
        now = time.time()
        async with self.aio.pipeline(transaction=False) as pipe:
            for queue in self.queues.values():
                pipe.llen(queue.key)
                pipe.zcard(queue.started_job_registry.key)
                pipe.zcard(queue.scheduled_job_registry.key)
                pipe.zcard(queue.deferred_job_registry.key)
                for registry in _expiring_registries(queue):
                    pipe.zcount(registry.key, now, "+inf")
            pipe.smembers(REDIS_WORKER_KEYS)
            *counts, worker_keys = await pipe.execute()
        names = ("queued", "started", "scheduled", "deferred", "finished", "failed", "canceled")
        per_queue = {
            name: dict(zip(names, counts[i * len(names) : (i + 1) * len(names)], strict=True))
            for i, name in enumerate(self.queues)
        }
        workers = await self.workers(worker_keys)
        return {"queues": per_queue, "workers": workers}

    async def workers(self, worker_keys: set[bytes] | None = None) -> dict[str, int]:
        keys_found: set[Any] = worker_keys if worker_keys is not None else await self.aio.smembers(REDIS_WORKER_KEYS)
        ordered = sorted(keys_found)
        if not ordered:
            return {"count": 0, "busy": 0}
        async with self.aio.pipeline(transaction=False) as pipe:
            for key in ordered:
                pipe.hmget(key, "state", "birth")  # a worker just registered has a birth but no state yet
            found = await pipe.execute()
        alive = [state for state, birth in found if state is not None or birth is not None]
        return {"count": len(alive), "busy": sum(1 for state in alive if state == b"busy")}

    async def ping(self) -> bool:
        return bool(await self.aio.ping())


def queued_job_writes(queue: Queue, job: Job) -> list[tuple[Any, ...]]:
    """The writes of RQ's `Queue.enqueue_job` for a new job without dependencies, TTL or rate limit,
    made without its recording pipeline (~10 us less per submission); the job object is updated as
    RQ updates it. tests/unit/test_scripts.py holds the result to RQ's own, key by key."""
    job.origin = queue.name
    job.enqueued_at = now()
    if job.timeout is None:
        job.timeout = queue._default_timeout
    job._status = JobStatus.QUEUED
    fields = [part for pair in job.to_dict().items() for part in pair]
    return [("SADD", queue.redis_queues_keys, queue.key), ("HSET", job.key, *fields), ("RPUSH", queue.key, job.id)]


def _check_parents(parents: Sequence[str], statuses: Sequence[Any]) -> None:
    for position, (parent, status) in enumerate(zip(parents, statuses, strict=True)):
        if status is None:
            raise ValidationFailedError.field(
                ["depends_on", position], f"no job {parent!r} (it never existed or expired)"
            )
        if status.decode() in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            raise ValidationFailedError.field(
                ["depends_on", position], f"job {parent!r} is {status.decode()}; it will never finish"
            )


def _expiring_registries(queue: Queue) -> list[BaseRegistry]:
    return [queue.finished_job_registry, queue.failed_job_registry, queue.canceled_job_registry]
