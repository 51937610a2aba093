"""The batches resource: submit, list, read, cancel, live events, members."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import batches_live
from app.auth import principal
from app.batches import BatchWriter, check_callbacks, validate
from app.body import read_json_object
from app.control import cancel as cancel_job
from app.errors import ConflictError, NotFoundError, ValidationFailedError
from app.listing import InvalidCursorError, decode_cursor, encode_cursor, page
from app.ownership import listing_owner
from app.quota import Quota
from app.ratelimit import count_submission
from app.store import JobStore
from app.submission import validate_model
from app.views import job_view
from core import batches, keys
from core.rqadapter.batches import ENDED
from core.settings import Settings

#: Members canceled or stopped at once by `DELETE /batches/{id}`.
CANCEL_CONCURRENCY = 32
_ORDER = "batch"


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=400)


def _store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


def _writer(request: Request) -> BatchWriter:
    writer: BatchWriter | None = getattr(request.app.state, "batch_writer", None)
    if writer is None:
        writer = request.app.state.batch_writer = BatchWriter(_store(request))
    return writer


def _missing(batch_id: str) -> NotFoundError:
    return NotFoundError(f"no batch {batch_id!r} (it never existed or has expired)")


async def owned_batch(request: Request, batch_id: str) -> dict[Any, Any]:
    """The batch's hash if the caller may see it; otherwise 404, whether it exists or not."""
    raw: dict[Any, Any] = await _store(request).aio.hgetall(keys.batch(batch_id))
    caller = principal(request)
    if not raw or b"id" not in raw or not (caller.admin or batches.owner_of(raw) == caller.name):
        raise _missing(batch_id)
    return raw


async def submit_batch(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    caller = principal(request)
    await count_submission(request, caller.name)
    body = await read_json_object(request, settings.max_body_bytes)
    plan = validate(body, settings)
    callbacks_meta = await check_callbacks(plan, settings)
    quota = Quota(caller.name, settings.max_active_jobs) if settings.max_active_jobs else None
    written = await _writer(request).write(plan, caller.name, quota, callbacks_meta)
    view = batches.batch_view(written.raw)
    return JSONResponse(view, status_code=202, headers={"Location": f"/batches/{written.batch_id}"})


async def get_batch(request: Request) -> Response:
    return JSONResponse(batches.batch_view(await owned_batch(request, request.path_params["batch_id"])))


async def list_batches(request: Request) -> Response:
    query: ListQuery = validate_model(ListQuery, dict(request.query_params))
    owner = listing_owner(request)
    index = keys.BATCH_INDEX_ALL if owner is None else keys.batch_index_for_owner(owner)
    top: Any = "+inf"
    if query.cursor:
        try:
            top = f"({float(decode_cursor(query.cursor, _ORDER)[0])!r}"
        except (InvalidCursorError, IndexError, TypeError, ValueError):
            raise ValidationFailedError.field(["cursor"], "not a cursor issued by this service") from None
    aio = _store(request).aio
    found: list[Any] = await aio.zrevrangebyscore(index, top, "-inf", start=0, num=query.limit + 1, withscores=True)
    shown = found[: query.limit]
    async with aio.pipeline(transaction=False) as pipe:
        for batch_id, _score in shown:
            pipe.hgetall(keys.batch(batch_id.decode()))
        hashes = await pipe.execute()
    views = [batches.batch_view(raw) for raw in hashes if raw and b"id" in raw]
    expired = [batch_id for (batch_id, _), raw in zip(shown, hashes, strict=True) if not raw or b"id" not in raw]
    if expired:
        await aio.zrem(index, *expired)
    next_cursor = encode_cursor(_ORDER, (shown[-1][1],)) if len(found) > query.limit else None
    return JSONResponse({"batches": views, "next_cursor": next_cursor})


async def cancel_batch(request: Request) -> Response:
    """Mark the batch canceled, cancel its waiting members and stop its running ones (202)."""
    batch_id = request.path_params["batch_id"]
    await owned_batch(request, batch_id)
    store = _store(request)
    marked = await store.aio.eval(
        "if redis.call('HGET', KEYS[1], 'done') == '1' then return 0 end "
        "redis.call('HSET', KEYS[1], 'status', 'canceled') return 1",
        1,
        keys.batch(batch_id),
    )
    if not marked:
        raise ConflictError(f"batch {batch_id!r} has already ended; there is nothing to cancel")
    members: dict[Any, Any] = await store.aio.hgetall(keys.batch_members(batch_id))
    waiting = [job_id.decode() for job_id, state in members.items() if state.split(b" ")[0].decode() not in ENDED]
    limit = asyncio.Semaphore(CANCEL_CONCURRENCY)

    async def cancel_one(job_id: str) -> None:
        async with limit:
            try:
                await cancel_job(store, job_id)
            except (ConflictError, NotFoundError):  # ended (or expired) meanwhile: nothing to do
                pass

    await asyncio.gather(*(cancel_one(job_id) for job_id in waiting))
    raw = await owned_batch(request, batch_id)
    return JSONResponse(batches.batch_view(raw), status_code=202)


async def batch_jobs(request: Request) -> Response:
    """The batch's members, paged as `GET /jobs` (what `GET /jobs?batch=` lists)."""
    batch_id = request.path_params["batch_id"]
    await owned_batch(request, batch_id)
    query: ListQuery = validate_model(ListQuery, dict(request.query_params))
    try:
        found = await page(
            _store(request),
            status=None,
            queue=None,
            job_type=None,
            limit=query.limit,
            cursor=query.cursor,
            owner=listing_owner(request),
            batch=batch_id,
        )
    except InvalidCursorError:
        raise ValidationFailedError.field(["cursor"], "not a cursor issued by this service") from None
    views = [{**job_view(record.job, details=False), "batch_id": batch_id} for record in found.records]
    body = {"jobs": views, "next_cursor": found.next_cursor}
    return JSONResponse(body)


async def batch_events(request: Request) -> Response:
    batch_id = request.path_params["batch_id"]
    raw = await owned_batch(request, batch_id)
    return await batches_live.stream(request, _store(request), batch_id, raw)


routes = [
    Route("/batches", submit_batch, methods=["POST"]),
    Route("/batches", list_batches, methods=["GET"]),
    Route("/batches/{batch_id}", get_batch, methods=["GET"]),
    Route("/batches/{batch_id}", cancel_batch, methods=["DELETE"]),
    Route("/batches/{batch_id}/jobs", batch_jobs, methods=["GET"]),
    Route("/batches/{batch_id}/events", batch_events, methods=["GET"]),
]
