"""Active jobs per API key (`MAX_ACTIVE_JOBS`): queued + scheduled + deferred + started.

Each key has a Redis set of its possibly-active job ids. A submission drops members that have
ended or expired (one status read each, O(limit)) and either refuses with 429 or adds the new
job, all inside the script that enqueues it (`app.scripts`): Redis runs one script at a time,
so the count holds across web processes without a lock. The dependency path (blocking, in a
thread) and retries do the same under WATCH with MULTI/EXEC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import WatchError
from rq.job import Job, JobStatus

from app.errors import TooManyRequestsError
from core import keys

ACTIVE_STATUSES = frozenset(
    status.value.encode() for status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.STARTED)
)
#: Seconds a client refused by the quota is told to wait: when a job ends is unknown, so poll.
QUOTA_RETRY_AFTER = 5


async def active_members(aio: aioredis.Redis, members: Sequence[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Split job ids into (active, ended-or-expired) by their current RQ status."""
    if not members:
        return [], []
    async with aio.pipeline(transaction=False) as reads:
        for member in members:
            reads.hget(Job.key_for(member.decode()), "status")
        return _split(members, await reads.execute())


def _split(members: Sequence[bytes], statuses: Sequence[bytes | None]) -> tuple[list[bytes], list[bytes]]:
    active = [m for m, status in zip(members, statuses, strict=True) if status in ACTIVE_STATUSES]
    ended = [m for m, status in zip(members, statuses, strict=True) if status not in ACTIVE_STATUSES]
    return active, ended


@dataclass(frozen=True)
class Quota:
    """At most `limit` active jobs for `owner` (an API key name)."""

    owner: str
    limit: int

    @property
    def key(self) -> str:
        return keys.active_for_owner(self.owner)


def over_quota(active: int, limit: int) -> TooManyRequestsError:
    return TooManyRequestsError(
        f"this API key already has {active} active jobs (limit {limit}); retry when one of them has ended",
        QUOTA_RETRY_AFTER,
    )


def _check(active: Sequence[bytes], limit: int, counted: bytes = b"") -> None:
    if len(active) >= limit and counted not in active:
        raise over_quota(len(active), limit)


def prune_and_check_sync(sync: redis.Redis, watching: Any, quota: Quota) -> list[bytes]:
    """With `quota.key` WATCHed on `watching` (blocking: the dependency path, run in a thread): raise 429
    at the limit, else return the members that ended."""
    members = sorted(watching.smembers(quota.key))
    if not members:
        return []
    with sync.pipeline(transaction=False) as reads:
        for member in members:
            reads.hget(Job.key_for(member.decode()), "status")
        active, ended = _split(members, reads.execute())
    _check(active, quota.limit)
    return ended


async def reserve_slot(aio: aioredis.Redis, active_key: str, limit: int, job_id: str) -> None:
    """Count an existing job (a retried one, say) as active again, or raise 429 when the key is at its limit."""
    while True:
        async with aio.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(active_key)
                found: set[bytes] = await pipe.smembers(active_key)  # type: ignore[assignment]
                active, ended = await active_members(aio, sorted(found))
                _check(active, limit, job_id.encode())
                pipe.multi()  # type: ignore[no-untyped-call]
                if ended:
                    pipe.srem(active_key, *ended)
                pipe.sadd(active_key, job_id)
                await pipe.execute()
                return
            except WatchError:
                continue
