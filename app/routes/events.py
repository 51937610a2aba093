"""Live progress and output: `GET /jobs/{id}/events`, Server-Sent Events (API.md sections 8 and 14),
and `GET /jobs/{id}/output`, the output so far as plain text.

First a `status` event with the current job view (after the progress and output events missed
since `Last-Event-ID`, when the client resumes), then a `progress` event for every report, an
`output` event for every output chunk and a `status` event for every status change; the stream
ends after the final status. A status event's view says, like `GET /jobs/{id}`, why a queued job is held
back by a flow-control limit (`waiting`). Progress and output events carry their number (`core.events`) as
id, and a status event the id of the event before it, so `Last-Event-ID` resumes without repeats
or gaps, also after the job ended. A comment line goes out every `SSE_KEEPALIVE` seconds on a
quiet stream.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.auth import principal
from app.errors import NotFoundError, ValidationFailedError
from app.flow import waiting_of
from app.live import EventHub, Listener, Snapshot
from app.ownership import can_see, owned_job
from app.store import JobRecord, JobStore
from app.views import job_view
from core import events
from core import output as job_output
from core.events import Event
from core.settings import Settings

_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def _hub(request: Request) -> EventHub:
    hub: EventHub = request.app.state.events
    return hub


def _last_event_id(request: Request) -> int | None:
    """`Last-Event-ID` (what EventSource sends on reconnect), or `?last_event_id=` for clients that cannot set it."""
    value = (request.headers.get("last-event-id") or request.query_params.get("last_event_id") or "").strip()
    if not value or _STREAM_ID.match(value):  # none, or a stream id from before events were numbered: no replay
        return None
    try:
        return events.parse_id(value)
    except ValueError:
        raise ValidationFailedError.field(["headers", "Last-Event-ID"], "not an event id of this stream") from None


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
    hub.ready(listener, snapshot.state)
    try:
        first = await _view(request, snapshot.record)  # a Redis error here is still an answer (503), not a cut stream
    except BaseException:
        hub.leave(listener)
        raise
    settings: Settings = request.app.state.settings
    return EventSourceResponse(
        _stream(request, listener, snapshot, first),
        ping=settings.sse_keepalive,
        background=BackgroundTask(hub.leave, listener),
    )


async def _stream(
    request: Request, listener: Listener, snapshot: Snapshot, status: dict[str, Any]
) -> AsyncIterator[ServerSentEvent]:
    """The snapshot's replay and `status` (its view), then what the hub queues to `listener`."""
    try:
        for event in snapshot.replay:
            yield _event(event)
        yield ServerSentEvent(json.dumps(status), event=events.STATUS, id=str(snapshot.seq))
        if status["status"] in events.FINAL_STATUSES:
            return
        while True:
            batch = await listener.queue.get()
            for event in batch.events:
                if event.kind != events.STATUS:
                    yield _event(event)
                    continue
                view = await _view(request, batch.record)
                yield ServerSentEvent(json.dumps(view), event=events.STATUS, id=str(event.id))
                if view["status"] in events.FINAL_STATUSES:
                    return
    finally:
        _hub(request).leave(listener)


def _event(event: Event) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(event.data), event=event.kind, id=str(event.id))


async def _view(request: Request, record: JobRecord) -> dict[str, Any]:
    """The job view `GET /jobs/{id}` answers; `waiting` costs a read only for a queued job a limit applies to."""
    waiting = await waiting_of(request, record.job)
    return job_view(record.job, result=record.result, position=record.position, waiting=waiting)


async def job_output_text(request: Request) -> Response:
    """The job's output so far (whole once it ended), the newest `OUTPUT_MAX_BYTES`; 404 as `GET /jobs/{id}`."""
    job_id: str = request.path_params["job_id"]
    await owned_job(request, job_id)  # read first: a job that has ended wrote all of its output before
    store: JobStore = request.app.state.store
    settings: Settings = request.app.state.settings
    output = await job_output.fetch(store.aio, job_id)
    return PlainTextResponse(
        job_output.rendered(output, settings.output_max_bytes), headers={"Cache-Control": "no-store"}
    )


routes = [
    Route("/jobs/{job_id}/events", job_events, methods=["GET"]),
    Route("/jobs/{job_id}/output", job_output_text, methods=["GET"]),
]
