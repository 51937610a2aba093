"""Lua for batches: the event script every job announcement runs, and the script that writes members.

Every change of a job (a status saved, a progress report) is announced with `EVENT` (`core.events`):
it publishes the job's id as before and, when the job is a batch member (its hash names the batch in
`core.keys.BATCH_FIELD`), moves the batch's counters by what changed since that member was last
counted: O(1) per event, never a read of the other members. The member's last counted status and
progress are kept in the batch's members hash, so an event seen twice moves nothing, and a status
never announced (the scheduler queueing a due job, say) is made up for by the member's next event.

The member whose end completes the batch also ends it in the same script run, so exactly one event
does, whoever sends it: the batch's status and `ended_at` are set, its staged jobs (the `on_complete`
job, the callback delivery) are written onto their queues as RQ's enqueue writes them, the batch's
keys get their retention TTL, and the end is published on the batch's channel. Everything after the
PUBLISH runs under `pcall`, so a batch problem never makes the announcement (or the caller's
transaction) fail.

`SUBMIT_MANY` writes a chunk of members with the batch record (first chunk) in one script run. Members
that differ only by id (the same type, arguments and options: the usual batch) share one `Template`:
the job hash RQ writes for a queued job, sent once per chunk, each member adding its id and creation
time; each list, index and set then gets the chunk's members in one command.

About 360 lines, most of them the two scripts' Lua: each script stays beside the Python that lays out
its arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rq.job import Job
from rq.queue import Queue

from core import keys
from core.rqadapter.enqueue import queued_job_writes

#: Members' statuses after which they change no more (unless retried by hand).
ENDED = ("finished", "failed", "stopped", "canceled")

#: The batch hash's fields for the members' count per status, `n:<status>`.
COUNT_PREFIX = "n:"

#: Seconds between two throttled change notices on a batch's channel (its end is never throttled).
NOTICE_INTERVAL_MS = 200

_EVENT = """
local job_id = ARGV[2]
redis.call('PUBLISH', ARGV[1], job_id)
local job_key = JOB .. job_id
local batch_id = redis.call('HGET', job_key, BATCH_FIELD)
if not batch_id then return 0 end

local function iso_now()
  local t = redis.call('TIME')
  local s, us = tonumber(t[1]), tonumber(t[2])
  local days = math.floor(s / 86400)
  local rem = s - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400 + (m <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%06dZ', y, m, d,
    math.floor(rem / 3600), math.floor(rem % 3600 / 60), rem % 60, us)
end

local function release(bk, id, queue, at)
  local staged = STAGED .. id
  local fields = redis.call('HGETALL', staged)
  if #fields == 0 then return end
  local job_key = JOB .. id
  redis.call('HSET', job_key, unpack(fields))
  redis.call('HSET', job_key, 'status', 'queued', 'enqueued_at', at)
  redis.call('SADD', QUEUES, QUEUE .. queue)
  redis.call('RPUSH', QUEUE .. queue, id)
  redis.call('DEL', staged)
  local index = redis.call('HGET', bk, 'index:' .. id)
  if index then
    local score
    for word in string.gmatch(index, '%S+') do
      if score then redis.call('ZADD', word, score, id) else score = word end
    end
  end
end

local function finish(bk, mk, batch_id, all_finished)
  local at = iso_now()
  local status = redis.call('HGET', bk, 'status')
  if status == 'running' then status = all_finished and 'finished' or 'failed' end
  redis.call('HSET', bk, 'done', '1', 'ended_at', string.sub(at, 1, 23) .. 'Z', 'status', status)
  redis.call('SREM', RUNNING, batch_id)
  redis.call('HINCRBY', ENDED_COUNTS, status, 1)
  local staged = redis.call('HGET', bk, 'end_jobs') or ''
  for id, queue in string.gmatch(staged, '(%S+) (%S+)') do release(bk, id, queue, at) end
  local ttl = tonumber(redis.call('HGET', bk, 'ttl'))
  if ttl then
    for _, key in ipairs({bk, mk, bk .. ':jobs'}) do redis.call('EXPIRE', key, ttl) end
  end
  redis.call('PUBLISH', CHANNEL .. batch_id, 'end')
