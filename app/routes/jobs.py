"""The jobs resource: submit, status, list."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rq.job import JobStatus
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.body import read_json_object
from app.callback_url import callback_meta
from app.errors import NotFoundError, ValidationFailedError
from app.store import InvalidCursorError, JobStore
from app.submission import parse_submission, validate_model
from app.views import TYPE, job_view
from jobs.catalog import registry
from jobs.progress import MESSAGES, PROGRESS
from jobs.queues import QueueName
from jobs.settings import Settings


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: JobStatus | None = None
    queue: QueueName | None = None
    type: str | None = Field(None, min_length=1, max_length=200)
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=400)


def _store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def submit_job(request: Request) -> Response:
    settings = _settings(request)
    body = await read_json_object(request, settings.max_body_bytes)
    submission = parse_submission(body, registry, settings)
    store = _store(request)
    job = store.build_job(
        func_path=submission.spec.func_path,
        kwargs=submission.args,
        queue=submission.queue,
        timeout=submission.timeout,
        retries=submission.retries,
        description=submission.description,
        meta={
            TYPE: submission.spec.name,
            PROGRESS: 0,
            MESSAGES: [],
            **await callback_meta(submission.callback_url, settings),
        },
    )
    await store.enqueue(job, submission.spec.name)
    return JSONResponse(job_view(job), status_code=202, headers={"Location": f"/jobs/{job.id}"})


async def get_job(request: Request) -> Response:
    job_id: str = request.path_params["job_id"]
    record = await _store(request).fetch(job_id)
    if record is None:
        raise NotFoundError(f"no job {job_id!r} (it never existed or has expired)")
    return JSONResponse(job_view(record.job, result=record.result, position=record.position))


async def list_jobs(request: Request) -> Response:
    query: ListQuery = validate_model(ListQuery, dict(request.query_params))
    if query.type is not None and query.type not in registry:
        raise ValidationFailedError.field(["type"], f"unknown job type {query.type!r}")
    try:
        page = await _store(request).page(
            status=query.status.value if query.status else None,
            queue=query.queue,
            job_type=query.type,
            limit=query.limit,
            cursor=query.cursor,
        )
    except InvalidCursorError:
        raise ValidationFailedError.field(["cursor"], "not a cursor issued by this service") from None
    body: dict[str, Any] = {
        "jobs": [job_view(record.job, details=False) for record in page.records],
        "next_cursor": page.next_cursor,
    }
    return JSONResponse(body)


routes = [
    Route("/jobs", submit_job, methods=["POST"]),
    Route("/jobs", list_jobs, methods=["GET"]),
    Route("/jobs/{job_id}", get_job, methods=["GET"]),
]
