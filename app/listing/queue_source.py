"""The queued jobs' listing source: RQ's queue lists, in the order workers take them."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from app.listing.cursors import InvalidCursorError, Position
from app.listing.sources import QUEUE, Entry


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
