"""The schedules resource: create, list, read, change (pause with `enabled`), delete.

A key sees its own schedules and the service's (declared in code, `jobs.schedules`); another key's
schedule is a 404, as for jobs. Admin keys see and may change every schedule; the service's may be
changed or deleted by admin keys only. Schedule I/O is blocking Redis (`core.schedules.store`), run
in the thread pool.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.auth import Principal, principal
from app.body import read_json_object
from app.errors import ConflictError, NotFoundError, ValidationFailedError
from app.listing import InvalidCursorError, decode_cursor, encode_cursor
from app.listing.cursors import score_position
from app.schedules import parse_schedule_body, patched_body
from app.schedules_openapi import ScheduleListQuery
from app.store import JobStore
from app.submission import validate_model
from core.schedules.model import SERVICE_OWNER, Definition, Schedule
from core.schedules.store import ScheduleContendedError, ScheduleStore, visible_owners
from core.settings import Settings
from jobs.catalog import registry

CURSOR_ORDER = "sch"


def _schedules(request: Request) -> ScheduleStore:
    store: JobStore = request.app.state.store
    return ScheduleStore(store.sync)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _may_see(caller: Principal, schedule: Schedule) -> bool:
    owner = schedule.definition.owner
    return caller.admin or owner in (caller.name, SERVICE_OWNER)


def _may_change(caller: Principal, schedule: Schedule) -> bool:
    return caller.admin or schedule.definition.owner == caller.name


def _not_found(schedule_id: str) -> NotFoundError:
    return NotFoundError(f"no schedule {schedule_id!r}")


async def _owned(request: Request, *, change: bool = False) -> Schedule:
    """The schedule of the path if the caller may see it (or change it, with `change`); else 404 (or 409)."""
    schedule_id = request.path_params["schedule_id"]
    caller = principal(request)
    schedule = await run_in_threadpool(_schedules(request).get, schedule_id)
    if schedule is None or not _may_see(caller, schedule):
        raise _not_found(schedule_id)
    if change and not _may_change(caller, schedule):
        raise ConflictError("this schedule is declared by the service; only an admin key may change it")
    return schedule


async def create_schedule(request: Request) -> Response:
    settings = _settings(request)
    caller = principal(request)
    body = await read_json_object(request, settings.max_body_bytes)
    definition = await parse_schedule_body(body, registry, settings, caller.name)
    store = _schedules(request)
    if await run_in_threadpool(store.count_of, caller.name) >= settings.max_schedules:
        raise ConflictError(f"this API key already has {settings.max_schedules} schedules (MAX_SCHEDULES)")
    schedule = await run_in_threadpool(store.create, definition)
    return JSONResponse(schedule.view(), status_code=201, headers={"Location": f"/schedules/{schedule.id}"})


async def list_schedules(request: Request) -> Response:
    query: ScheduleListQuery = validate_model(ScheduleListQuery, dict(request.query_params))
    caller = principal(request)
    try:
        after = score_position(decode_cursor(query.cursor, CURSOR_ORDER)) if query.cursor else None
    except InvalidCursorError:
        raise ValidationFailedError.field(["cursor"], "not a cursor issued by this service") from None
    found = await run_in_threadpool(
        _schedules(request).page, visible_owners(caller.name, caller.admin), query.limit, after
    )
    body: dict[str, Any] = {
        "schedules": [schedule.view() for schedule in found.schedules],
        "next_cursor": encode_cursor(CURSOR_ORDER, found.next_cursor) if found.next_cursor else None,
    }
    return JSONResponse(body)


async def get_schedule(request: Request) -> Response:
    return JSONResponse((await _owned(request)).view())


async def update_schedule(request: Request) -> Response:
    settings = _settings(request)
    current = await _owned(request, change=True)
    patch = await read_json_object(request, settings.max_body_bytes)
    old = current.definition
    body = patched_body(old, patch)
    wanted = await parse_schedule_body(body, registry, settings, old.owner, old.created_at)
    wanted = wanted.changed(declared=old.declared)

    def change(_stored: Definition) -> Definition:
        return wanted

    try:
        updated = await run_in_threadpool(_schedules(request).update, current.id, change)
    except ScheduleContendedError:
        raise ConflictError("the schedule kept changing while this request was applied; try again") from None
    if updated is None:
        raise _not_found(current.id)
    return JSONResponse(updated.view())


async def delete_schedule(request: Request) -> Response:
    current = await _owned(request, change=True)
    await run_in_threadpool(_schedules(request).delete, current.id, current.definition.owner)
    return Response(status_code=204)


routes = [
    Route("/schedules", create_schedule, methods=["POST"]),
    Route("/schedules", list_schedules, methods=["GET"]),
    Route("/schedules/{schedule_id}", get_schedule, methods=["GET"]),
    Route("/schedules/{schedule_id}", update_schedule, methods=["PATCH"]),
    Route("/schedules/{schedule_id}", delete_schedule, methods=["DELETE"]),
]
