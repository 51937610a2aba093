"""Live progress: `GET /jobs/{id}/events`, Server-Sent Events (API.md section 8).

First a `status` event with the current job view (after the progress events missed since
`Last-Event-ID`, when the client resumes), then a `progress` event for every report and a
`status` event for every status change; the stream ends after the final status. Progress
and status events carry the event's id, so `Last-Event-ID` resumes without repeats or gaps.
A comment line goes out every `SSE_KEEPALIVE` seconds on a quiet stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth import principal
from app.errors import NotFoundError, ValidationFailedError
from app.live import EventHub, Listener, Snapshot
from app.ownership import can_see
from app.store import JobRecord
from app.views import job_view
from jobs import events
from jobs.events import Event
from jobs.settings import Settings


def _hub(request: Request) -> EventHub:
    hub: EventHub = request.app.state.events
    return hub


def _last_event_id(request: Request) -> str | None:
    """`Last-Event-ID` (what EventSource sends on reconnect), or `?last_event_id=` for clients that cannot set it."""
    value = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if not value:
        return None
    try:
        events.parse_id(value.strip())
    except ValueError:
        raise ValidationFailedError.field(["headers", "Last-Event-ID"], "not an event id of this stream") from None
    return value.strip()


async def job_events(request: Request) -> Response:
    job_id: str = request.path_params["job_id"]
    after = _last_event_id(request)
    hub = _hub(request)
    await hub.start()
    listener = hub.join(job_id)
    try:
        snapshot = await hub.snapshot(job_id, after)
    except BaseException:
        hub.leave(listener)
        raise
    if snapshot is None or not can_see(principal(request), snapshot.record.job):
        hub.leave(listener)  # another key's job is answered like a missing one
        raise NotFoundError(f"no job {job_id!r} (it never existed or has expired)")
    hub.ready(listener, snapshot.cursor)
    settings: Settings = request.app.state.settings
    return EventSourceResponse(
        _stream(hub, listener, snapshot),
        ping=settings.sse_keepalive,
        background=BackgroundTask(hub.leave, listener),
    )


async def _stream(hub: EventHub, listener: Listener, snapshot: Snapshot) -> AsyncIterator[ServerSentEvent]:
    try:
        for event in snapshot.replay:
            if event.kind == events.PROGRESS:
                yield _progress(event)
        status = _view(snapshot.record, listener.job_id, None)
        yield ServerSentEvent(json.dumps(status), event=events.STATUS, id=snapshot.last_id)
        if status["status"] in events.FINAL_STATUSES:
            return
        emitted = snapshot.cursor
        while True:
            batch = await listener.queue.get()
            fresh = [event for event in batch.events if event.order > emitted]
            if not fresh:
                continue
            emitted = fresh[-1].order
            statuses = [i for i, event in enumerate(fresh) if event.kind == events.STATUS]
            for i, event in enumerate(fresh):
                if event.kind == events.PROGRESS:
                    yield _progress(event)
                elif statuses and i == statuses[-1]:  # earlier changes in the batch are already superseded
                    view = _view(batch.record, listener.job_id, event.data.get("status"))
                    yield ServerSentEvent(json.dumps(view), event=events.STATUS, id=event.id)
                    if event.data.get("status") in events.FINAL_STATUSES:
                        return
    finally:
        hub.leave(listener)


def _progress(event: Event) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(event.data), event=events.PROGRESS, id=event.id)


def _view(record: JobRecord | None, job_id: str, status: str | None) -> dict[str, Any]:
    if record is None:  # the job expired or was deleted meanwhile
        return {"id": job_id, "status": status}
    return job_view(record.job, result=record.result, position=record.position)


routes = [Route("/jobs/{job_id}/events", job_events, methods=["GET"])]
