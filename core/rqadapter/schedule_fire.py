"""Firing a due schedule in ONE script run: check it is still due, then enqueue its run and advance it.

A schedule sits in `jobsvc:schedules:due` scored by its next due time (ms). Every worker process
looks at the due head of that set and computes, in Python, what the pass over a due schedule does
(`core.schedules.timing.plan_firing`): which due time fires, how many are skipped, the next one.
This script then applies it atomically, and only if the schedule's score and version are still the
ones that worker read: a second worker (or a retry after a crash) finds the score moved and writes
nothing. So each due time gives one job however many workers race, and a worker dying anywhere
before the script leaves the schedule due for the next one; after it, everything is written.

The run itself is enqueued by the web's submission script (`core.rqadapter.scripts._SUBMIT`,
wrapped here as a Lua function): the same RQ writes, owner quota and listing indexes as `POST /jobs`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rq.job import Job

from core import keys
from core.rqadapter.scripts import _SUBMIT, submit_args

#: Replies (first element).
STALE = 0  # the schedule was fired, changed or deleted since it was read: nothing written
FIRED = 1  # the run was enqueued: {1, skipped}
SKIPPED = 2  # no run this pass (overlap, quota refused, or only skipped due times): {2, skipped, submit code}

# ARGV[1..12]: schedule hash, due set, schedule id, due score read, version read, next due score ('' =
# leave the due set), skipped due times, fire ('1' or ''), overlap allowed ('1' or ''), the due time
# fired (Unix s), runs index, runs index cap; then the submission script's ARGV (when firing).
_FIRE = """
local hash, due_set, id = ARGV[1], ARGV[2], ARGV[3]
local score = redis.call('ZSCORE', due_set, id)
if not score or tonumber(score) ~= tonumber(ARGV[4]) then return {0} end
if redis.call('HGET', hash, 'version') ~= ARGV[5] then return {0} end
local skipped, fire, code = tonumber(ARGV[7]), ARGV[8] == '1', -1
if fire and ARGV[9] ~= '1' then
  local last = redis.call('HGET', hash, 'last_job_id')
  if last and last ~= '' then
    local status = redis.call('HGET', PREFIX .. last, 'status')
    if status and ACTIVE[status] then fire = false; skipped = skipped + 1 end
  end
end
if fire then
  local reply = submit({unpack(ARGV, 13, #ARGV)})
  code = reply[1]
  if code == 0 then
    local job_id = ARGV[12 + 6]  -- the job id of the submission ARGV
    redis.call('HSET', hash, 'last_run_at', ARGV[10], 'last_job_id', job_id)
    redis.call('HINCRBY', hash, 'runs', 1)
    redis.call('HINCRBY', METRICS, 'runs', 1)
    redis.call('ZREMRANGEBYRANK', ARGV[11], 0, -1 - tonumber(ARGV[12]))
  else
    fire = false; skipped = skipped + 1
  end
end
if skipped > 0 then
  redis.call('HINCRBY', hash, 'skipped', skipped)
  redis.call('HINCRBY', METRICS, 'skipped', skipped)
end
redis.call('ZADD', due_set, ARGV[6], id)
redis.call('HSET', hash, 'next_run_at', ARGV[6])
if fire then return {1, skipped} end
return {2, skipped, code}
"""


def fire_source(active_statuses: Iterable[bytes]) -> str:
    """The firing script: `active_statuses` count against quotas and make a run "still waiting or running"."""
    active = ", ".join(f"['{status.decode()}'] = true" for status in sorted(active_statuses))
    return (
        f"local ACTIVE = {{{active}}}\nlocal SEQ = '{keys.QUEUE_SEQ}'\n"
        f"local PREFIX = '{Job.redis_job_namespace_prefix}'\nlocal METRICS = '{keys.SCHEDULE_METRICS}'\n"
        f"local function submit(ARGV)\n{_SUBMIT}\nend\n{_FIRE}"
    )


@dataclass(frozen=True)
class FireCall:
    """One pass over a due schedule, as the script's arguments."""

    schedule_id: str
    due_score: int  # as read from the due set
    version: int  # as read from the schedule's hash
    next_score: int
    skipped: int
    fired_for: float | None  # the due time of the run (None: no run this pass)
    overlap: bool
    runs_cap: int


def fire_args(
    call: FireCall,
    *,
    commands: Sequence[Sequence[Any]] = (),
    job_id: str = "",
    quota: tuple[str, int] | None = None,
    listing: tuple[Sequence[str], float, str] | None = None,
    pushed_onto: str | None = None,
) -> list[Any]:
    """ARGV of the firing script; `commands` and the rest are the run's submission (see `submit_args`)."""
    head: list[Any] = [
        keys.schedule(call.schedule_id),
        keys.SCHEDULES_DUE,
        call.schedule_id,
        call.due_score,
        call.version,
        call.next_score,
        call.skipped,
        "1" if call.fired_for is not None else "",
        "1" if call.overlap else "",
        repr(call.fired_for) if call.fired_for is not None else "",
        keys.schedule_runs(call.schedule_id),
        call.runs_cap,
    ]
    if call.fired_for is None:
        return head
    return head + submit_args(commands, job_id, quota=quota, listing=listing, pushed_onto=pushed_onto)
