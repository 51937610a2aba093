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

Cursors are opaque (`app.listing.cursors`): the order they belong to and the position of the last
entry the page settled, so a page resumes strictly after it however many jobs were added meanwhile.
The sources live in `app.listing.sources` (sorted sets, running jobs) and `app.listing.queue_source`;
the statuses a filter may name in `app.listing.statuses`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from rq.job import Job, JobStatus

from app.listing.cursors import InvalidCursorError, Position, decode_cursor, encode_cursor
from app.listing.queue_source import QueueSource
from app.listing.sources import DEFERRED, DUE, ENDED, NEWEST, Entry, RunningSource, Source, ZsetSource
from app.listing.statuses import LISTED_STATUSES, ListedStatus, check_status
from app.store import JobRecord, JobStore
from core import keys
from core.meta import OWNER, SCHEDULE_ID, TYPE
from core.queues import QUEUE_NAMES
from core.rqadapter.jobdata import is_stored

__all__ = [
    "LISTED_STATUSES",
    "InvalidCursorError",
    "ListedStatus",
    "Page",
    "Position",
    "check_status",
    "decode_cursor",
    "encode_cursor",
    "page",
    "plan",
]

#: A page examines at most this many entries per listed job (and at least SCAN_BUDGET_MIN in all).
SCAN_BUDGET_PER_JOB = 20
SCAN_BUDGET_MIN = 1000
#: Entries read at once past the first chunk, when a filter skipped some.
MAX_CHUNK = 1000

#: Status -> the Queue attribute naming its registry (RQ keeps stopped jobs in the failed registry).
ENDED_STATUSES = {
    JobStatus.FINISHED.value: "finished_job_registry",
    JobStatus.FAILED.value: "failed_job_registry",
    JobStatus.STOPPED.value: "failed_job_registry",
    JobStatus.CANCELED.value: "canceled_job_registry",
}


@dataclass(frozen=True)
class Page:
    records: list[JobRecord]
    next_cursor: str | None


@dataclass(frozen=True)
class Plan:
    source: Source
    gates: list[str]  # indexes an entry must be in, checked with ZMSCORE before any job is read
    prune: str | None  # the index the source walks: entries whose job expired are removed from it


def plan(
    store: JobStore,
    status: str | None,
    queue: str | None,
    job_type: str | None,
    owner: str | None,
    schedule: str | None = None,
    batch: str | None = None,
) -> Plan:
    if batch is not None:
        return _batch_plan(store, status, queue, job_type, owner, batch)
    aio = store.aio
    type_index = keys.index_for_type(job_type) if job_type else None
    schedule_index = keys.schedule_runs(schedule) if schedule else None
    queue_index = keys.index_for_queue(queue) if queue else None
    owner_index = keys.index_for_owner(owner) if owner is not None else None
    queues = [store.queues[queue]] if queue else [store.queues[name] for name in QUEUE_NAMES]
    gate = owner_index or type_index or keys.INDEX_ALL
    extra = [type_index] if owner_index and type_index else []
    if schedule_index:  # a schedule's runs: its own index gates every source, and is walked without status
        extra.append(schedule_index)
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
    # no status: the narrowest index, newest first
    walked = schedule_index or owner_index or type_index or queue_index or keys.INDEX_ALL
    others = [index for index in (queue_index, type_index, owner_index) if index and index != walked]
    return Plan(ZsetSource(aio, [walked], order=NEWEST, descending=True, gated_by=walked), others, walked)


def _batch_plan(
    store: JobStore, status: str | None, queue: str | None, job_type: str | None, owner: str | None, batch: str
) -> Plan:
    """A batch's members: its member index gates the plan without it; without status, it is walked."""
    members = keys.batch_jobs(batch)
    if status is not None:
        chosen = plan(store, status, queue, job_type, owner)
        return Plan(chosen.source, [*chosen.gates, members], chosen.prune)
    gates = [index for index in (keys.index_for_queue(queue) if queue else None,) if index]
    gates += [keys.index_for_type(job_type)] if job_type else []
    gates += [keys.index_for_owner(owner)] if owner is not None else []
    return Plan(ZsetSource(store.aio, [members], order=NEWEST, descending=True, gated_by=members), gates, members)


