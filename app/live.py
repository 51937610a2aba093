"""Live job events for the web process: one Redis subscription, fanned out to every open stream.

Workers append each event to the job's stream (`jobs.events`) and publish the job id on one
channel. Each web process holds a single pub/sub connection (redis.asyncio, no thread) on
that channel. A notice for a job that has listeners here triggers one read of the new
stream entries, shared by all of that job's listeners; each listener gets them on its own
asyncio queue. Nothing polls: an idle stream costs a queue and a few objects.

A listener joins before it reads its snapshot and becomes `ready` (has a cursor) after, so
no event falls between the two: anything read while it was joining is also queued to it,
and the listener drops what its snapshot already covered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from rq.job import Job, JobStatus
from rq.results import Result

from app.store import JobRecord, JobStore
from jobs import events, keys
from jobs.events import Event
from jobs.settings import Settings

logger = logging.getLogger("app.live")


@dataclass(frozen=True)
class Batch:
    """New events for one job; `record` is the job as of the last of them (read when they hold a status change)."""

    events: list[Event]
    record: JobRecord | None


@dataclass(frozen=True)
class Snapshot:
    record: JobRecord
    #: The newest event id at the time of the snapshot (None: the job has no events yet).
    last_id: str | None
    #: Events after the client's Last-Event-ID, up to `last_id`.
    replay: list[Event]

    @property
    def cursor(self) -> tuple[int, int]:
        return events.parse_id(self.last_id) if self.last_id else (0, 0)


@dataclass(eq=False)
class Listener:
    job_id: str
    queue: asyncio.Queue[Batch] = field(default_factory=asyncio.Queue)
    #: Newest event id queued to this listener; None until its snapshot is read.
    cursor: tuple[int, int] | None = None


@dataclass(eq=False)
class _Feed:
    listeners: set[Listener] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    again: bool = False


class EventHub:
    def __init__(self, store: JobStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._feeds: dict[str, _Feed] = {}
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        # Reads share the web process's Redis pool with every route: a burst of (re)connecting
        # streams waits here instead of exhausting the pool (MaxConnectionsError -> 503).
        self._reads = asyncio.Semaphore(max(1, store.aio.connection_pool.max_connections // 4))

    # -- listeners ------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe (once per process); a Redis that does not answer in time is a ConnectionError (503)."""
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._run(), name="event-hub")
        if not self._subscribed.is_set():
            wait = self.settings.redis_connect_timeout + self.settings.redis_socket_timeout
            try:
                await asyncio.wait_for(self._subscribed.wait(), wait)
            except TimeoutError:
                raise redis.ConnectionError("could not subscribe to job events") from None

    def join(self, job_id: str) -> Listener:
        listener = Listener(job_id)
        self._feeds.setdefault(job_id, _Feed()).listeners.add(listener)
        return listener

    def ready(self, listener: Listener, cursor: tuple[int, int]) -> None:
        """The listener's snapshot covers events up to `cursor`; catch up on anything since."""
        listener.cursor = cursor
        self._wake(listener.job_id)

    def leave(self, listener: Listener) -> None:
        feed = self._feeds.get(listener.job_id)
        if feed is None:
            return
        feed.listeners.discard(listener)
        if not feed.listeners:
            del self._feeds[listener.job_id]
            if feed.task is not None:
                feed.task.cancel()

    @property
    def listener_count(self) -> int:
        return sum(len(feed.listeners) for feed in self._feeds.values())

    async def aclose(self) -> None:
        tasks = [feed.task for feed in self._feeds.values() if feed.task is not None]
        if self._reader is not None:
            tasks.append(self._reader)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._feeds.clear()

    # -- reads ----------------------------------------------------------------------------

    async def snapshot(self, job_id: str, after: str | None) -> Snapshot | None:
        """The job and its newest event id, read atomically; with `after`, the events since. None: no such job."""
        stream = keys.events_for(job_id)
        async with self._reads, self.store.aio.pipeline(transaction=True) as pipe:
            pipe.hgetall(Job.key_for(job_id))
            pipe.xrevrange(Result.get_key(job_id), "+", "-", count=1)
            pipe.xrevrange(stream, "+", "-", count=1)
            if after is not None:
                pipe.xrange(stream, f"({after}", "+")
            raw, results, newest, *since = await pipe.execute()
            record = await self._record(job_id, raw, results)
        if record is None:
            return None
        last = events.decode(newest)
        last_id = last[0].id if last else None
        replay = events.decode(since[0]) if since else []
        return Snapshot(record, last_id, replay)

    async def _record(self, job_id: str, raw: dict[bytes, bytes], results: Sequence[Any]) -> JobRecord | None:
        if not raw or b"data" not in raw:
            return None
        job = self.store.restore(job_id, raw)
        position = None
        if job.get_status(refresh=False) == JobStatus.QUEUED and job.origin in self.store.queues:
            found = await self.store.aio.lpos(self.store.queues[job.origin].key, job_id)
            position = found if isinstance(found, int) else None
        return JobRecord(job, self.store._latest_result(job_id, results), position)

    async def _read_since(self, job_id: str, cursor: tuple[int, int]) -> Batch:
        stream = keys.events_for(job_id)
        after = f"({cursor[0]}-{cursor[1]}"
        async with self._reads:
            found = events.decode(await self.store.aio.xrange(stream, after, "+"))
            if not any(event.kind == events.STATUS for event in found):
                return Batch(found, None)
            # A status change: read the events again with the job, atomically, so the view matches them.
            async with self.store.aio.pipeline(transaction=True) as pipe:
                pipe.xrange(stream, after, "+")
                pipe.hgetall(Job.key_for(job_id))
                pipe.xrevrange(Result.get_key(job_id), "+", "-", count=1)
                entries, raw, results = await pipe.execute()
            return Batch(events.decode(entries), await self._record(job_id, raw, results))

    # -- fan-out --------------------------------------------------------------------------

    def _wake(self, job_id: str) -> None:
        feed = self._feeds.get(job_id)
        if feed is None:
            return
        feed.again = True
        if feed.task is None:
            feed.task = asyncio.create_task(self._drain(job_id, feed), name=f"events:{job_id}")

    def _wake_all(self) -> None:
        for job_id in list(self._feeds):
            self._wake(job_id)

    async def _drain(self, job_id: str, feed: _Feed) -> None:
        try:
            while feed.again and feed.listeners:
                feed.again = False
                try:
                    await self._deliver(job_id, feed)
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    logger.warning("reading events of job %s failed (%s); retrying", job_id, exc)
                    feed.again = True
                    await asyncio.sleep(1)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("reading events of job %s failed", job_id)
        finally:
            feed.task = None

    async def _deliver(self, job_id: str, feed: _Feed) -> None:
        cursors = [listener.cursor for listener in feed.listeners if listener.cursor is not None]
        if not cursors:
            return
        batch = await self._read_since(job_id, min(cursors))
        for listener in list(feed.listeners):
            fresh = [event for event in batch.events if listener.cursor is None or event.order > listener.cursor]
            if fresh:
                listener.queue.put_nowait(Batch(fresh, batch.record))
                if listener.cursor is not None:
                    listener.cursor = fresh[-1].order

    async def _run(self) -> None:
        delay = 0.2
        while True:
            pubsub = self.store.aio.pubsub()
            try:
                await pubsub.subscribe(keys.EVENTS_CHANNEL)
                while True:
                    message = await pubsub.get_message(timeout=5)
                    if message is None:
                        continue
                    if message["type"] == "message":
                        self._wake(message["data"].decode())
                    elif message["type"] == "subscribe":
                        self._subscribed.set()
                        delay = 0.2
                        self._wake_all()  # catch up on anything published while (re)connecting
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._subscribed.clear()
                logger.warning("job events subscription lost (%s: %s); reconnecting", type(exc).__name__, exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
