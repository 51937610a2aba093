"""Claims: which worker holds which job between its dequeue and its settled outcome.

RQ pops with BLPOP when a worker listens on more than one queue; a worker killed between the
pop and its own bookkeeping loses the job (RQ's reliable BLMOVE path only covers single-queue
workers). Here one Lua script pops the first job of the highest-priority non-empty queue (RQ's
queue lists) AND records `job id -> worker` in the claims hash (`jobsvc:claims`), in one atomic
step, choosing the job by owners' turns and flow-control limits (`core.rqadapter.flow_scripts`), and
taking its slots. The claim lasts until the worker settles the job (outcome recorded, requeued or
recovered); the workers' abandoned-job sweep hands the claims of dead workers back. Every script that drops
a claim releases its slots in the same step.

A worker records an outcome only for a job it still holds: a takeover (`take_over` from another owner)
also bumps the previous owner's `jobsvc:claims-lost:<name>` counter, which that worker WATCHes with the
batch of outcomes it records (`check_batch` reads the batch's claims right after the WATCH): a claim taken
over before the check is seen by it, one taken over after it makes the EXEC fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis import Redis
from rq.utils import as_text

from core import keys
from core.flow.limits import Limits
from core.rqadapter.flow_scripts import CLAIM, DROP, RECONCILE, RELEASE

# Settle a claim once the job's outcome is recorded. KEYS[1] = claims hash, KEYS[2] = job hash,
# KEYS[3] = the job's queue list; ARGV[1] = job id, ARGV[2] = worker name. Returns 1 released,
# 0 not ours, -1 the outcome was never recorded (still `started`, or `queued` but in no queue):
# the caller must recover the job before the claim may go.
_SETTLE = (
    RELEASE
    + """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
local status = redis.call('HGET', KEYS[2], 'status')
if status == 'started' or (status == 'queued' and not redis.call('LPOS', KEYS[3], ARGV[1])) then
  return -1
end
redis.call('HDEL', KEYS[1], ARGV[1])
release(ARGV[1])
return 1
"""
)

# Release the claims of jobs whose outcomes the same transaction recorded. KEYS[1] = claims hash;
# ARGV[1] = worker name, ARGV[2..] = job ids. A claim taken over meanwhile (this worker was presumed
# dead) is left to its new owner. Returns how many were released.
_RELEASE_MANY = (
    RELEASE
    + """
local released = 0
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    release(ARGV[i])
    released = released + 1
  end
end
return released
"""
)

# Compare-and-set the owner of a claim. KEYS[1] = claims hash, KEYS[2] = the expected owner's lost-claims
# counter; ARGV = job id, expected, new, the counter's TTL in seconds. A real change of owner bumps the counter
# (an EXEC of the previous owner that WATCHes it fails).
_TAKE_OVER = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  if ARGV[2] ~= ARGV[3] then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
    redis.call('INCR', KEYS[2])
    redis.call('EXPIRE', KEYS[2], ARGV[4])
  end
  return 1
end
return 0
"""

# The check of a batch of outcomes, run right after the WATCH of `lost_key(worker)`. KEYS[1] = claims hash,
# KEYS[2..] = keys whose existence is counted (the batch's dependents sets); ARGV[1] = worker name,
# ARGV[2..] = job ids. Returns {how many of KEYS[2..] exist, the job ids ARGV[1] does not hold...}. One EXISTS
# and one HMGET per 1,000 keys (Lua's `unpack` takes a few thousand values at most).
_CHECK_BATCH = """
local existing = 0
for i = 2, #KEYS, 1000 do
  existing = existing + redis.call('EXISTS', unpack(KEYS, i, math.min(i + 999, #KEYS)))
end
local out = {existing}
for i = 2, #ARGV, 1000 do
  local last = math.min(i + 999, #ARGV)
  local owners = redis.call('HMGET', KEYS[1], unpack(ARGV, i, last))
  for j = i, last do
    if owners[j - i + 1] ~= ARGV[1] then
      out[#out + 1] = ARGV[j]
    end
  end
end
return out
"""

#: Seconds a lost-claims counter outlives its last bump: far longer than any batch between WATCH and EXEC.
LOST_COUNTER_TTL = 3600


def lost_key(worker_name: str) -> str:
    """The counter every takeover of one of `worker_name`'s claims bumps (`core.keys.claims_lost`)."""
    return keys.claims_lost(worker_name)


