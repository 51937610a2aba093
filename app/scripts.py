"""Server-side scripts for the web's hot paths: one Redis command per submission and per status read.

A MULTI/EXEC of a dozen commands costs the asyncio client a dozen packs and a dozen replies
(each `QUEUED`), which is most of a submission's CPU. Here the commands RQ recorded are sent as
the arguments of ONE `EVALSHA`, which runs them atomically (as MULTI/EXEC would) after the
idempotency claim and the active-jobs quota are checked in the same script: no WATCH, no retry
loop, and concurrent requests on any number of web processes still agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from rq.job import Job

from app.pipelining import AutoPipeline
from app.quota import ACTIVE_STATUSES

# ARGV[1..7]: claim key ('' = none), claim value, claim ttl, active-jobs set ('' = none), quota limit,
# job id, job key prefix; ARGV[8..10]: listing score, stale-below bound, number of listing indexes n;
# ARGV[11..10+n]: the listing indexes; then the commands, each as its argument count followed by
# its arguments. Reply: {0} written; {1, stored claim} the claim was taken (nothing written);
# {2, active} over quota.
_ACTIVE = ", ".join(f"['{status.decode()}'] = true" for status in sorted(ACTIVE_STATUSES))
_SUBMIT = (
    "local ACTIVE = {" + _ACTIVE + "}\n"
    """local claim_key, active_key = ARGV[1], ARGV[4]
if claim_key ~= '' then
  local stored = redis.call('GET', claim_key)
  if stored then return {1, stored} end
end
if active_key ~= '' then
  local active = 0
  for _, member in ipairs(redis.call('SMEMBERS', active_key)) do
    local status = redis.call('HGET', ARGV[7] .. member, 'status')
    if status and ACTIVE[status] then
      active = active + 1
    else
      redis.call('SREM', active_key, member)
    end
  end
  if active >= tonumber(ARGV[5]) then return {2, active} end
  redis.call('SADD', active_key, ARGV[6])
end
if claim_key ~= '' then
  redis.call('SET', claim_key, ARGV[2], 'EX', ARGV[3])
end
local indexes = tonumber(ARGV[10])
for k = 11, 10 + indexes do
  redis.call('ZADD', ARGV[k], ARGV[8], ARGV[6])
  redis.call('ZREMRANGEBYSCORE', ARGV[k], '-inf', ARGV[9])
end
local i, last = 11 + indexes, #ARGV
while i <= last do
  local count = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + count))
  i = i + count + 1
end
return {0}
"""
)

# KEYS[1] = job hash, KEYS[2] = its results stream; ARGV[1] = queue key prefix, ARGV[2] = job id.
# Reply: false (no job) or {flat job hash, newest result entry (or empty), position in its queue or false}.
_FETCH = """
local raw = redis.call('HGETALL', KEYS[1])
if #raw == 0 then return false end
local position = false
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' then
  position = redis.call('LPOS', ARGV[1] .. redis.call('HGET', KEYS[1], 'origin'), ARGV[2])
end
return {raw, redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1), position}
"""


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


def flatten(commands: Sequence[Sequence[Any]]) -> Iterator[Any]:
    """Commands as `count, *args` runs (the script's argument format)."""
    for args in commands:
        yield len(args)
        yield from args


class Scripts:
    """The hot-path scripts, sent through one implicitly pipelined connection (`app.pipelining`)."""

    def __init__(self, aio: aioredis.Redis) -> None:
        self._submit = aio.register_script(_SUBMIT)
        self._fetch = aio.register_script(_FETCH)
        self.pipeline = AutoPipeline(aio)

    async def submit(
        self,
        commands: Sequence[Sequence[Any]],
        job_id: str,
        *,
        claim: tuple[str, str, int] | None = None,
        quota: tuple[str, int] | None = None,
        listing: ListingEntry | None = None,
    ) -> SubmitOutcome:
        """Run `commands` atomically, and add the job to its `listing` indexes, unless
        `claim` (key, value, ttl) is taken or the active set `quota` (key, limit) is full; a full
        quota's set is pruned of ended jobs."""
        claim_key, claim_value, claim_ttl = claim or ("", "", 0)
        active_key, limit = quota or ("", 0)
        indexes, score, stale_below = (listing.indexes, listing.score, listing.stale_below) if listing else ((), 0, "")
        head: list[Any] = [claim_key, claim_value, claim_ttl, active_key, limit, job_id, Job.redis_job_namespace_prefix]
        head += [score, stale_below, len(indexes), *indexes]
        reply = await self.pipeline.evalsha(self._submit, [], [*head, *flatten(commands)])
        code = int(reply[0])
        if code == 1:
            return SubmitOutcome(False, existing_claim=reply[1])
        if code == 2:
            return SubmitOutcome(False, active=int(reply[1]))
        return SubmitOutcome(True)

    async def fetch(self, job_key: str, results_key: str, queue_prefix: str, job_id: str) -> Any:
        """(job hash as a dict, newest result entries, queue position or None), or None without a job."""
        reply = await self.pipeline.evalsha(self._fetch, [job_key, results_key], [queue_prefix, job_id])
        if not reply:
            return None
        flat, entries, position = reply
        raw = dict(zip(flat[::2], flat[1::2], strict=True))
        results = [(entry_id, dict(zip(fields[::2], fields[1::2], strict=True))) for entry_id, fields in entries]
        return raw, results, position if isinstance(position, int) else None
