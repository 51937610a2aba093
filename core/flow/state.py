"""What the flow-control limits look like now, read in one round trip (for `/stats`, `/metrics`, the CLI, the
console), and the one-line reason a queued job is held back (a job view's `waiting`).

`read_state(connection, limits)` (blocking client) and `read_state_async(client, limits)` (asyncio client) run
one script and return a `FlowState`:
- `limits`: name -> `LimitState(kind, running, limit, waiting)` for every limit in force: `<type>` for a type's
  concurrency, `<type>/<unit>` for its rate (`running` = starts in the current window), `key <owner>` for each
  owner with queued or running jobs when `KEY_CONCURRENCY` is set;
- `held_back`: limit name -> claims that limit refused since Redis started keeping count (a counter).
`waiting` counts the index's entries of that type or owner (a job canceled while queued counts until a claim
meets its entry).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import redis
import redis.asyncio as aioredis

from core.flow import keys as flow_keys
from core.flow.limits import Limits, Rate
from core.keys import CLAIMS
from core.queues import QUEUE_NAMES

#: RQ's queue list of each of the service's queues (RQ's `Queue.key`).
QUEUE_KEYS = [f"rq:queue:{name}" for name in QUEUE_NAMES]

# KEYS = RQ queue lists; ARGV = per limited type: name, window (ms, 0: no rate). Returns JSON.
_STATE = f"""local FLOW, HELD, REFUSED = '{flow_keys.FLOW}', '{flow_keys.HELD}', '{flow_keys.REFUSED}'
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local by_type, by_owner, running_owner = {{}}, {{}}, {{}}
for _, q in ipairs(KEYS) do
  for _, o in ipairs(redis.call('ZRANGE', FLOW .. ':ring:' .. q, 0, -1)) do
    for _, t in ipairs(redis.call('SMEMBERS', FLOW .. ':types:' .. q .. ':' .. o)) do
      local n = redis.call('LLEN', FLOW .. ':jobs:' .. q .. ':' .. o .. '|' .. t)
      by_type[t] = (by_type[t] or 0) + n
      by_owner[o] = (by_owner[o] or 0) + n
    end
  end
