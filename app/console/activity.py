"""`GET /console/changes`: one Server-Sent Events stream that says "jobs changed", for pages listing many jobs.

Every change to a job (a progress report, a status change) is announced on one pub/sub channel
(`core.events`). While at least one of these streams is open, the web process holds one extra
subscription to that channel and wakes every open stream; each stream sends at most one `jobs`
event per `INTERVAL` (changes in between are merged), and the page re-reads what it shows.
The event carries no job ids, so a key sees no more of other keys' jobs than that something
changed. It asks for the API key like every API route. No stream open: no subscription, no cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.store import JobStore
from core import keys
from core.clock import iso_z, utc_now
from core.settings import Settings

logger = logging.getLogger("app.console")

#: Shortest time between two `jobs` events on one stream, in seconds.
INTERVAL = 1.0


class Activity:
    """One subscription to the job events channel, shared by every open stream of this process."""

    def __init__(self, aio: aioredis.Redis) -> None:
        self.aio = aio
        self.waiters: set[asyncio.Event] = set()
        self.task: asyncio.Task[None] | None = None

    def join(self) -> asyncio.Event:
        waiter = asyncio.Event()
        self.waiters.add(waiter)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name="job-activity")
        return waiter

    def leave(self, waiter: asyncio.Event) -> None:
        self.waiters.discard(waiter)
        if not self.waiters and self.task is not None:
            self.task.cancel()
            self.task = None

    async def _run(self) -> None:
        delay = 0.2
        while True:
            pubsub = self.aio.pubsub()
            try:
                await pubsub.subscribe(keys.EVENTS_CHANNEL)
                while True:
                    message = await pubsub.get_message(timeout=5)
                    if message is not None and message["type"] in ("message", "subscribe"):
                        delay = 0.2
                        for waiter in self.waiters:
                            waiter.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("job activity subscription lost (%s: %s); reconnecting", type(exc).__name__, exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _activity(request: Request) -> Activity:
    state = request.app.state
    activity: Activity | None = getattr(state, "job_activity", None)
    if activity is None:
        store: JobStore = state.store
        activity = state.job_activity = Activity(store.aio)
    return activity


async def job_changes(request: Request) -> Response:
    """A `jobs` event now (the page reads its first state), then one after each burst of changes."""
    activity = _activity(request)
    waiter = activity.join()
    settings: Settings = request.app.state.settings
    return EventSourceResponse(_stream(activity, waiter), ping=settings.sse_keepalive)


async def _stream(activity: Activity, waiter: asyncio.Event) -> AsyncIterator[ServerSentEvent]:
    try:
        while True:
            waiter.clear()
            yield ServerSentEvent(json.dumps({"time": iso_z(utc_now())}), event="jobs")
            await asyncio.sleep(INTERVAL)
            await waiter.wait()
    finally:
        activity.leave(waiter)


routes = [Route("/changes", job_changes, methods=["GET"])]
