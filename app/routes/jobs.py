"""The jobs resource: submit, status, list."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rq.job import Job
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.auth import principal
from app.body import read_json_object
from app.callback_url import callback_meta
from app.errors import ConflictError, ValidationFailedError
from app.flow import waiting_of
from app.idempotency import claim_for
from app.listing import InvalidCursorError, ListedStatus, page
from app.metrics import track_submission
from app.ownership import listing_owner, owned_job
from app.quota import Quota
from app.ratelimit import count_submission
from app.result_reuse import HEADER as CACHE_STATUS
from app.result_reuse import forwarded, hit, reuse_for
from app.store import JobStore, Settled
from app.submission import Submission, parse_submission, validate_model
from app.views import job_view
from core.queues import QueueName
from core.settings import Settings
from core.submitting import initial_meta
from jobs.catalog import registry


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt filter is a 422, not an unfiltered page

    status: ListedStatus | None = Field(
        None,
        description="Only jobs in this status, in its own order: finished, failed, stopped, canceled latest "
        "ended first; queued next to run first (high, default, low, each in queue order); scheduled soonest due "
        "first; started and deferred newest first. Without status: newest submitted first.",
    )
    queue: QueueName | None = None
    type: str | None = Field(None, min_length=1, max_length=200)
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=400)
    schedule: str | None = Field(None, min_length=1, max_length=200, description="Only this schedule's runs")
    batch: str | None = Field(None, min_length=1, max_length=200, description="Only this batch's members")


def _store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@track_submission
async def submit_job(request: Request) -> Response:
    settings = _settings(request)
    caller = principal(request)
    await count_submission(request, caller.name)
    body = await read_json_object(request, settings.max_body_bytes)
    request.state.job_type = body.get("type")  # for track_submission
    submission = parse_submission(body, registry, settings, reuse=True)
    claim = claim_for(request, body, settings.idempotency_ttl, caller.name)
    quota = Quota(caller.name, settings.max_active_jobs) if settings.max_active_jobs else None
    reuse = reuse_for(request, submission, caller.name, settings)
    store = _store(request)

    callback = await callback_meta(submission.callback_url, settings)

    def make_job() -> Job:
        return store.build_job(
            **submission.job_fields(),
            meta=initial_meta(submission.spec.name, caller.name, callback),
            depends_on=submission.depends_on,
        )

    if submission.depends_on:
        new, settled = await store.enqueue_dependent(
            make_job, submission.spec.name, submission.depends_on, claim, quota, reuse
        )
    else:
        new = make_job()
        settled = await store.enqueue(
            new, submission.spec.name, at=submission.run_at, claim=claim, quota=quota, reuse=reuse
        )
    if settled.existing is not None:
        return await _existing_job(request, store, settled, submission)
    assert new is not None
    request.state.job = new  # for track_submission
    headers = {"Location": f"/jobs/{new.id}"}
    if submission.cache_ttl is not None:
        headers[CACHE_STATUS] = forwarded(settled.passed_over)
    return JSONResponse(job_view(new), status_code=202, headers=headers)


async def _existing_job(request: Request, store: JobStore, settled: Settled, submission: Submission) -> Response:
    """`200` with the job the submission was answered with: an identical one reused (`Cache-Status: hit`),
    or the original job of the same Idempotency-Key and body."""
    assert settled.existing is not None
    record = await store.fetch(settled.existing)
    if record is None:
        if settled.reused:  # it expired between the script's look and this read: rare, and safe to ask again
            raise ConflictError("the identical job this request would reuse has just expired; send it again")
        raise ConflictError("the job this Idempotency-Key created has expired; send a new key")
    request.state.job = record.job  # for track_submission
    request.state.reused = settled.reused
    headers = {"Location": f"/jobs/{settled.existing}"}
    if settled.reused and submission.cache_ttl is not None:
        headers[CACHE_STATUS] = hit(record.job, submission.cache_ttl)
    view = job_view(record.job, result=record.result, position=record.position)
    return JSONResponse(view, status_code=200, headers=headers)


async def get_job(request: Request) -> Response:
    record = await owned_job(request, request.path_params["job_id"])
    waiting = await waiting_of(request, record.job)
    return JSONResponse(job_view(record.job, result=record.result, position=record.position, waiting=waiting))


async def list_jobs(request: Request) -> Response:
    query: ListQuery = validate_model(ListQuery, dict(request.query_params))
    if query.type is not None and query.type not in registry:
        raise ValidationFailedError.field(["type"], f"unknown job type {query.type!r}")
    try:
        found = await page(
            _store(request),
            status=query.status.value if query.status else None,
            queue=query.queue,
            job_type=query.type,
            limit=query.limit,
            cursor=query.cursor,
            owner=listing_owner(request),
            schedule=query.schedule,
            batch=query.batch,
        )
    except InvalidCursorError:
        raise ValidationFailedError.field(["cursor"], "not a cursor issued by this service") from None
    body: dict[str, Any] = {
        "jobs": [job_view(record.job, details=False) for record in found.records],
        "next_cursor": found.next_cursor,
    }
    return JSONResponse(body)


routes = [
    Route("/jobs", submit_job, methods=["POST"]),
    Route("/jobs", list_jobs, methods=["GET"]),
    Route("/jobs/{job_id}", get_job, methods=["GET"]),
]
