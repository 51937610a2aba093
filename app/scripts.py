"""The web's hot paths as one Redis command each: a submission, a status read.

A MULTI/EXEC of a dozen commands costs the asyncio client a dozen packs and a dozen replies
(each `QUEUED`), which is most of a submission's CPU. Here the commands RQ would write are sent
as the arguments of ONE `EVALSHA` (`core.rqadapter.scripts`), which runs them atomically (as
MULTI/EXEC would) after the idempotency claim, the active-jobs quota and any parents' statuses
are checked in the same script: no WATCH, no retry loop, and concurrent requests on any number
of web processes still agree. Each of those rules is written once, in that script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from app.pipelining import AutoPipeline
from core.rqadapter import scripts as lua
from core.submitting import ACTIVE_STATUSES


@dataclass(frozen=True)
class ListingEntry:
    """A job's place in the listing indexes: its score in each, and the bound below which entries
    are stale (older than any job can live) and dropped on the way."""

    indexes: tuple[str, ...]
    score: float
    stale_below: str  # an exclusive ZREMRANGEBYSCORE bound, "(<score>"


@dataclass(frozen=True)
class SubmitOutcome:
    written: bool
    existing_claim: bytes | None = None  # the stored idempotency claim, when it was taken
    active: int | None = None  # the active-job count, when the quota refused
    guard_failed: bool = False  # a guarded job's status changed since it was read: read again, retry
    reused: str | None = None  # the id of an identical job to answer with (result reuse)
    passed_over: bool = False  # written, though an identical job could have been reused (a refresh)


class Scripts:
    """The hot-path scripts, sent through one implicitly pipelined connection (`app.pipelining`)."""

    def __init__(self, aio: aioredis.Redis) -> None:
        self._submit = aio.register_script(lua.submit_source(ACTIVE_STATUSES))
        self._fetch = aio.register_script(lua.FETCH)
        self.pipeline = AutoPipeline(aio)

    async def submit(
        self,
        commands: Sequence[Sequence[Any]],
        job_id: str,
        *,
        claim: tuple[str, str, int] | None = None,
        quota: tuple[str, int] | None = None,
        listing: ListingEntry | None = None,
        pushed_onto: str | None = None,
        guards: Sequence[tuple[str, str]] = (),
        check_only: bool = False,
        reuse: tuple[str, int, str, bool] | None = None,
    ) -> SubmitOutcome:
        """Run `commands` atomically, and add the job to its `listing` indexes, unless `claim` (key,
        value, ttl) is taken, the active set `quota` (key, limit) is full, or a job of `guards` (id,
        status) no longer has that status; a full quota's set is pruned of ended jobs. `pushed_onto`
        names the queue whose tail the commands push the job onto: its pushes counter then locates
        the job while it waits (`FETCH`). `check_only`: check the claim and quota, write nothing.
        `reuse` (key, ttl, fresh-since, refresh): answer with an identical job that may be reused, else
        record the new job as the one identical submissions find (`core.reuse`)."""
        entry = (listing.indexes, listing.score, listing.stale_below) if listing is not None else None
        args = lua.submit_args(
            commands,
            job_id,
            claim=claim,
            quota=quota,
            listing=entry,
            pushed_onto=pushed_onto,
            guards=guards,
            check_only=check_only,
            reuse=reuse,
        )
        reply = await self.pipeline.evalsha(self._submit, [], args)
        code = int(reply[0])
        if code == lua.CLAIM_TAKEN:
            return SubmitOutcome(False, existing_claim=reply[1])
        if code == lua.OVER_QUOTA:
            return SubmitOutcome(False, active=int(reply[1]))
        if code == lua.GUARD_FAILED:
            return SubmitOutcome(False, guard_failed=True)
        if code == lua.REUSED:
            reused = reply[1]
            return SubmitOutcome(False, reused=reused.decode() if isinstance(reused, bytes) else str(reused))
        return SubmitOutcome(code == lua.WRITTEN, passed_over=code == lua.WRITTEN and bool(reply[1]))

    async def fetch(self, job_id: str) -> lua.Fetched | None:
        """(job hash as a dict, newest result entries, queue position or None), or None without a job."""
        job_keys, args = lua.fetch_call(job_id)
        return lua.parse_fetched(await self.pipeline.evalsha(self._fetch, job_keys, args))