class Scan:
    """A source's entries, each flagged with whether every gate index holds it, read ahead in chunks
    (growing while gates skip entries) within a budget of examined entries."""

    def __init__(self, aio: aioredis.Redis, source: Source, gates: list[str], budget: int, chunk: int) -> None:
        self.aio = aio
        self.source = source
        self.gates = gates
        self.budget = budget
        self.chunk = chunk
        self.examined = 0
        self.exhausted = False
        self.window: deque[tuple[Entry, bool]] = deque()

    def can_pull(self) -> bool:
        return not self.exhausted and self.examined < self.budget

    def candidates(self) -> int:
        return sum(1 for _, flag in self.window if flag)

    async def pull(self) -> None:
        entries, self.exhausted = await self.source.next(min(self.chunk, self.budget - self.examined))
        self.examined += len(entries)
        flags = await _in_all(self.aio, self.gates, [entry.job_id for entry in entries])
        self.window.extend(zip(entries, flags, strict=True))
        if not all(flags):
            self.chunk = min(self.chunk * 4, MAX_CHUNK)

    async def take(self, want: int) -> tuple[list[Entry], list[Entry]]:
        """(entries settled, those of them that passed the gates): up to `want` that passed."""
        while self.candidates() < want and self.can_pull():
            await self.pull()
        taken: list[Entry] = []
        wanted: list[Entry] = []
        while self.window and len(wanted) < want:
            entry, flag = self.window.popleft()
            taken.append(entry)
            if flag:
                wanted.append(entry)
        return taken, wanted

    async def more(self) -> bool:
        """Whether another entry that passes the gates may follow (without settling any)."""
        while not self.candidates() and self.can_pull():
            self.window.clear()
            await self.pull()
        return bool(self.candidates()) or not self.exhausted


def _accepts(
    status: str | None, queue: str | None, job_type: str | None, owner: str | None, schedule: str | None = None
) -> Callable[[Job], bool]:
    """Whether a job read matches every filter (the indexes may hold entries that no longer do)."""

    def accept(job: Job) -> bool:
        return (
            (not status or job.get_status(refresh=False) == status)
            and (not queue or job.origin == queue)
            and (not job_type or job.meta.get(TYPE) == job_type)
            and (owner is None or job.meta.get(OWNER) == owner)
            and (not schedule or job.meta.get(SCHEDULE_ID) == schedule)
        )

    return accept


async def page(
    store: JobStore,
    *,
    status: str | None,
    queue: str | None,
    job_type: str | None,
    limit: int,
    cursor: str | None,
    owner: str | None = None,
    schedule: str | None = None,
    batch: str | None = None,
) -> Page:
    """One page of at most `limit` jobs matching every filter, in the order of the module docstring.
    With `owner`, only that API key's jobs; with `batch`, only that batch's members. A `status` the API does
    not document is a 422 (`statuses`)."""
    check_status(status)
    chosen = plan(store, status, queue, job_type, owner, schedule, batch)
    source = chosen.source
    if cursor:
        source.resume_at(decode_cursor(cursor, source.order))
    gates = [gate for gate in chosen.gates if gate != source.gated_by]
    budget = max(SCAN_BUDGET_MIN, limit * SCAN_BUDGET_PER_JOB)
    scan = Scan(store.aio, source, gates, budget, chunk=limit + 1)
    accept = _accepts(status, queue, job_type, owner, schedule)
    settled: list[Entry] = []
    records: list[JobRecord] = []
    while len(records) < limit:
        taken, wanted = await scan.take(limit - len(records))
        if not taken:
            break
        records.extend(await _read(store, wanted, accept, chosen.prune))
        settled.extend(taken)
    # short of `limit`: the window is empty, so more can only come if the source has more
    more = await scan.more() if len(records) >= limit else not scan.exhausted
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
        if not is_stored(raw):
            expired.append(entry.job_id)
            continue
        job = store.restore(entry.job_id, raw)
        if accept(job):
            records.append(JobRecord(job, None, None))
    if expired and prune is not None:  # our own index only: RQ's registries are RQ's to clean
        await store.aio.zrem(prune, *expired)
    return records