end

local function sync()
  local bk = BATCH .. batch_id
  local mk = bk .. ':members'
  local status = redis.call('HGET', job_key, 'status')
  if not status or redis.call('EXISTS', bk) == 0 then return 0 end
  local progress = 100
  if status ~= 'finished' then
    progress = 0
    local ok, meta = pcall(cjson.decode, redis.call('HGET', job_key, 'meta') or '{}')
    if ok and type(meta) == 'table' then progress = tonumber(meta['progress']) or 0 end
  end
  local before = redis.call('HGET', mk, job_id)
  local was, had = nil, 0
  if before then
    local space = string.find(before, ' ')
    was, had = string.sub(before, 1, space - 1), tonumber(string.sub(before, space + 1))
  end
  if was == status and had == progress then return 0 end
  redis.call('HSET', mk, job_id, status .. ' ' .. progress)
  if was ~= status then
    if was then redis.call('HINCRBY', bk, COUNT .. was, -1) end
    redis.call('HINCRBY', bk, COUNT .. status, 1)
  end
  if progress ~= had then redis.call('HINCRBYFLOAT', bk, 'psum', progress - had) end
  local r = redis.call('HMGET', bk, 'total', 'done', COUNT .. 'finished', COUNT .. 'failed', COUNT .. 'stopped',
    COUNT .. 'canceled')
  local total, finished = tonumber(r[1]) or -1, tonumber(r[3]) or 0
  local ended = finished + (tonumber(r[4]) or 0) + (tonumber(r[5]) or 0) + (tonumber(r[6]) or 0)
  if ended == total and r[2] ~= '1' then
    finish(bk, mk, batch_id, finished == total)
    return 2
  end
  if redis.call('SET', bk .. ':tick', '1', 'PX', NOTICE_MS, 'NX') then
    redis.call('PUBLISH', CHANNEL .. batch_id, 'change')
  end
  return 1
end

local ok, outcome = pcall(sync)
if ok then return outcome end
return -1
"""

# ARGV: active-jobs set ('' = none), quota limit, members this quota check counts (0 = no check), batch id,
# number of head command arguments h; then h arguments (`count, *args` runs: the batch record, staged jobs);
# then the number of templates and each template: queue name, number of indexes n, n indexes, number of
# hash arguments f, f arguments (field, value pairs); then the members, each either
#   't', job id, listing score, created_at, template number: a queued job whose hash is the template's, or
#   'c', job id, listing score, number of indexes n, n indexes, number of command arguments c, c arguments.
# Reply {0, counts by status...} or {2, active jobs}.
_SUBMIT_MANY = """
local active_key, limit, counting = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local batch_id = ARGV[4]
if active_key ~= '' and counting > 0 then
  local active = 0
  for _, member in ipairs(redis.call('SMEMBERS', active_key)) do
    local status = redis.call('HGET', JOB .. member, 'status')
    if status and ACTIVE[status] then active = active + 1 else redis.call('SREM', active_key, member) end
  end
  if active + counting > limit then return {2, active} end
end
local function run(i, last)
  while i <= last do
    local count = tonumber(ARGV[i])
    redis.call(unpack(ARGV, i + 1, i + count))
    i = i + count + 1
  end
end
local head = tonumber(ARGV[5])
run(6, 5 + head)
local bk = BATCH .. batch_id
local mk, jobs = bk .. ':members', bk .. ':jobs'
local i = 6 + head
local templates = {}
local count = tonumber(ARGV[i])
i = i + 1
for t = 1, count do
  local tpl = {queue = ARGV[i], indexes = {}, fields = {}, ids = {}, scored = {}}
  local n = tonumber(ARGV[i + 1])
  for k = 1, n do tpl.indexes[k] = ARGV[i + 1 + k] end
  i = i + 2 + n
  local f = tonumber(ARGV[i])
  for k = 1, f do
    tpl.fields[k] = ARGV[i + k]
    if k % 2 == 0 and ARGV[i + k - 1] == 'created_at' then tpl.created = k end
    if k % 2 == 0 and ARGV[i + k - 1] == 'enqueued_at' then tpl.enqueued = k end
  end
  i = i + 1 + f
  templates[t] = tpl
