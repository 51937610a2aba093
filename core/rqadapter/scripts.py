"""Lua that reads and writes RQ's keys: the web's submission and status scripts, and canceling a waiting job.

Each script is one Redis command that Redis runs alone, so what it checks still holds when it
writes: no WATCH, no retry loop, and any number of processes agree. The Lua text and the layout
of its arguments live here; the callers (`app.scripts`, `jobs.control`) send it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import CanceledJobRegistry, DeferredJobRegistry, ScheduledJobRegistry
from rq.results import Result
from rq.utils import utcformat

from core import keys

# -- submission ---------------------------------------------------------------------------------

#: Replies of the submission script (the first element of its reply).
WRITTEN = 0  # {0}: everything written
CLAIM_TAKEN = 1  # {1, stored claim}: the idempotency claim was taken; nothing written
OVER_QUOTA = 2  # {2, active jobs}: the owner's active-jobs limit is reached; nothing written but pruning
GUARD_FAILED = 3  # {3, index}: a guarded job's status changed since it was read; nothing written
CHECKED = 4  # {4}: claim and quota allow it (check-only call); nothing written
REUSED = 5  # {5, job id}: an identical job may be reused (result reuse); nothing written but the claim

# ARGV[1..17]: claim key ('' = none), claim value, claim ttl, active-jobs set ('' = none), quota limit,
# job id, job key prefix, listing score, stale-below bound, the pushes counter of the queue the commands
# push the job onto ('' = none), check only ('1' or ''), number of listing indexes n, number of guards g,
# reuse key ('' = none), its ttl, fresh-since ('' = reuse nothing), refresh ('1' or ''); then the n
# listing indexes; then g pairs (job key, the status it must still have); then the commands, each as its
# argument count followed by its arguments.
# Result reuse: the job the reuse key names is reused while it waits or runs, or once finished while its
# `ended_at` (RQ's fixed-width UTC format, so strings compare as times) is not older than fresh-since; a
# reused job's id replaces the new one's in the claim. With refresh, a job that could have been reused is
# passed over (the reply says so). A written job becomes the key's job. The key's ttl is renewed only
# while its job waits or runs, so it never outlives the result of that job.
# The quota counts the set's members whose job is active and prunes the rest; the job itself, if
# already a member and active, is already counted (a requeue reserves no second slot).
_SUBMIT = """local claim_key, active_key, job_id, prefix = ARGV[1], ARGV[4], ARGV[6], ARGV[7]
if claim_key ~= '' then
  local stored = redis.call('GET', claim_key)
  if stored then return {1, stored} end
end
local reuse_key, passed_over = ARGV[14], 0
if reuse_key ~= '' and ARGV[16] ~= '' then
  local earlier = redis.call('GET', reuse_key)
  local found = earlier and redis.call('HMGET', prefix .. earlier, 'status', 'ended_at')
  local status, ended = found and found[1], found and found[2]
  if status and (ACTIVE[status] or (status == 'finished' and ended and ended >= ARGV[16])) then
    if ARGV[17] ~= '1' then
      if claim_key ~= '' then  -- first: a Redis at maxmemory refuses it, before anything else is written
        local claim = cjson.decode(ARGV[2])
        claim.job = earlier
        redis.call('SET', claim_key, cjson.encode(claim), 'EX', ARGV[3])
      end
      if ACTIVE[status] then redis.call('EXPIRE', reuse_key, ARGV[15]) end
      return {5, earlier}
    end
    passed_over = 1
  end
end
local ended = {}
if active_key ~= '' then
  local active, counted = 0, false
  for _, member in ipairs(redis.call('SMEMBERS', active_key)) do
    local status = redis.call('HGET', prefix .. member, 'status')
    if status and ACTIVE[status] then
      active = active + 1
      counted = counted or member == job_id
    else
      ended[#ended + 1] = member
    end
  end
  if active >= tonumber(ARGV[5]) and not counted then
    for _, member in ipairs(ended) do redis.call('SREM', active_key, member) end
    return {2, active}
  end
end
local indexes, guards = tonumber(ARGV[12]), tonumber(ARGV[13])
local first_guard = 18 + indexes
for k = first_guard, first_guard + 2 * guards - 1, 2 do
  if redis.call('HGET', ARGV[k], 'status') ~= ARGV[k + 1] then return {3, (k - first_guard) / 2} end
end
if ARGV[11] == '1' then return {4} end
if active_key ~= '' then
  -- the first write grows memory: a Redis at maxmemory refuses the whole script (it lets one through
  -- whose first write frees memory, as the SREM of a full quota above does)
  redis.call('SADD', active_key, job_id)
  for _, member in ipairs(ended) do redis.call('SREM', active_key, member) end
end
local seq = ARGV[10] ~= '' and redis.call('INCR', ARGV[10])
if claim_key ~= '' then
  redis.call('SET', claim_key, ARGV[2], 'EX', ARGV[3])
end
if reuse_key ~= '' then
  redis.call('SET', reuse_key, job_id, 'EX', ARGV[15])
end
for k = 18, 17 + indexes do
  redis.call('ZADD', ARGV[k], ARGV[8], job_id)
  redis.call('ZREMRANGEBYSCORE', ARGV[k], '-inf', ARGV[9])
end
local i, last = first_guard + 2 * guards, #ARGV
while i <= last do
  local count = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + count))
  i = i + count + 1
