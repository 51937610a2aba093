"""Flow control's Lua: the claim that picks a job owners' turns and the limits allow, and the release of slots.

RQ's queue lists stay the truth of what is queued (rq-dashboard, counts and cancel read them). Beside each, the
fair index (`core.flow.keys`) holds the same ids by owner and job type. The claim script, for each queue in
priority order: first adopts into the index the ids near the head and the tail of RQ's list that it lacks (pushed
by code that does not write the index: RQ's own retries, scheduler and dependents, rq-dashboard), then serves the owner
whose turn it is (the lowest turn in the ring) with its oldest job of a type whose limits allow a start, and
removes that id from RQ's list: removed (LREM 1) means it is ours to claim; not found means the entry was stale
(canceled, deleted, taken another way) and it goes on. A queue where no owner may start anything is passed for
the next lower one: a held-back job never blocks the jobs behind it.

Claiming takes the slots (an entry `job id -> worker` in each limited slot hash) and records the start in the
type's rate window, in the same step as the claim; every script that drops a claim releases its slots (`RELEASE`).
"""

from __future__ import annotations

from rq.job import Job

from core.flow import keys as flow_keys

JOB_KEY_PREFIX = Job.redis_job_namespace_prefix

#: Ids near the head of RQ's list the claim checks against the index, per queue and call.
ADOPT_WINDOW = 16
#: Ids of each RQ list the periodic check looks at for ids the index lacks.
ADOPT_MAX = 20_000
#: Stale index entries one claim call may skip before it answers (each is removed as it is met).
STALE_BUDGET = 1000

# A Lua function releasing the slots job `id` holds (defined before the scripts that drop claims).
RELEASE = f"""local function release(id)
  local held = redis.call('HGET', '{flow_keys.HELD}', id)
  if held then
    for slot in string.gmatch(held, '[^\\n]+') do redis.call('HDEL', slot, id) end
    redis.call('HDEL', '{flow_keys.HELD}', id)
  end
end
"""

_ADOPT = """
-- Index, in RQ's order, the ids at places first..last of RQ's list q that the index lacks, each in its owner's
-- list of its type: right after the nearest id of that list before it in the range, else at the list's front
-- (head: nothing of that list is older) or end (tail), with `seq` ('0' at the head, else now). Returns nil for an
-- empty range, else how many it indexed.
local function adopt(q, first, last, seq, front)
  local ids = redis.call('LRANGE', q, first, last)
  if #ids == 0 then return nil end
  local ix = FLOW .. ':ix:' .. q
  local known = redis.call('HMGET', ix, unpack(ids))
  local placed, adopted = {}, 0
  for j = 1, #ids do
    if known[j] then
      local kseq, klist = string.match(known[j], '^([^\\n]*)\\n(.*)$')
      if klist then placed[klist] = kseq .. ':' .. ids[j] end
    else
      local o, t = '', ''
      local raw = redis.call('HGET', JOB_PREFIX .. ids[j], 'meta')
      local ok, meta = pcall(cjson.decode, raw or '')
      if ok and type(meta) == 'table' then
        if type(meta.owner) == 'string' then o = meta.owner end
        if type(meta.type) == 'string' then t = meta.type end
      end
      local list, entry = FLOW .. ':jobs:' .. q .. ':' .. o .. '|' .. t, seq .. ':' .. ids[j]
      local after = placed[list]
      if not (after and redis.call('LINSERT', list, 'AFTER', after, entry) > 0) then
        redis.call(front and 'LPUSH' or 'RPUSH', list, entry)
      end
      placed[list] = entry
      redis.call('SADD', FLOW .. ':types:' .. q .. ':' .. o, t)
      redis.call('ZADD', FLOW .. ':ring:' .. q, 'NX', 0, o)
      redis.call('HSET', ix, ids[j], seq .. '\\n' .. list)
      adopted = adopted + 1
    end
  end
  return adopted
end

local function now_seq()
  local clock = redis.call('TIME')
  return string.format('%.0f', tonumber(clock[1]) * 1000000 + tonumber(clock[2]))
end
"""

