"""The web process's gateway to Redis: RQ's own job logic, Redis I/O on asyncio.

RQ builds and serializes jobs, but its clients are blocking. Here what RQ would write is
taken as commands (`core.rqadapter.enqueue`) and sent in one script run on the asyncio client
(`app.scripts`): one round trip, no thread hop, and either all of a submission lands or none
of it. Reads fetch the raw hashes with asyncio and let RQ's `Job.restore` decode them.
One gateway for every route's Redis I/O, about 340 lines: splitting it would split its one
connection pair.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio as aioredis
from rq import Queue, Retry
from rq.job import Job, JobStatus
from rq.registry import BaseRegistry
from rq.results import Result
from rq.worker_registration import REDIS_WORKER_KEYS
from starlette.concurrency import run_in_threadpool

from app.errors import ConflictError, ValidationFailedError
from app.idempotency import Claim
from app.quota import Quota, over_quota
from app.scripts import ListingEntry, Scripts, SubmitOutcome
from core import keys
from core.meta import OWNER
from core.queues import QUEUE_NAMES, SERIALIZER, JsonJob, make_queue
from core.reuse import Reuse
from core.rqadapter.enqueue import enqueue_writes, is_plain
from core.rqadapter.jobdata import decode_status, is_stored, queue_status_reads
from core.settings import Settings
from core.submitting import listing_horizon_us, retry_intervals

logger = logging.getLogger("app.store")


@dataclass(frozen=True)
class JobRecord:
    job: Job
    result: Result | None
    position: int | None


@dataclass(frozen=True)
class Settled:
    """How a submission ended: its job written (`existing` None), or answered with an existing job, the one
    its `Idempotency-Key` names or (`reused`) an identical one. `passed_over`: written, though an identical
    job could have been reused (the request asked for a new one)."""

    existing: str | None = None
    reused: bool = False
    passed_over: bool = False


#: Optimistic writes (WATCH, or the guards of a dependent submission) retry this often before giving up with a 409.
WATCH_ATTEMPTS = 100


def contended() -> ConflictError:
    return ConflictError("the jobs involved kept changing while this request was applied; try again")


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
        reuse: Reuse | None = None,
    ) -> Settled:
        """Enqueue `job` (or schedule it for `at`) atomically, with the listing indexes, in one script run.

        With `claim` the job is written only if the claim's key is still free; with `reuse` only if no
        identical job may be reused; with `quota` only if its owner has fewer active jobs than the limit
        (429 otherwise). All are checked in the same script that writes (`app.scripts`), so concurrent
        requests on any process agree. When the claim was taken or a job is reused, nothing is written
        and the id of that job is returned. A job with dependencies goes through `enqueue_dependent`.
        """
        if not self._warm:
            await self.warm_up()
        queue = self.queues[job.origin]
        commands = enqueue_writes(self.sync, queue, job, at)  # no dependencies: nothing read, never blocks
        pushed_onto = queue.name if at is None and is_plain(job) else None
        outcome = await self._submit(commands, job, job_type, claim, quota, reuse, pushed_onto=pushed_onto)
        return _settled(outcome, claim, quota)

    async def _submit(
        self,
        commands: Sequence[Sequence[Any]],
        job: Job,
        job_type: str,
        claim: Claim | None,
        quota: Quota | None,
        reuse: Reuse | None,
        *,
        pushed_onto: str | None = None,
        guards: Sequence[tuple[str, str]] = (),
    ) -> SubmitOutcome:
        """The submission script run for `job`: its writes, claim, reuse, quota and listing entry in one step."""
        return await self.scripts.submit(
            commands,
            job.id,
            claim=_claim_args(claim, job.id),
            quota=_quota_args(quota),
            listing=self.listing_entry(job, job_type),
            pushed_onto=pushed_onto,
            guards=guards,
            reuse=_reuse_args(reuse),
        )

    async def enqueue_dependent(
        self,
        make_job: Callable[[], Job],
        job_type: str,
        parents: Sequence[str],
        claim: Claim | None,
        quota: Quota | None = None,
        reuse: Reuse | None = None,
    ) -> tuple[Job | None, Settled]:
        """Enqueue a job that depends on `parents`, deferred or queued as RQ's own dependency logic
        decides from their statuses. Returns (job, how it settled), or (None, the existing job) when the
        claim was taken or an identical job is reused. Unknown or failed parents are a 422; a full `quota`
        is a 429 (checked, like the claim and reuse, first). The script writes only if every parent still
        has the status RQ decided on; otherwise the job is built again."""
        if not self._warm:
            await self.warm_up()
        for _ in range(WATCH_ATTEMPTS):
            async with self.aio.pipeline(transaction=False) as reads:
                queue_status_reads(reads, list(parents))
                statuses = [decode_status(raw) for raw in await reads.execute()]
            refused = _refused_parent(parents, statuses)
            if refused is not None:  # the claim and the quota answer first, as for any submission
                checked = await self.scripts.submit(
                    [],
                    "",
                    claim=_claim_args(claim, ""),
                    quota=_quota_args(quota),
                    check_only=True,
                    reuse=_reuse_args(reuse),
                )
                settled = _settled(checked, claim, quota)
                if settled.existing is not None:
                    return None, settled
                raise refused
            job = make_job()
            commands = await run_in_threadpool(enqueue_writes, self.sync, self.queues[job.origin], job)
            guards = [(parent, str(status)) for parent, status in zip(parents, statuses, strict=True)]
            outcome = await self._submit(commands, job, job_type, claim, quota, reuse, guards=guards)
            if not outcome.guard_failed:
                settled = _settled(outcome, claim, quota)
                return (None, settled) if settled.existing is not None else (job, settled)
        raise contended()

    async def reserve_slot(self, quota: Quota, job_id: str) -> None:
        """Count an existing job (a retried one, say) as active again, or raise 429 when its owner is at the
        limit; a job already counted as active takes no second slot."""
        outcome = await self.scripts.submit([], job_id, quota=_quota_args(quota))
        _settled(outcome, None, quota)

    def listing_entry(self, job: Job, job_type: str) -> ListingEntry:
        """The listing indexes a new job joins, its score in them, and the trim bound of older entries."""
        score = job.created_at.timestamp() * 1_000_000
        indexes = [keys.INDEX_ALL, keys.index_for_queue(job.origin), keys.index_for_type(job_type)]
        owner = job.meta.get(OWNER)
        if owner:
            indexes.append(keys.index_for_owner(str(owner)))
        return ListingEntry(tuple(indexes), score, f"({score - listing_horizon_us(self.settings)}")

    # -- reads --------------------------------------------------------------------------

    async def fetch(self, job_id: str) -> JobRecord | None:
        """The job, its newest result and its queue position, read in one script run."""
        found = await self.scripts.fetch(job_id)
        if found is None:
            return None
        raw, results, position = found
        if not is_stored(raw):
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


def _claim_args(claim: Claim | None, job_id: str) -> tuple[str, str, int] | None:
    return (claim.key, claim.value(job_id), claim.ttl) if claim is not None else None


def _quota_args(quota: Quota | None) -> tuple[str, int] | None:
    return (quota.key, quota.limit) if quota is not None else None


def _reuse_args(reuse: Reuse | None) -> tuple[str, int, str, bool] | None:
    if reuse is None:
        return None
    return (reuse.key, reuse.key_ttl, reuse.fresh_since(datetime.now(UTC)), reuse.refresh)


def _settled(outcome: SubmitOutcome, claim: Claim | None, quota: Quota | None) -> Settled:
    """The job a taken `claim` names or the one reused; raises 429 when `quota` refused; else written."""
    if outcome.existing_claim is not None:
        assert claim is not None
        return Settled(claim.job_for(outcome.existing_claim))
    if outcome.reused is not None:
        return Settled(outcome.reused, reused=True)
    if outcome.active is not None:
        assert quota is not None
        raise over_quota(outcome.active, quota.limit)
    return Settled(passed_over=outcome.passed_over)


def _refused_parent(parents: Sequence[str], statuses: Sequence[str | None]) -> ValidationFailedError | None:
    """Why a job cannot depend on `parents` (with these statuses), or None if it can."""
    for position, (parent, status) in enumerate(zip(parents, statuses, strict=True)):
        if status is None:
            return ValidationFailedError.field(
                ["depends_on", position], f"no job {parent!r} (it never existed or expired)"
            )
        if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            return ValidationFailedError.field(
                ["depends_on", position], f"job {parent!r} is {status}; it will never finish"
            )
    return None


def _expiring_registries(queue: Queue) -> list[BaseRegistry]:
    return [queue.finished_job_registry, queue.failed_job_registry, queue.canceled_job_registry]