end
local counts, states, scored, ids = {}, {}, {}, {}
local last = #ARGV
while i <= last do
  local job_id, score = ARGV[i + 1], ARGV[i + 2]
  local status = 'queued'
  if ARGV[i] == 't' then
    local tpl = templates[tonumber(ARGV[i + 4])]
    tpl.fields[tpl.created], tpl.fields[tpl.enqueued] = ARGV[i + 3], ARGV[i + 3]
    redis.call('HSET', JOB .. job_id, unpack(tpl.fields))
    tpl.ids[#tpl.ids + 1] = job_id
    tpl.scored[#tpl.scored + 1] = score
    tpl.scored[#tpl.scored + 1] = job_id
    i = i + 5
  else
    local n = tonumber(ARGV[i + 3])
    for k = i + 4, i + 3 + n do redis.call('ZADD', ARGV[k], score, job_id) end
    local c = tonumber(ARGV[i + 4 + n])
    run(i + 5 + n, i + 4 + n + c)
    i = i + 5 + n + c
    redis.call('HSET', JOB .. job_id, BATCH_FIELD, batch_id)
    status = redis.call('HGET', JOB .. job_id, 'status')
  end
  states[#states + 1] = job_id
  states[#states + 1] = status .. ' 0'
  scored[#scored + 1] = score
  scored[#scored + 1] = job_id
  ids[#ids + 1] = job_id
  counts[status] = (counts[status] or 0) + 1
end
for _, tpl in ipairs(templates) do
  if #tpl.ids > 0 then
    redis.call('SADD', QUEUES, QUEUE .. tpl.queue)
    redis.call('RPUSH', QUEUE .. tpl.queue, unpack(tpl.ids))
    redis.call('PUBLISH', WAKE, QUEUE .. tpl.queue)
    for _, index in ipairs(tpl.indexes) do redis.call('ZADD', index, unpack(tpl.scored)) end
  end
end
if #ids > 0 then
  redis.call('ZADD', jobs, unpack(scored))
  redis.call('HSET', mk, unpack(states))
  if active_key ~= '' then redis.call('SADD', active_key, unpack(ids)) end
end
local reply = {0}
for status, n in pairs(counts) do
  redis.call('HINCRBY', bk, COUNT .. status, n)
  reply[#reply + 1] = status
  reply[#reply + 1] = n
end
return reply
"""


def _constants() -> str:
    names = {
        "JOB": Job.redis_job_namespace_prefix,
        "QUEUE": Queue.redis_queue_namespace_prefix,
        "QUEUES": Queue.redis_queues_keys,
        "BATCH_FIELD": keys.BATCH_FIELD,
        "BATCH": keys.batch(""),
        "STAGED": keys.staged_job(""),
        "CHANNEL": keys.batch_channel(""),
        "WAKE": keys.WAKE_CHANNEL,
        "RUNNING": keys.BATCHES_RUNNING,
        "ENDED_COUNTS": keys.BATCHES_ENDED,
        "COUNT": COUNT_PREFIX,
    }
    lines = [f"local {name} = '{value}'" for name, value in names.items()]
    return "\n".join([*lines, f"local NOTICE_MS = {NOTICE_INTERVAL_MS}"])


def _compact(source: str) -> str:
    """The script without indentation and blank lines: it is sent with every job event."""
    return "\n".join(line.strip() for line in source.splitlines() if line.strip())


#: The announcement script (`core.events.announcement`): ARGV = the events channel, the job id.
EVENT = _compact(_constants() + _EVENT)


def event_command(channel: str, job_id: str) -> tuple[str, str, int, str, str]:
    """The command that announces `job_id` changed on `channel` and keeps its batch, if any, current."""
    return ("EVAL", EVENT, 0, channel, job_id)


def submit_many_source(active_statuses: Iterable[bytes]) -> str:
    """The member-writing script, counting jobs in `active_statuses` against an owner's quota."""
    active = ", ".join(f"['{status.decode()}'] = true" for status in sorted(active_statuses))
    return _compact(f"local ACTIVE = {{{active}}}\n{_constants()}\n{_SUBMIT_MANY}")


def flatten(commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Commands as `count, *args` runs (the scripts' argument format)."""
    flat: list[Any] = []
    for args in commands:
        flat.append(len(args))
        flat.extend(args)
    return flat


def member_args(job_id: str, score: float, indexes: Sequence[str], commands: Sequence[Sequence[Any]]) -> list[Any]:
    """One member written by its own commands, as SUBMIT_MANY's ARGV takes it."""
    flat = flatten(commands)
    return ["c", job_id, score, len(indexes), *indexes, len(flat), *flat]


def templated_member_args(job_id: str, score: float, created_at: str, template: int) -> list[Any]:
    """One queued member whose hash is template number `template` (1-based) with its own `created_at`."""
    return ["t", job_id, score, created_at, template]


@dataclass(frozen=True)
class Template:
    """The hash of a queued job (RQ's `Queue.enqueue_job` writes for a plain job) that members share, but for
    their id and creation time; with the listing indexes they all enter."""

    queue: str
    indexes: tuple[str, ...]
    fields: tuple[Any, ...]  # field, value, field, value...

    @classmethod
    def of(cls, queue: Queue, job: Job, batch_id: str, indexes: Sequence[str]) -> Template:
        """The template from `job`, a plain job (`enqueue.is_plain`) built for `queue` and not enqueued."""
        _sadd, (_hset, _key, *fields), _rpush = queued_job_writes(queue, job)
        return cls(queue.name, tuple(indexes), (*fields, keys.BATCH_FIELD, batch_id))

    def args(self) -> list[Any]:
        return [self.queue, len(self.indexes), *self.indexes, len(self.fields), *self.fields]


def submit_many_args(
    batch_id: str,
    head: Sequence[Sequence[Any]],
    members: Sequence[Any],
    quota: tuple[str, int, int] | None = None,
    templates: Sequence[Template] = (),
) -> list[Any]:
    """SUBMIT_MANY's ARGV: `head` commands, `templates`, then `members` (concatenated `member_args` and
    `templated_member_args`); `quota` is (active set, limit, members to count against it)."""
    active_key, limit, counting = quota or ("", 0, 0)
    flat_head = flatten(head)
    shared = [part for template in templates for part in template.args()]
    return [active_key, limit, counting, batch_id, len(flat_head), *flat_head, len(templates), *shared, *members]


def parse_submitted(reply: Sequence[Any]) -> tuple[int, dict[str, int]]:
    """(0, members written per status) or (2, the owner's active jobs)."""
    code = int(reply[0])
    if code != 0:
        return code, {"active": int(reply[1])}
    rest = [item.decode() if isinstance(item, bytes) else item for item in reply[1:]]
    return 0, {str(status): int(n) for status, n in zip(rest[::2], rest[1::2], strict=True)}


def staged_commands(job: Job) -> list[tuple[Any, ...]]:
    """Stage `job` (built, not enqueued): its hash, written onto its queue when its batch ends."""
    fields = [part for pair in job.to_dict().items() for part in pair]
    return [("DEL", keys.staged_job(job.id)), ("HSET", keys.staged_job(job.id), *fields)]


_WORD = re.compile(r"^\S+$")


def end_jobs_field(jobs: Sequence[tuple[str, str]]) -> str:
    """The batch field naming its staged jobs: "id queue id queue"."""
    for job_id, queue in jobs:
        if not (_WORD.match(job_id) and _WORD.match(queue)):
            raise ValueError(f"not a job id and queue name: {job_id!r} {queue!r}")
    return " ".join(f"{job_id} {queue}" for job_id, queue in jobs)