# KEYS[1] = claims hash, KEYS[2..] = RQ queue lists, highest priority first. ARGV[1] = worker, ARGV[2] = how many
# jobs at most, ARGV[3] = fair turns (1/0), ARGV[4] = owner concurrency (0: none), ARGV[5] = limited types n;
# then per type: name, concurrency (0: none), starts per window (0: none), window (ms).
# Returns a flat list {queue key, job id, ...} in the order taken.
_CLAIM_BODY = """
local worker, want, fair, key_limit = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', tonumber(ARGV[4])
local limits, a = {}, 6
for _ = 1, tonumber(ARGV[5]) do
  limits[ARGV[a]] = {tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])}
  a = a + 4
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local refused, noted, done = {}, {}, {}

local function note(name)
  refused[name] = true
  if not noted[name] then
    noted[name] = true
    redis.call('HINCRBY', REFUSED, name, 1)
  end
  return false
end

local function type_allows(t)
  if refused['type:' .. t] then return false end
  local l = limits[t]
  if not l then return true end
  if l[1] > 0 and redis.call('HLEN', FLOW .. ':running:type:' .. t) >= l[1] then return note('type:' .. t) end
  if l[2] > 0 then
    local starts = FLOW .. ':starts:' .. t
    redis.call('ZREMRANGEBYSCORE', starts, '-inf', now - l[3])
    if redis.call('ZCARD', starts) >= l[2] then return note('type:' .. t) end
  end
  return true
end

local function owner_allows(o)
  if key_limit == 0 then return true end
  if refused['key:' .. o] then return false end
  if redis.call('HLEN', FLOW .. ':running:key:' .. o) >= key_limit then return note('key:' .. o) end
  return true
end

-- The owner's oldest entry of a type that may start: list key, type, seq; `left` = whether it has any entry.
local function head_of(q, o)
  local tkey = FLOW .. ':types:' .. q .. ':' .. o
  local best, best_type, best_seq, left = nil, nil, nil, false
  for _, t in ipairs(redis.call('SMEMBERS', tkey)) do
    if not type_allows(t) then
      left = true
    else
      local list = FLOW .. ':jobs:' .. q .. ':' .. o .. '|' .. t
      local entry = redis.call('LINDEX', list, 0)
      if entry then
        left = true
        local seq = tonumber(string.match(entry, '^(-?%d+):'))
        if best == nil or seq < best_seq then best, best_type, best_seq = list, t, seq end
      else
        redis.call('SREM', tkey, t)
      end
    end
  end
  return best, best_type, best_seq, left
end

-- Claim job `id` of owner `o`, type `t`: the claim, its slots and its start in the type's window.
local function take(id, o, t)
  redis.call('HSET', KEYS[1], id, worker)
  local held, l = {}, limits[t]
  if l and l[1] > 0 then held[#held + 1] = FLOW .. ':running:type:' .. t end
  if key_limit > 0 then held[#held + 1] = FLOW .. ':running:key:' .. o end
  for _, slot in ipairs(held) do redis.call('HSET', slot, id, worker) end
  if #held > 0 then redis.call('HSET', HELD, id, table.concat(held, '\\n')) end
  if l and l[2] > 0 then
    local starts = FLOW .. ':starts:' .. t
    redis.call('ZADD', starts, now, id .. '@' .. now)
    redis.call('PEXPIRE', starts, l[3])
  end
end

-- Pop the entry at the head of `list` and claim its job if RQ's list still holds it: the id, or false (stale).
local function pop(q, o, t, list)
  local entry = redis.call('LPOP', list)
  local id = string.sub(entry, string.find(entry, ':', 1, true) + 1)
  redis.call('HDEL', FLOW .. ':ix:' .. q, id)
  if redis.call('LLEN', list) == 0 then
    local tkey = FLOW .. ':types:' .. q .. ':' .. o
    redis.call('SREM', tkey, t)
    if redis.call('SCARD', tkey) == 0 then redis.call('ZREM', FLOW .. ':ring:' .. q, o) end
  end
  if redis.call('LREM', q, 1, id) == 0 then return false end
  take(id, o, t)
  return id
end

-- The owner to serve in queue `q` and its entry: the first in turn order that may start something (fair), or
-- the one whose startable entry is oldest (not fair). Owners left with nothing are dropped from the ring.
local function choose(q)
  local ring = FLOW .. ':ring:' .. q
  local pick, gone, offset = nil, {}, 0
  while pick == nil or not fair do
    local owners = redis.call('ZRANGE', ring, offset, offset + 31)
    if #owners == 0 then break end
    for _, o in ipairs(owners) do
      if not done[q .. '\\n' .. o] and owner_allows(o) then
        local list, t, seq, left = head_of(q, o)
        if list then
          if pick == nil or seq < pick[4] then pick = {o, t, list, seq} end
          if fair then break end
        else
          done[q .. '\\n' .. o] = true
          if not left then gone[#gone + 1] = o end
        end
      end
    end
    offset = offset + 32
  end
  if #gone > 0 then redis.call('ZREM', ring, unpack(gone)) end
  return pick
end

-- RQ's list q is empty: whatever the index still holds for it is stale (canceled, deleted, emptied): drop it.
local function purge(q)
  local ring = FLOW .. ':ring:' .. q
  if redis.call('EXISTS', ring) == 0 then return end
  for _, o in ipairs(redis.call('ZRANGE', ring, 0, -1)) do
    local tkey = FLOW .. ':types:' .. q .. ':' .. o
    for _, t in ipairs(redis.call('SMEMBERS', tkey)) do
      redis.call('DEL', FLOW .. ':jobs:' .. q .. ':' .. o .. '|' .. t)
    end
    redis.call('DEL', tkey)
  end
  redis.call('DEL', ring, FLOW .. ':ix:' .. q)
end

local out, stale = {}, 0
for i = 2, #KEYS do
  local q = KEYS[i]
  if want <= 0 then break end
  local adopted = adopt(q, 0, ADOPT_WINDOW - 1, '0', true)
  if adopted == nil then
    purge(q)
  else
    -- a list whose head is indexed (the service's pushes): ids RQ's own code pushed onto its tail, at once
    if adopted == 0 then adopt(q, -ADOPT_WINDOW, -1, now_seq(), false) end
    while want > 0 do
      local pick = choose(q)
      if pick == nil then break end
      local o, t, list = pick[1], pick[2], pick[3]
      local id = pop(q, o, t, list)
      if id then
        out[#out + 1] = q
        out[#out + 1] = id
        want = want - 1
        local last = redis.call('ZRANGE', FLOW .. ':ring:' .. q, -1, -1, 'WITHSCORES')
        redis.call('ZADD', FLOW .. ':ring:' .. q, 'XX', (tonumber(last[2]) or 0) + 1, o)
      else
        stale = stale + 1
        if stale >= STALE_BUDGET then return out end
      end
    end
  end
end
return out
"""

