"""`GET /jobs`: one page of jobs, read from the Redis structure that already holds what the filter asks.

Without `status`, a page walks one of the service's creation-time indexes (`core.keys`): newest
submitted first. With `status`, it walks RQ's own record of that status, per queue (all three
merged when no `queue` is given), in the order that record keeps:

| status | RQ's record | order |
|---|---|---|
| queued | the queue lists | next to run first: `high`, `default`, `low`, each in queue order |
| scheduled | `rq:scheduled:<queue>`, scored by due time | soonest due first |
| deferred | `rq:deferred:<queue>`, scored by the second it was deferred (= submitted) | newest first |
| started | `rq:wip:<queue>`, all of it (running jobs are few), by submission time | newest first |
| finished, failed, stopped, canceled | `rq:finished:<queue>`..., scored by end + retention | latest ended first |

(`stopped` jobs sit in RQ's failed registry, so `failed` and `stopped` read the same record.)
Each entry is first checked against an index with one ZMSCORE per chunk — the caller's own index
for an API key, else the type index or the index of all jobs — which costs no job read; only the
survivors are read (HGETALL) and checked (status, queue, type, owner) before they are listed.
So a page is full whenever enough jobs match, and examines at most SCAN_BUDGET entries: past that
it may come back short, with a `next_cursor` to continue.

Cursors are opaque (base64 of JSON): the order they belong to and the position of the last entry
the page settled, so a page resumes strictly after it however many jobs were added meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from rq.job import Job, JobStatus
from rq.utils import parse_composite_key

from app.store import JobRecord, JobStore
from core import keys
from core.meta import OWNER, TYPE
from core.queues import QUEUE_NAMES

#: A page examines at most this many entries per listed job (and at least SCAN_BUDGET_MIN in all).
SCAN_BUDGET_PER_JOB = 20
SCAN_BUDGET_MIN = 1000
#: Entries read at once past the first chunk, when a filter skipped some.
MAX_CHUNK = 1000
#: Extra entries fetched beside a score-based resume, to step over ties with the cursor's score.
TIE_SLACK = 16

#: Orders (stored in cursors): a cursor of one order is refused by a listing of another.
NEWEST = "new"  # creation-time indexes, newest first
ENDED = "end"  # finished, failed (+ stopped) and canceled registries, most recently ended first
DEFERRED = "def"  # deferred registries, newest first
DUE = "due"  # scheduled registries, soonest due first
RUNNING = "run"  # started registries, newest submitted first
QUEUE = "q"  # queue lists, next to run first

#: Status -> the Queue attribute naming its registry (RQ keeps stopped jobs in the failed registry).
ENDED_STATUSES = {
    JobStatus.FINISHED.value: "finished_job_registry",
    JobStatus.FAILED.value: "failed_job_registry",
    JobStatus.STOPPED.value: "failed_job_registry",
    JobStatus.CANCELED.value: "canceled_job_registry",
}

Position = tuple[Any, ...]


@dataclass(frozen=True)
class Entry:
    job_id: str
    position: Position  # what a cursor stores to resume strictly after this entry


@dataclass(frozen=True)
class Page:
    records: list[JobRecord]
    next_cursor: str | None


class InvalidCursorError(ValueError):
    """A listing cursor that this service did not issue (or issued for another order)."""


class Source(Protocol):
    order: str
    #: Entries are known to be in this index already (their score came from it).
    gated_by: str | None

    async def next(self, count: int) -> tuple[list[Entry], bool]:
        """Up to `count` entries after the last one returned (or the cursor); True when nothing is left."""
        ...

    def resume_at(self, position: Position | None) -> None: ...

    def cursor_position(self, settled: Sequence[Entry]) -> Position:
        """What to store to resume after `settled[-1]` (earlier settled entries may serve as fallbacks)."""
        ...


# -- sorted sets: indexes and RQ's registries ---------------------------------------------------


class ZsetSource:
    """Sorted sets merged by (score, member), descending or ascending; `floor` drops expired entries."""

    def __init__(
        self,
        aio: aioredis.Redis,
        zkeys: Sequence[str],
        *,
        order: str,
        descending: bool,
        floor: float | None = None,
        gated_by: str | None = None,
    ) -> None:
        self.aio = aio
        self.keys = list(zkeys)
        self.order = order
        self.descending = descending
        self.floor = floor
        self.gated_by = gated_by
        self.after: tuple[float, str] | None = None

    def resume_at(self, position: Position | None) -> None:
        if position is not None:
            self.after = score_position(position)

    def cursor_position(self, settled: Sequence[Entry]) -> Position:
        return settled[-1].position

    def _beyond(self, score: float, member: str) -> bool:
        """True if (score, member) comes strictly after the resume point in this order."""
        if self.after is None:
            return True
        if self.descending:
            return (score, member) < self.after
        return (score, member) > self.after

    async def next(self, count: int) -> tuple[list[Entry], bool]:
        fetched = await self._fetch(self.keys, count)
        merged = sorted((entry for entries in fetched for entry in entries), reverse=self.descending)
        taken = merged[:count]
        if taken:
            self.after = taken[-1]
        exhausted = all(len(entries) < count for entries in fetched) and len(merged) <= count
        return [Entry(member, (score, member)) for score, member in taken], exhausted

    async def _fetch(self, zkeys: list[str], count: int) -> list[list[tuple[float, str]]]:
        """Up to `count` entries of each key strictly after `self.after`, in order."""
        slack = 0 if self.after is None else TIE_SLACK
        raws = await self._by_score(zkeys, count + slack)
        results: list[list[tuple[float, str]]] = []
        stuck: list[int] = []  # keys whose fetch was eaten by ties with the resume score
        for index, raw in enumerate(raws):
            entries = [(score, member) for score, member in raw if self._beyond(score, member)]
            if len(entries) < count and len(raw) == count + slack:
                stuck.append(index)
            results.append(entries[:count])
        for index in stuck:
            results[index] = await self._past_ties(zkeys[index], count)
        return results

    async def _by_score(self, zkeys: list[str], num: int) -> list[list[tuple[float, str]]]:
        bound = ("+inf" if self.descending else "-inf") if self.after is None else repr(self.after[0])
        floor = "-inf" if self.floor is None else repr(self.floor)
        async with self.aio.pipeline(transaction=False) as pipe:
            for key in zkeys:
                if self.descending:
                    pipe.zrevrangebyscore(key, bound, floor, start=0, num=num, withscores=True)
                else:
                    pipe.zrangebyscore(key, bound, "+inf", start=0, num=num, withscores=True)
            replies = await pipe.execute() if zkeys else []
        return [[(float(score), member.decode()) for member, score in reply] for reply in replies]

    async def _past_ties(self, key: str, count: int) -> list[tuple[float, str]]:
        """Resume behind many entries sharing the cursor's score: by rank when the cursor's member is
        still there with that score (O(log N)), else by score, fetching more until past the ties."""
        assert self.after is not None
        score, member = self.after
        async with self.aio.pipeline(transaction=False) as pipe:
            pipe.zscore(key, member)
            (pipe.zrevrank if self.descending else pipe.zrank)(key, member)
            current, rank = await pipe.execute()
        if current is not None and float(current) == score and rank is not None:
            rng = self.aio.zrevrange if self.descending else self.aio.zrange
            raw: list[tuple[bytes, float]] = await rng(key, rank + 1, rank + count, withscores=True)  # type: ignore[assignment]
            entries = [(float(s), m.decode()) for m, s in raw]
            return [(s, m) for s, m in entries if self.floor is None or s >= self.floor]
        num = count + TIE_SLACK
        while True:
            num *= 4
            raw_entries = (await self._by_score([key], num))[0]
            entries = [(s, m) for s, m in raw_entries if self._beyond(s, m)]
            if len(entries) >= count or len(raw_entries) < num:
                return entries[:count]


# -- running jobs ---------------------------------------------------------------------------------


class RunningSource:
    """Started registries, read whole (running jobs are few), ordered by the jobs' creation scores
    from `gate` (an index): newest submitted first, like the unfiltered listing."""

    order = RUNNING

    def __init__(self, aio: aioredis.Redis, zkeys: Sequence[str], gate: str) -> None:
        self.aio = aio
        self.keys = list(zkeys)
        self.gated_by: str | None = gate
        self.after: tuple[float, str] | None = None
        self.entries: list[tuple[float, str]] | None = None

    def resume_at(self, position: Position | None) -> None:
        if position is not None:
            self.after = score_position(position)

    def cursor_position(self, settled: Sequence[Entry]) -> Position:
        return settled[-1].position

    async def _load(self) -> list[tuple[float, str]]:
        async with self.aio.pipeline(transaction=False) as pipe:
            for key in self.keys:
                pipe.zrange(key, 0, -1)
            replies = await pipe.execute()
        ids = sorted({parse_composite_key(member.decode())[0] for reply in replies for member in reply})
        assert self.gated_by is not None
        scores = await self.aio.zmscore(self.gated_by, ids) if ids else []
        entries = [(float(score), job_id) for job_id, score in zip(ids, scores, strict=True) if score is not None]
        entries.sort(reverse=True)
        return entries

    async def next(self, count: int) -> tuple[list[Entry], bool]:
        if self.entries is None:
            self.entries = await self._load()
        rest = [entry for entry in self.entries if self.after is None or entry < self.after]
        taken = rest[:count]
        if taken:
            self.after = taken[-1]
        return [Entry(job_id, (score, job_id)) for score, job_id in taken], len(rest) <= count


# -- queue lists ----------------------------------------------------------------------------------


class QueueSource:
    """Queue lists in priority order, each from its head: the order workers take them.

    A cursor stores the queue, the index and the ids of the page's last few jobs in that queue. The
    next page finds the newest of those still waiting (LPOS, O(its place in the queue)) and resumes
    right after it: jobs taken by workers meanwhile shift nothing. If all of them left the queue, the
    jobs before them (FIFO) left too, and the page resumes at the head of that queue.
    """

    order = QUEUE
    gated_by: str | None = None
    ANCHORS = 3

    def __init__(self, aio: aioredis.Redis, queue_keys: Sequence[str]) -> None:
        self.aio = aio
        self.keys = list(queue_keys)
        self.queue = 0  # index into self.keys
        self.start = 0  # next list index to read in that queue
        self.anchors: list[str] | None = None  # from the cursor, resolved on the first read

    def resume_at(self, position: Position | None) -> None:
        if position is None:
            return
        try:
            queue, start, anchors = position
            valid = isinstance(queue, int) and 0 <= queue < len(self.keys) and isinstance(start, int)
            valid = valid and isinstance(anchors, list) and all(isinstance(a, str) for a in anchors)
        except (TypeError, ValueError) as exc:
            raise InvalidCursorError("bad position") from exc
        if not valid or not 0 < len(anchors) <= self.ANCHORS:
            raise InvalidCursorError("bad position")
        self.queue, self.start, self.anchors = queue, start + 1, anchors

    def cursor_position(self, settled: Sequence[Entry]) -> Position:
        queue, index, _ = settled[-1].position
        anchors = [entry.job_id for entry in reversed(settled) if entry.position[0] == queue][: self.ANCHORS]
        return (queue, index, anchors)

    async def _resolve(self) -> None:
        assert self.anchors is not None
        key = self.keys[self.queue]
        async with self.aio.pipeline(transaction=False) as pipe:
            for anchor in self.anchors:
                pipe.lpos(key, anchor)
            found = await pipe.execute()
        self.start = next((place + 1 for place in found if isinstance(place, int)), 0)
        self.anchors = None

    async def next(self, count: int) -> tuple[list[Entry], bool]:
        if self.anchors is not None:
            await self._resolve()
        taken: list[Entry] = []
        while len(taken) < count and self.queue < len(self.keys):
            want = count - len(taken)
            raw: list[bytes] = await self.aio.lrange(self.keys[self.queue], self.start, self.start + want)  # type: ignore[assignment]
            for offset, member in enumerate(raw[:want]):  # one extra read: whether more follow
                taken.append(Entry(member.decode(), (self.queue, self.start + offset, [])))
            if len(raw) > want:
                self.start += want
                return taken, False
            self.queue, self.start = self.queue + 1, 0
        return taken, self.queue >= len(self.keys)


# -- one page -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    source: Source
    gates: list[str]  # indexes an entry must be in, checked with ZMSCORE before any job is read
    prune: str | None  # the index the source walks: entries whose job expired are removed from it


def plan(store: JobStore, status: str | None, queue: str | None, job_type: str | None, owner: str | None) -> Plan:
    aio = store.aio
    type_index = keys.index_for_type(job_type) if job_type else None
    queue_index = keys.index_for_queue(queue) if queue else None
    owner_index = keys.index_for_owner(owner) if owner is not None else None
    queues = [store.queues[queue]] if queue else [store.queues[name] for name in QUEUE_NAMES]
    gate = owner_index or type_index or keys.INDEX_ALL
    extra = [type_index] if owner_index and type_index else []
    if status in ENDED_STATUSES:
        registries = [getattr(q, ENDED_STATUSES[status]).key for q in queues]
        source: Source = ZsetSource(aio, registries, order=ENDED, descending=True, floor=time.time())
        return Plan(source, [gate, *extra], None)
    if status == JobStatus.QUEUED:
        return Plan(QueueSource(aio, [q.key for q in queues]), [gate, *extra], None)
    if status == JobStatus.SCHEDULED:
        source = ZsetSource(aio, [q.scheduled_job_registry.key for q in queues], order=DUE, descending=False)
        return Plan(source, [gate, *extra], None)
    if status == JobStatus.DEFERRED:
        source = ZsetSource(aio, [q.deferred_job_registry.key for q in queues], order=DEFERRED, descending=True)
        return Plan(source, [gate, *extra], None)
    if status == JobStatus.STARTED:
        return Plan(RunningSource(aio, [q.started_job_registry.key for q in queues], gate), extra, None)
    # no status (or one RQ keeps no record of, e.g. `created`): the narrowest index, newest first
    walked = owner_index or type_index or queue_index or keys.INDEX_ALL
    others = [index for index in (queue_index, type_index) if index and index != walked]
    return Plan(ZsetSource(aio, [walked], order=NEWEST, descending=True, gated_by=walked), others, walked)


async def page(
    store: JobStore,
    *,
    status: str | None,
    queue: str | None,
    job_type: str | None,
    limit: int,
    cursor: str | None,
    owner: str | None = None,
) -> Page:
    """One page of at most `limit` jobs matching every filter, in the order of the module docstring.
    With `owner`, only that API key's jobs."""
    chosen = plan(store, status, queue, job_type, owner)
    source = chosen.source
    if cursor:
        source.resume_at(decode_cursor(cursor, source.order))
    gates = [gate for gate in chosen.gates if gate != source.gated_by]

    def accept(job: Job) -> bool:
        return (
            (not status or job.get_status(refresh=False) == status)
            and (not queue or job.origin == queue)
            and (not job_type or job.meta.get(TYPE) == job_type)
            and (owner is None or job.meta.get(OWNER) == owner)
        )

    budget = max(SCAN_BUDGET_MIN, limit * SCAN_BUDGET_PER_JOB)
    examined = 0
    exhausted = False
    window: deque[tuple[Entry, bool]] = deque()
    settled: list[Entry] = []
    records: list[JobRecord] = []
    chunk = limit + 1

    async def pull() -> None:
        nonlocal examined, exhausted, chunk
        entries, exhausted = await source.next(min(chunk, budget - examined))
        examined += len(entries)
        flags = await _in_all(store.aio, gates, [entry.job_id for entry in entries])
        window.extend(zip(entries, flags, strict=True))
        if not all(flags):
            chunk = min(chunk * 4, MAX_CHUNK)

    def candidates() -> int:
        return sum(1 for _, flag in window if flag)

    while len(records) < limit:
        want = limit - len(records)
        while candidates() < want and not exhausted and examined < budget:
            await pull()
        if not window:
            break
        taken: list[Entry] = []
        wanted: list[Entry] = []
        while window and len(wanted) < want:
            entry, flag = window.popleft()
            taken.append(entry)
            if flag:
                wanted.append(entry)
        records.extend(await _read(store, wanted, accept, chosen.prune))
        settled.extend(taken)

    if len(records) < limit:  # the window is empty: no more matches, or the budget ran out
        more = not exhausted
    else:
        while not any(flag for _, flag in window) and not exhausted and examined < budget:
            window.clear()
            await pull()
        more = any(flag for _, flag in window) or not exhausted
    next_cursor = encode_cursor(source.order, source.cursor_position(settled)) if more and settled else None
    return Page(records, next_cursor)


