"""Where a listing's entries come from, in order: sorted sets (the service's indexes, RQ's registries)
and the started registries. Each source resumes after a cursor's position (`app.listing.cursors`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from rq.utils import parse_composite_key

from app.listing.cursors import Position, score_position

#: Extra entries fetched beside a score-based resume, to step over ties with the cursor's score.
TIE_SLACK = 16

#: Orders (stored in cursors): a cursor of one order is refused by a listing of another.
NEWEST = "new"  # creation-time indexes, newest first
ENDED = "end"  # finished, failed (+ stopped) and canceled registries, most recently ended first
DEFERRED = "def"  # deferred registries, newest first
DUE = "due"  # scheduled registries, soonest due first
RUNNING = "run"  # started registries, newest submitted first
QUEUE = "q"  # queue lists, next to run first


@dataclass(frozen=True)
class Entry:
    job_id: str
    position: Position  # what a cursor stores to resume strictly after this entry


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