_CONSTANTS = (
    f"local FLOW, HELD, REFUSED = '{flow_keys.FLOW}', '{flow_keys.HELD}', '{flow_keys.REFUSED}'\n"
    f"local JOB_PREFIX, ADOPT_WINDOW, STALE_BUDGET = '{JOB_KEY_PREFIX}', {ADOPT_WINDOW}, {STALE_BUDGET}\n"
)

CLAIM = _CONSTANTS + _ADOPT + _CLAIM_BODY

# Drop the claims (and slots) of ARGV's job ids whoever holds them. KEYS[1] = claims hash.
DROP = (
    RELEASE
    + """for i = 1, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
  release(ARGV[i])
end
return #ARGV
"""
)

# The periodic check: release the slots of jobs no longer claimed (a claim dropped by a path that bypassed the
# release, or a Redis restored from an older snapshot), and adopt into the index every id of RQ's lists
# (KEYS[2..], the first ADOPT_MAX of each) that it lacks. KEYS[1] = claims hash. Returns the job ids released.
RECONCILE = (
    _CONSTANTS
    + _ADOPT
    + RELEASE
    + f"""for i = 2, #KEYS do
  local first, seq = 0, now_seq()
  while first < {ADOPT_MAX} and adopt(KEYS[i], first, first + 999, seq, false) do first = first + 1000 end
end
local out = {{}}
for _, id in ipairs(redis.call('HKEYS', '{flow_keys.HELD}')) do
  if redis.call('HEXISTS', KEYS[1], id) == 0 then
    release(id)
    out[#out + 1] = id
  end
end
return out
"""
)
