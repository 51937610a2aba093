"""Live job events for the web process: one Redis subscription, fanned out to every open stream.

Whoever changes a job publishes its id on one channel (`core.events`). Each web process holds a
single pub/sub connection (redis.asyncio, no thread) on that channel. A notice for a job that has
listeners here triggers one read of the job and of its output, shared by all of that job's
listeners; each listener gets what is new to it (progress entries and output chunks numbered
above the last it got, in one order with their event ids: `core.events.interleave`, and the
status if it changed) on its own asyncio queue. Nothing polls: an idle stream costs a queue and a few objects.

A listener joins before it reads its snapshot and becomes `ready` (has a state) after; a read
that began before it was ready is never delivered to it, and `ready` starts a fresh read, so no
change falls between the snapshot and the live events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import redis
from rq.job import Job, JobStatus

from app.store import JobRecord, JobStore
from core import events, keys
from core import output as job_output
from core.clock import iso_z
from core.events import Event
from core.meta import ATTEMPT
from core.output import NO_OUTPUT, Output
from core.rqadapter.jobdata import readable_meta
from core.settings import Settings
from jobs.progress import newest_seq, progress_events

logger = logging.getLogger("app.live")

#: What tells one status change from another: a retry that starts again is a new `started`.
StatusKey = tuple[str | None, str | None, str | None, str | None]


@dataclass(frozen=True)
class State:
    """What a listener has been sent: how many progress events and output chunks (the newest of each), and
    the job's status as of then. Their sum is the id of the newest event sent."""

    progress: int
    status: StatusKey
    output: int = 0

    @property
    def seq(self) -> int:
        return self.progress + self.output


@dataclass(frozen=True)
class Batch:
    """New events for one job, in order; a `status` event (when the status changed) stands for `record`'s view."""

    events: list[Event]
    record: JobRecord


@dataclass(frozen=True)
class Snapshot:
    record: JobRecord
    #: Progress and output events after the client's Last-Event-ID (none without one).
    replay: list[Event]
    #: Everything the snapshot covers (its view, its replay).
    state: State

    @property
    def seq(self) -> int:
        """The newest event id the snapshot covers: the status event's id."""
        return self.state.seq


def snapshot_of(record: JobRecord, output: Output, after: int | None) -> Snapshot:
    """The job as read, and with `after` (a Last-Event-ID) the kept events since, from `output` read whole."""
    meta = readable_meta(record.job)
    newest = newest_seq(meta)
    chunks = events.deliverable(output, newest)
    outputs = chunks[-1].seq if chunks else max(0, output.first - 1) if output.total else 0
    state = State(newest, status_key(record.job), outputs)
    if after is None:
        return Snapshot(record, [], state)
    progress, seen = events.resume_point(after, newest, chunks, output)
    replay = events.interleave(progress_events(meta, progress), [c for c in chunks if c.seq > seen], seen)
    return Snapshot(record, replay, state)


@dataclass(eq=False)
class Listener:
    job_id: str
    queue: asyncio.Queue[Batch] = field(default_factory=asyncio.Queue)
    #: What has been queued to this listener; None until its snapshot is read.
    state: State | None = None


@dataclass(eq=False)
class _Feed:
    listeners: set[Listener] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    again: bool = False


def status_key(job: Job) -> StatusKey:
    status = job.get_status(refresh=False)
    return (
        events.status_value(status) if status else None,
        iso_z(job.enqueued_at),
        iso_z(job.started_at),
        iso_z(job.ended_at),
    )


def changes(record: JobRecord, state: State, output: Output = NO_OUTPUT) -> tuple[Batch, State] | None:
    """What `record` and `output` (read after it) hold that a listener at `state` has not been sent; None if
    nothing."""
    job = record.job
    meta = readable_meta(job)
    progress = progress_events(meta, state.progress)
    chunks = [chunk for chunk in events.deliverable(output, newest_seq(meta)) if chunk.seq > state.output]
    fresh = events.interleave(progress, chunks, state.output)
    sent_progress = progress[-1].id if progress else state.progress
    sent_output = chunks[-1].seq if chunks else state.output
    key = status_key(job)
    if key == state.status:
        return (Batch(fresh, record), State(sent_progress, key, sent_output)) if fresh else None
    # The status changed: place its event among the new events. A final status comes last; a
    # (re)start comes before what this attempt reported or wrote; anything else after what led to it.
    split = len(fresh)
    if key[0] == JobStatus.STARTED.value and key[2] is not None:
        split = _first_of_attempt(fresh, key[2], int(meta.get(ATTEMPT, 1) or 1))
    before = fresh[:split]
    status = Event(before[-1].id if before else state.seq, events.STATUS, {"status": key[0]})
    return Batch([*before, status, *fresh[split:]], record), State(sent_progress, key, sent_output)


def _first_of_attempt(fresh: list[Event], started_at: str, attempt: int) -> int:
    """Where the running attempt's events begin: reported at or after its start, or written by it."""
    for index, event in enumerate(fresh):
        if event.kind == events.OUTPUT and event.attempt >= attempt:
            return index
        if event.kind == events.PROGRESS and str(event.data.get("time") or "") >= started_at:
            return index
    return len(fresh)


def _may_have_output(record: JobRecord, sent: int) -> bool:
    """False for a job that has not started (nothing can have written output), so queued jobs cost no read."""
    return (
        sent > 0
        or record.job.started_at is not None
        or record.job.get_status(refresh=False)
        not in (
            JobStatus.QUEUED,
            JobStatus.DEFERRED,
            JobStatus.SCHEDULED,
        )
    )


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

    def ready(self, listener: Listener, state: State) -> None:
        """The listener's snapshot covers `state`; catch up on anything since."""
        listener.state = state
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

    async def snapshot(self, job_id: str, after: int | None) -> Snapshot | None:
        """The job and, with `after`, its kept progress and output events since. None: no such job."""
        record = await self.read(job_id)
        if record is None:
            return None
        output = await self.read_output(job_id, 0 if after is not None else -job_output.TAIL)
        if not output.complete and not events.deliverable(output, newest_seq(readable_meta(record.job))):
            output = await self.read_output(job_id, 0)  # every chunk of the tail awaits its report: look further
        return snapshot_of(record, output, after)

    async def read(self, job_id: str) -> JobRecord | None:
        """The job as `GET /jobs/{id}` reads it (with its latest result, and its place while queued)."""
        async with self._reads:
            return await self.store.fetch(job_id)

    async def read_output(self, job_id: str, after: int) -> Output:
        """The job's output chunks numbered above `after` (the last `-after` when negative); read after the job."""
        async with self._reads:
            return await job_output.fetch(self.store.aio, job_id, after)

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
        # Only listeners ready before the read began: the read is newer than their snapshot.
        ready = {listener for listener in feed.listeners if listener.state is not None}
        if not ready:
            return
        record = await self.read(job_id)
        if record is None:  # deleted meanwhile: nothing to tell (an ended job's stream has closed already)
            return
        sent = min(listener.state.output for listener in ready if listener.state is not None)
        output = await self.read_output(job_id, sent) if _may_have_output(record, sent) else NO_OUTPUT
        for listener in ready:
            found = changes(record, listener.state, output) if listener.state is not None else None
            if found is not None:
                batch, listener.state = found
                listener.queue.put_nowait(batch)

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