class Claims:
    """The claims hash: who holds which job between dequeue and its settled outcome."""

    def __init__(self, connection: Redis, limits: Limits | None = None) -> None:
        self.connection = connection
        self.limits = limits or Limits()
        self._limit_args = self.limits.script_args()
        self._claim = connection.register_script(CLAIM)
        self._settle = connection.register_script(_SETTLE)
        self._take_over = connection.register_script(_TAKE_OVER)
        self._drop = connection.register_script(DROP)
        self._reconcile = connection.register_script(RECONCILE)

    def claim(self, queue_keys: Sequence[str], worker_name: str) -> tuple[str, str] | None:
        """Take the job owners' turns and the limits allow, first non-empty queue first: (queue key, job id)."""
        taken = self.claim_many(queue_keys, worker_name, 1)
        return taken[0] if taken else None

    def claim_many(self, queue_keys: Sequence[str], worker_name: str, count: int) -> list[tuple[str, str]]:
        """Take up to `count` jobs, highest-priority queue first, each claimed for `worker_name`."""
        raw = self._claim(keys=[keys.CLAIMS, *queue_keys], args=[worker_name, count, *self._limit_args]) or []
        return [(as_text(raw[i]), as_text(raw[i + 1])) for i in range(0, len(raw), 2)]

    def reconcile(self, queue_keys: Sequence[str]) -> list[str]:
        """Release the slots of jobs no longer claimed (a Redis restored from an older snapshot), and index the
        ids of `queue_keys`' lists pushed without it (anywhere in the list): the ids whose slots were freed."""
        return [as_text(job_id) for job_id in self._reconcile(keys=[keys.CLAIMS, *queue_keys])]

    def settle(self, job_key: str, queue_key: str, job_id: str, worker_name: str) -> int:
        """Release the claim once the job's outcome is recorded (1); -1: recover it first; 0: not ours."""
        return int(self._settle(keys=[keys.CLAIMS, job_key, queue_key], args=[job_id, worker_name]))

    @staticmethod
    def release_in(pipe: Any, job_ids: Sequence[str], worker_name: str) -> None:
        """Release `worker_name`'s claims on `job_ids`, queued on the MULTI that records their outcomes
        (after those writes: `settle` without its status check, which that MULTI makes moot). Sent as EVAL."""
        if job_ids:
            pipe.eval(_RELEASE_MANY, 1, keys.CLAIMS, worker_name, *job_ids)

    @staticmethod
    def drop_in(pipe: Any, job_id: str) -> None:
        """Drop the claim on `job_id` whoever holds it, and its slots, queued on `pipe` (the job is gone or
        settled). Sent as EVAL."""
        pipe.eval(DROP, 1, keys.CLAIMS, job_id)

    def drop(self, job_id: str) -> None:
        """Drop the claim on `job_id` whoever holds it, and its slots (the job is gone)."""
        self._drop(keys=[keys.CLAIMS], args=[job_id])

    def take_over(self, job_id: str, expected: str, new_owner: str) -> bool:
        """Move the claim from `expected` to `new_owner` if `expected` still holds it (the same owner twice:
        whether the claim is still its own)."""
        return bool(
            self._take_over(
                keys=[keys.CLAIMS, lost_key(expected)], args=[job_id, expected, new_owner, LOST_COUNTER_TTL]
            )
        )

    def holds(self, job_id: str, worker_name: str) -> bool:
        """Whether `worker_name` still holds the claim on `job_id` (an outcome may be recorded for it)."""
        return self.owner(job_id) == worker_name

    @staticmethod
    def check_batch(
        pipe: Any, worker_name: str, job_ids: Sequence[str], counted: Sequence[str]
    ) -> tuple[int, set[str]]:
        """On `pipe` WATCHing `lost_key(worker_name)` (immediate mode, one round trip): how many of the keys
        `counted` exist, and which of `job_ids` `worker_name` no longer holds."""
        reply = pipe.execute_command(
            "EVAL", _CHECK_BATCH, 1 + len(counted), keys.CLAIMS, *counted, worker_name, *job_ids
        )
        return int(reply[0]), {as_text(job_id) for job_id in reply[1:]}

    def owner(self, job_id: str) -> str | None:
        value = self.connection.hget(keys.CLAIMS, job_id)
        return None if value is None else as_text(value)

    @staticmethod
    def owners_in(pipe: Any, job_ids: Sequence[str]) -> None:
        """Queue the read of the owners of `job_ids` on `pipe`; its reply is a list (None: unclaimed)."""
        pipe.hmget(keys.CLAIMS, list(job_ids))

    def all(self) -> dict[str, str]:
        raw: dict[Any, Any] = self.connection.hgetall(keys.CLAIMS)
        return {as_text(job_id): as_text(owner) for job_id, owner in raw.items()}

    def held_by(self, worker_name: str) -> list[str]:
        return [job_id for job_id, owner in self.all().items() if owner == worker_name]
