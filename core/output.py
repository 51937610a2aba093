"""A job's streamed output in Redis: numbered chunks, capped to the newest `OUTPUT_MAX_BYTES`.

Two keys per job that wrote output (none for a job that did not): the list `keys.output(id)`
of chunks, oldest first, and the hash `keys.output_info(id)` (`seq`: chunks ever written, the
newest chunk's number; `first`: the oldest kept; `bytes` kept; `dropped` bytes; `dropped_after`:
see below; `attempt` of the newest chunk). One script appends a chunk, drops the oldest bytes
over the cap (whole chunks, then the head of the oldest kept one at a UTF-8 boundary), sets both
keys' TTL and announces the job on `keys.EVENTS_CHANNEL`, atomically.

Each chunk records `after`: the number of the newest progress event when it was written. Output
and progress events share one numbering on `GET /jobs/{id}/events` (`core.events.interleave`):
a chunk comes after the progress events numbered up to its `after`, so its event id is
`after + seq`, and a progress event's id is its own number plus the chunks written before it.

A retried attempt appends to what earlier attempts wrote, after the line `ATTEMPT_MARKER`. A run
whose attempt was superseded (its worker was presumed dead and the job started again elsewhere: the
job's `meta["attempt"]` is newer) writes nothing: a frozen worker that comes back cannot add to the
output of the job recorded elsewhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from core import keys

#: Written before the first chunk of an attempt that follows output of an earlier attempt.
ATTEMPT_MARKER = "\n--- attempt {attempt} ---\n"

#: `APPEND`'s reply when the writer's attempt was superseded (chunk numbers start at 1).
SUPERSEDED = 0

#: The first line of `GET /jobs/{id}/output` when older output was dropped.
DROPPED_NOTICE = "[{dropped} earlier bytes of output dropped: only the newest {kept} bytes are kept]\n"

# KEYS: chunks, info, the job's hash. ARGV: after, attempt, text, cap, ttl_ms (0: no expiry, < 0: unchanged),
# marker, channel, job id, and how many bytes of the text the writer cut already (it never sends more than the
# cap; a marker put before text that fills the cap is cut again here). Replies the chunk's number, or
# SUPERSEDED (nothing written) when the job's meta names a newer attempt than the writer's.
APPEND = """
local chunks, info = KEYS[1], KEYS[2]
local ok, meta = pcall(cjson.decode, redis.call('HGET', KEYS[3], 'meta') or '{}')
if ok and type(meta) == 'table' and (tonumber(meta['attempt']) or 0) > tonumber(ARGV[2]) then return 0 end
local text = ARGV[3]
local cap = tonumber(ARGV[4])
local last = redis.call('HGET', info, 'attempt')
if last and last ~= ARGV[2] then text = ARGV[6] .. text end
redis.call('HSETNX', info, 'first', 1)
local seq = redis.call('HINCRBY', info, 'seq', 1)
local cut = tonumber(ARGV[9])
if cut > 0 then
  -- the writer kept only the end of this text: everything before it is older than what was cut
  local last = redis.call('LINDEX', chunks, -1)
  if last then
    redis.call('HSET', info, 'dropped_after', string.sub(last, 1, string.find(last, ':', 1, true) - 1))
    redis.call('DEL', chunks)
  end
  cut = cut + tonumber(redis.call('HGET', info, 'bytes') or '0')
  redis.call('HSET', info, 'first', seq, 'bytes', 0)
