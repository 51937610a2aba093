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
from core import keys

# ARGV[1..7]: claim key ('' = none), claim value, claim ttl, active-jobs set ('' = none), quota limit,
# job id, job key prefix; ARGV[8..11]: listing score, stale-below bound, the pushes counter of the queue
# the commands push the job onto ('' = none), number of listing indexes n; ARGV[12..11+n]: the listing
# indexes; then the commands, each as its argument count followed by its arguments.
# Reply: {0} written; {1, stored claim} the claim was taken (nothing written); {2, active} over quota.
_ACTIVE = ", ".join(f"['{status.decode()}'] = true" for status in sorted(ACTIVE_STATUSES))
_SUBMIT = (
    "local ACTIVE = {" + _ACTIVE + "}\n"
    f"local SEQ = '{keys.QUEUE_SEQ}'\n"
    """local claim_key, active_key = ARGV[1], ARGV[4]
if claim_key ~= '' then
  local stored = redis.call('GET', claim_key)
  if stored then return {1, stored} end
end
if active_key ~= '' then
  local active, ended = 0, {}
  for _, member in ipairs(redis.call('SMEMBERS', active_key)) do
    local status = redis.call('HGET', ARGV[7] .. member, 'status')
    if status and ACTIVE[status] then
      active = active + 1
    else
      ended[#ended + 1] = member
    end
  end
  local full = active >= tonumber(ARGV[5])
  -- the first write grows memory: a Redis at maxmemory refuses the whole script (it lets one through
  -- whose first write frees memory, as SREM does)
  if not full then redis.call('SADD', active_key, ARGV[6]) end
  for _, member in ipairs(ended) do redis.call('SREM', active_key, member) end
  if full then return {2, active} end
end
local seq = ARGV[10] ~= '' and redis.call('INCR', ARGV[10])
if claim_key ~= '' then
  redis.call('SET', claim_key, ARGV[2], 'EX', ARGV[3])
end
local indexes = tonumber(ARGV[11])
for k = 12, 11 + indexes do
  redis.call('ZADD', ARGV[k], ARGV[8], ARGV[6])
  redis.call('ZREMRANGEBYSCORE', ARGV[k], '-inf', ARGV[9])
end
local i, last = 12 + indexes, #ARGV
while i <= last do
  local count = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + count))
  i = i + count + 1
end
if seq then
  redis.call('HSET', ARGV[7] .. ARGV[6], SEQ, seq)
end
return {0}
"""
)

# KEYS[1] = job hash, KEYS[2] = its results stream; ARGV[1] = queue key prefix, ARGV[2] = job id,
# ARGV[3] = pushes counter prefix. Reply: false (no job) or {flat job hash, newest result entry (or
# empty), position in its queue or false}.
# A queued job's position without scanning its queue: jobs are pushed onto the tail, so a job sits
# (pushes counter now - its SEQ) places from the tail, which one LINDEX checks in O(list nodes). Any
# push not counted (RQ's own: retries, dependents, scheduled jobs), or a later job removed, makes the
# check miss: LPOS (O(position)) answers instead, and SEQ is set again from what it found, so the next
# read is O(1) again. The hint never decides the answer, the job id at that place does (should one id
# be queued twice, which no path of this service does, that is the copy it was last anchored to).
# The re-anchoring write is best-effort (pcall): a server refusing writes (maxmemory reached under
# noeviction, a replica) still answers the read, with LPOS.
_FETCH = (
    f"local SEQ = '{keys.QUEUE_SEQ}'\n"
    """local raw = redis.call('HGETALL', KEYS[1])
if #raw == 0 then return false end
local position = false
local status = redis.call('HGET', KEYS[1], 'status')
local origin = redis.call('HGET', KEYS[1], 'origin')
if status == 'queued' and origin then
  local queue = ARGV[1] .. origin
  local pushes = tonumber(redis.pcall('GET', ARGV[3] .. origin)) or 0
  local seq = tonumber(redis.call('HGET', KEYS[1], SEQ))
  if seq and seq <= pushes and redis.call('LINDEX', queue, seq - pushes - 1) == ARGV[2] then
    position = redis.call('LLEN', queue) - 1 - (pushes - seq)
  else
    position = redis.call('LPOS', queue, ARGV[2])
    if position then
      redis.pcall('HSET', KEYS[1], SEQ, pushes - (redis.call('LLEN', queue) - 1 - position))
    end
  end
end
return {raw, redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1), position}
"""
)


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
        pushed_onto: str | None = None,
    ) -> SubmitOutcome:
        """Run `commands` atomically, and add the job to its `listing` indexes, unless
        `claim` (key, value, ttl) is taken or the active set `quota` (key, limit) is full; a full
        quota's set is pruned of ended jobs. `pushed_onto` names the queue whose tail the commands
        push the job onto: its pushes counter then locates the job while it waits (`_FETCH`)."""
        claim_key, claim_value, claim_ttl = claim or ("", "", 0)
        active_key, limit = quota or ("", 0)
        indexes, score, stale_below = (listing.indexes, listing.score, listing.stale_below) if listing else ((), 0, "")
        head: list[Any] = [claim_key, claim_value, claim_ttl, active_key, limit, job_id, Job.redis_job_namespace_prefix]
        pushes = keys.queue_pushes(pushed_onto) if pushed_onto is not None else ""
        head += [score, stale_below, pushes, len(indexes), *indexes]
        reply = await self.pipeline.evalsha(self._submit, [], [*head, *flatten(commands)])
        code = int(reply[0])
        if code == 1:
            return SubmitOutcome(False, existing_claim=reply[1])
        if code == 2:
            return SubmitOutcome(False, active=int(reply[1]))
        return SubmitOutcome(True)

    async def fetch(self, job_key: str, results_key: str, queue_prefix: str, job_id: str) -> Any:
        """(job hash as a dict, newest result entries, queue position or None), or None without a job."""
        args = [queue_prefix, job_id, keys.QUEUE_PUSHES_PREFIX]
        reply = await self.pipeline.evalsha(self._fetch, [job_key, results_key], args)
        if not reply:
            return None
        flat, entries, position = reply
        raw = dict(zip(flat[::2], flat[1::2], strict=True))
        results = [(entry_id, dict(zip(fields[::2], fields[1::2], strict=True))) for entry_id, fields in entries]
        return raw, results, position if isinstance(position, int) else None
