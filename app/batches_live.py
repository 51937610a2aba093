"""`GET /batches/{id}/events`: a batch's progress and end as Server-Sent Events.

First a `status` event with the batch view; then `progress` events `{"progress", "counts"}`, at
most one every `PROGRESS_INTERVAL` seconds however many members report; then, once the batch has
ended, a final `status` event with the batch view, and the stream closes. The members' event script
(`core.rqadapter.batches`) publishes a notice on the batch's channel at most every 200 ms, and its
end at once; the stream reads the batch's hash (one HGETALL) on each notice, and every
`POLL_INTERVAL` seconds in case the last change of a quiet spell was not announced. Events carry
the stream's own numbering; a client that reconnects gets the current state first, which is all a
batch stream has to resume from.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from app.store import JobStore
from core import batches, events, keys
from core.settings import Settings

PROGRESS_INTERVAL = 0.25
POLL_INTERVAL = 1.0


async def stream(request: Request, store: JobStore, batch_id: str, first: dict[Any, Any]) -> Response:
    settings: Settings = request.app.state.settings
    pubsub: Any = store.aio.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(keys.batch_channel(batch_id))
    return EventSourceResponse(_events(store, pubsub, batch_id, first), ping=settings.sse_keepalive)


def _progress(raw: dict[Any, Any]) -> dict[str, Any]:
    return {"progress": batches.progress_of(raw), "counts": batches.counts_of(raw)}


async def _events(store: JobStore, pubsub: Any, batch_id: str, raw: dict[Any, Any]) -> AsyncIterator[ServerSentEvent]:
    number = 0
    try:
        # the snapshot is read after subscribing, so no change falls between it and the notices
        raw = dict(await store.aio.hgetall(keys.batch(batch_id))) or raw
        yield ServerSentEvent(json.dumps(batches.batch_view(raw)), event=events.STATUS, id=str(number))
        if batches.is_ended(raw):
            return
        sent, sent_at = _progress(raw), 0.0
        current = sent
        while not batches.is_ended(raw):
            due = sent_at + PROGRESS_INTERVAL - time.monotonic()
            await _next_notice(pubsub, POLL_INTERVAL if current == sent else max(0.0, due))
            raw = dict(await store.aio.hgetall(keys.batch(batch_id)))
            if not raw:
                return  # expired
            current = _progress(raw)
            if not batches.is_ended(raw) and current != sent and time.monotonic() >= sent_at + PROGRESS_INTERVAL:
                number += 1
                yield ServerSentEvent(json.dumps(current), event=events.PROGRESS, id=str(number))
                sent, sent_at = current, time.monotonic()
        number += 1
        yield ServerSentEvent(json.dumps(_progress(raw)), event=events.PROGRESS, id=str(number))
        number += 1
        yield ServerSentEvent(json.dumps(batches.batch_view(raw)), event=events.STATUS, id=str(number))
    finally:
        await pubsub.aclose()


async def _next_notice(pubsub: Any, timeout: float) -> None:
    """Wait for a notice on the batch's channel (or `timeout`), then drop any others already queued."""
    message = await pubsub.get_message(timeout=timeout)
    while message is not None:
        message = await pubsub.get_message(timeout=0)