end
redis.call('HSET', info, 'attempt', ARGV[2])
redis.call('RPUSH', chunks, ARGV[1] .. ':' .. ARGV[2] .. ':' .. text)
local excess = redis.call('HINCRBY', info, 'bytes', #text) - cap
local dropped = 0
while excess > 0 do
  local head = redis.call('LINDEX', chunks, 0)
  local a = string.find(head, ':', 1, true)
  local b = string.find(head, ':', a + 1, true)
  local size = #head - b
  if size <= excess and redis.call('LLEN', chunks) > 1 then
    redis.call('LPOP', chunks)
    redis.call('HINCRBY', info, 'first', 1)
    redis.call('HSET', info, 'dropped_after', string.sub(head, 1, a - 1))
    dropped = dropped + size
    excess = excess - size
  else
    local cut = b + excess
    while cut < #head do
      local byte = string.byte(head, cut + 1)
      if byte < 128 or byte >= 192 then break end
      cut = cut + 1
    end
    redis.call('LSET', chunks, 0, string.sub(head, 1, b) .. string.sub(head, cut + 1))
    dropped = dropped + cut - b
    excess = 0
  end
end
if dropped > 0 then
  redis.call('HINCRBY', info, 'bytes', -dropped)
end
if dropped + cut > 0 then
  redis.call('HINCRBY', info, 'dropped', dropped + cut)
end
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  redis.call('PEXPIRE', chunks, ttl)
  redis.call('PEXPIRE', info, ttl)
elseif ttl == 0 then
  redis.call('PERSIST', chunks)
  redis.call('PERSIST', info)
end
redis.call('PUBLISH', ARGV[7], ARGV[8])
return seq
"""

# KEYS: chunks, info. ARGV: after (>= 0: chunks numbered above it; < 0: the last -after chunks).
READ = """
local info = redis.call('HMGET', KEYS[2], 'seq', 'first', 'dropped', 'dropped_after')
if not info[1] then return {0, 1, 0, 0} end
local after = tonumber(ARGV[1])
local start = after
if after >= 0 then
  start = math.max(0, after + 1 - tonumber(info[2]))
end
local reply = {tonumber(info[1]), tonumber(info[2]), tonumber(info[3] or 0), tonumber(info[4] or 0)}
for _, chunk in ipairs(redis.call('LRANGE', KEYS[1], start, -1)) do
  reply[#reply + 1] = chunk
end
return reply
"""

#: How many of the newest chunks a stream opened without `Last-Event-ID` reads first.
TAIL = 16


@dataclass(frozen=True)
class Chunk:
    """One stored chunk: its number (from 1), the progress event it follows, its attempt, its text."""

    seq: int
    after: int
    attempt: int
    text: str

    @property
    def event_id(self) -> int:
        return self.after + self.seq


@dataclass(frozen=True)
class Output:
    """What `READ` returned: the newest chunk's number, the oldest kept, bytes dropped, and chunks read."""

    total: int
    first: int
    dropped: int
    dropped_after: int
    chunks: list[Chunk]

    @property
    def complete(self) -> bool:
        """True if `chunks` holds every kept chunk."""
        return not self.chunks or self.chunks[0].seq <= self.first

    def text(self) -> str:
        return "".join(chunk.text for chunk in self.chunks)


NO_OUTPUT = Output(0, 1, 0, 0, [])


def read_keys(job_id: str) -> list[str]:
    return [keys.output(job_id), keys.output_info(job_id)]


def parse(reply: list[Any]) -> Output:
    """`READ`'s reply as an `Output`."""
    total, first, dropped, dropped_after = (int(value) for value in reply[:4])
    raw = reply[4:]
    chunks = []
    for seq, item in enumerate(raw, start=total - len(raw) + 1):
        data = item if isinstance(item, bytes) else str(item).encode()
        after, attempt, text = data.split(b":", 2)
        chunks.append(Chunk(seq, int(after), int(attempt), text.decode(errors="replace")))
    return Output(total, first, dropped, dropped_after, chunks)


def rendered(output: Output, cap: int) -> str:
    """The whole kept output as `GET /jobs/{id}/output` answers it (`output` read from chunk 0)."""
    if not output.dropped:
        return output.text()
    return DROPPED_NOTICE.format(dropped=output.dropped, kept=cap) + output.text()


def newest_bytes(data: bytes, limit: int) -> bytes:
    """UTF-8 `data`, only its last `limit` bytes (cut at a character boundary) when longer."""
    if len(data) <= limit:
        return data
    cut = len(data) - limit
    while cut < len(data) and 0x80 <= data[cut] < 0xC0:
        cut += 1
    return data[cut:]


def script_sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


READ_SHA = script_sha(READ)
APPEND_SHA = script_sha(APPEND)


async def fetch(client: aioredis.Redis, job_id: str, after: int = 0) -> Output:
    """The job's output chunks numbered above `after` (all kept with 0; the last `-after` when negative)."""
    chunks_key, info_key = read_keys(job_id)
    try:
        reply = await client.evalsha(READ_SHA, 2, chunks_key, info_key, after)
    except NoScriptError:
        await client.script_load(READ)
        reply = await client.evalsha(READ_SHA, 2, chunks_key, info_key, after)
    return parse(reply)