async def _in_all(aio: aioredis.Redis, gates: list[str], ids: list[str]) -> list[bool]:
    """For each id, whether every index in `gates` holds it (one ZMSCORE per index)."""
    if not gates or not ids:
        return [True] * len(ids)
    async with aio.pipeline(transaction=False) as pipe:
        for gate in gates:
            pipe.zmscore(gate, ids)
        replies = await pipe.execute()
    return [all(reply[i] is not None for reply in replies) for i in range(len(ids))]


async def _read(
    store: JobStore, entries: list[Entry], accept: Callable[[Job], bool], prune: str | None
) -> list[JobRecord]:
    if not entries:
        return []
    async with store.aio.pipeline(transaction=False) as pipe:
        for entry in entries:
            pipe.hgetall(Job.key_for(entry.job_id))
        hashes = await pipe.execute()
    records: list[JobRecord] = []
    expired: list[str] = []
    for entry, raw in zip(entries, hashes, strict=True):
        if not raw or b"data" not in raw:
            expired.append(entry.job_id)
            continue
        job = store.restore(entry.job_id, raw)
        if accept(job):
            records.append(JobRecord(job, None, None))
    if expired and prune is not None:  # our own index only: RQ's registries are RQ's to clean
        await store.aio.zrem(prune, *expired)
    return records


# -- cursors --------------------------------------------------------------------------------------


def score_position(position: Position) -> tuple[float, str]:
    """A (score, member) position from a cursor, checked: a finite number and a string."""
    if len(position) != 2 or not isinstance(position[0], int | float) or not isinstance(position[1], str):
        raise InvalidCursorError("bad position")
    try:
        score = float(position[0])
    except OverflowError as exc:
        raise InvalidCursorError("bad position") from exc
    if not math.isfinite(score):
        raise InvalidCursorError("bad position")
    return score, position[1]


def encode_cursor(order: str, position: Position) -> str:
    raw = json.dumps([order, *position], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order: str) -> Position:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise InvalidCursorError(cursor) from exc
    if not isinstance(raw, list) or not raw or raw[0] != order:
        raise InvalidCursorError(cursor)
    return tuple(raw[1:])