end
if seq then
  redis.call('HSET', prefix .. job_id, SEQ, seq)
end
return {0, passed_over}
"""


def submit_source(active_statuses: Iterable[bytes]) -> str:
    """The submission script, counting jobs in `active_statuses` against an owner's quota."""
    active = ", ".join(f"['{status.decode()}'] = true" for status in sorted(active_statuses))
    return f"local ACTIVE = {{{active}}}\nlocal SEQ = '{keys.QUEUE_SEQ}'\n{_SUBMIT}"


def flatten(commands: Sequence[Sequence[Any]]) -> Iterator[Any]:
    """Commands as `count, *args` runs (the script's argument format)."""
    for args in commands:
        yield len(args)
        yield from args


def submit_args(
    commands: Sequence[Sequence[Any]],
    job_id: str,
    *,
    claim: tuple[str, str, int] | None = None,
    quota: tuple[str, int] | None = None,
    listing: tuple[Sequence[str], float, str] | None = None,
    pushed_onto: str | None = None,
    guards: Sequence[tuple[str, str]] = (),
    check_only: bool = False,
    reuse: tuple[str, int, str, bool] | None = None,
) -> list[Any]:
    """ARGV of the submission script. `claim` is (key, value, ttl); `quota` (active set, limit); `listing`
    (indexes, score, stale-below bound); `pushed_onto` the queue whose tail the commands push the job
    onto; `guards` (job id, status) pairs, each job required to have that status still; `reuse` (key, its
    ttl, fresh-since or '' to reuse nothing, refresh)."""
    claim_key, claim_value, claim_ttl = claim or ("", "", 0)
    reuse_key, reuse_ttl, fresh_since, refresh = reuse or ("", 0, "", False)
    active_key, limit = quota or ("", 0)
    indexes, score, stale_below = listing or ((), 0, "")
    pushes = keys.queue_pushes(pushed_onto) if pushed_onto is not None else ""
    head: list[Any] = [claim_key, claim_value, claim_ttl, active_key, limit, job_id, Job.redis_job_namespace_prefix]
    head += [score, stale_below, pushes, "1" if check_only else "", len(indexes), len(guards)]
    head += [reuse_key, reuse_ttl, fresh_since, "1" if refresh else "", *indexes]
    for guarded, status in guards:
        head += [Job.key_for(guarded), status]
    return [*head, *flatten(commands)]


# -- status read --------------------------------------------------------------------------------

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
FETCH = (
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

Fetched = tuple[dict[bytes, bytes], list[tuple[bytes, dict[bytes, bytes]]], int | None]


def fetch_call(job_id: str) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of FETCH for `job_id`."""
    return [Job.key_for(job_id), Result.get_key(job_id)], [
        Queue.redis_queue_namespace_prefix,
        job_id,
        keys.QUEUE_PUSHES_PREFIX,
    ]


def parse_fetched(reply: Any) -> Fetched | None:
    """FETCH's reply as (job hash, newest result entries, queue position or None); None without a job."""
    if not reply:
        return None
    flat, entries, position = reply
    raw = dict(zip(flat[::2], flat[1::2], strict=True))
    results = [(entry_id, dict(zip(fields[::2], fields[1::2], strict=True))) for entry_id, fields in entries]
    return raw, results, position if isinstance(position, int) else None


# -- canceling a waiting job --------------------------------------------------------------------

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
            Job.dependents_key_for(job_id),
            f"{job_key}:dependencies",
        ],
        [job_id, status, kind, int(now.timestamp()) + ttl, ttl, utcformat(now)],
    )