end
local key_prefix = FLOW .. ':running:key:'
for _, held in ipairs(redis.call('HVALS', HELD)) do
  for slot in string.gmatch(held, '[^\\n]+') do
    if string.sub(slot, 1, #key_prefix) == key_prefix then
      local o = string.sub(slot, #key_prefix + 1)
      running_owner[o] = (running_owner[o] or 0) + 1
    end
  end
end
local types = {{}}
for i = 1, #ARGV, 2 do
  local t, window = ARGV[i], tonumber(ARGV[i + 1])
  local starts = 0
  if window > 0 then starts = redis.call('ZCOUNT', FLOW .. ':starts:' .. t, '(' .. (now - window), '+inf') end
  types[t] = {{redis.call('HLEN', FLOW .. ':running:type:' .. t), starts, by_type[t] or 0}}
end
local owners = {{}}
for o, n in pairs(by_owner) do owners[o] = {{running_owner[o] or 0, n}} end
for o, n in pairs(running_owner) do owners[o] = {{n, by_owner[o] or 0}} end
local refused = {{}}
local raw = redis.call('HGETALL', REFUSED)
for i = 1, #raw, 2 do refused[raw[i]] = tonumber(raw[i + 1]) end
return cjson.encode({{types = types, owners = owners, refused = refused}})
"""


@dataclass(frozen=True)
class LimitState:
    kind: Literal["type", "rate", "key"]
    running: int
    limit: int
    waiting: int

    def as_json(self) -> dict[str, int]:
        return {"running": self.running, "limit": self.limit, "waiting": self.waiting}


@dataclass(frozen=True)
class FlowState:
    limits: dict[str, LimitState] = field(default_factory=dict)
    held_back: dict[str, int] = field(default_factory=dict)


def rate_name(job_type: str, rate: Rate) -> str:
    return f"{job_type}/{rate.unit}"


def key_name(owner: str) -> str:
    return f"key {owner}"


def _args(limits: Limits) -> list[Any]:
    args: list[Any] = []
    for name in limits.limited_types():
        rate = limits.rates.get(name)
        args += [name, rate.window_ms if rate else 0]
    return args


def _parse(raw: Any, limits: Limits) -> FlowState:
    data = json.loads(raw)
    types = data.get("types") or {}
    found: dict[str, LimitState] = {}
    for name in limits.limited_types():
        running, starts, waiting = types.get(name, [0, 0, 0])
        if name in limits.concurrency:
            found[name] = LimitState("type", int(running), limits.concurrency[name], int(waiting))
        if name in limits.rates:
            rate = limits.rates[name]
            found[rate_name(name, rate)] = LimitState("rate", int(starts), rate.count, int(waiting))
    if limits.key_concurrency:
        for owner, (running, waiting) in sorted((data.get("owners") or {}).items()):
            found[key_name(owner)] = LimitState("key", int(running), limits.key_concurrency, int(waiting))
    held_back = {str(name): int(count) for name, count in (data.get("refused") or {}).items()}
    return FlowState(found, held_back)


def read_state(connection: redis.Redis, limits: Limits) -> FlowState:
    """The state of every limit in force, in one round trip."""
    return _parse(connection.eval(_STATE, len(QUEUE_KEYS), *QUEUE_KEYS, *_args(limits)), limits)


async def read_state_async(client: aioredis.Redis, limits: Limits) -> FlowState:
    """`read_state` on an asyncio client."""
    raw = await client.eval(_STATE, len(QUEUE_KEYS), *QUEUE_KEYS, *_args(limits))
    return _parse(raw, limits)


# -- one job ---------------------------------------------------------------------------------

# KEYS = the type's slots, its window, the owner's slots, the claims hash; ARGV = window (ms), job id. Returns
# {running, starts, owner's running}, or {} for a job already claimed (taken, about to start).
_JOB = """if redis.call('HEXISTS', KEYS[4], ARGV[2]) == 1 then return {} end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local starts = 0
if tonumber(ARGV[1]) > 0 then starts = redis.call('ZCOUNT', KEYS[2], '(' .. (now - tonumber(ARGV[1])), '+inf') end
return {redis.call('HLEN', KEYS[1]), starts, redis.call('HLEN', KEYS[3])}
"""


def _job_args(limits: Limits, job_id: str, job_type: str, owner: str) -> list[Any]:
    rate = limits.rates.get(job_type)
    keys = [flow_keys.running_type(job_type), flow_keys.starts(job_type), flow_keys.running_key(owner), CLAIMS]
    return [_JOB, 4, *keys, rate.window_ms if rate else 0, job_id]


def is_limited(limits: Limits, job_type: str) -> bool:
    """Whether a job of `job_type` may be held back at all (no read is needed otherwise)."""
    return job_type in limits.concurrency or job_type in limits.rates or limits.key_concurrency is not None


async def waiting_reason_async(
    client: aioredis.Redis, limits: Limits, job_id: str, job_type: str, owner: str
) -> str | None:
    """Why queued job `job_id` of `job_type` by `owner` cannot start now, or None (no limit applies, or a worker
    has claimed it): one round trip, none if no limit applies."""
    if not is_limited(limits, job_type):
        return None
    counts = await client.eval(*_job_args(limits, job_id, job_type, owner))
    return waiting_reason(limits, job_type, owner, [int(count) for count in counts]) if counts else None


def waiting_reason(limits: Limits, job_type: str, owner: str, counts: list[int]) -> str | None:
    """The one-line reason from the counts (running of the type, starts in its window, running of the owner)."""
    running, starts, owner_running = counts
    concurrency = limits.concurrency.get(job_type)
    if concurrency is not None and running >= concurrency:
        return f"{job_type}: {running} of {concurrency} running"
    rate = limits.rates.get(job_type)
    if rate is not None and starts >= rate.count:
        return f"{job_type}: {starts} starts in the last {rate.unit} (limit {rate})"
    if limits.key_concurrency is not None and owner_running >= limits.key_concurrency:
        return f"key {owner}: {owner_running} of {limits.key_concurrency} running"
    return None
