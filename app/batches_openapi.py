"""The batches resource's entries of the OpenAPI table (taken in by `app.openapi.OPERATIONS`) and their models."""

from __future__ import annotations

from typing import Annotated

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, UrlConstraints

from app.batches import OnComplete
from app.operations import BODY_REFUSED, Operation, Reply
from app.response_models import JobPage
from app.routes.batches import ListQuery
from app.schemas import BatchMember


class BatchSubmitRequest(BaseModel):
    """Body of `POST /batches` (each member is validated as a `POST /jobs` body without `depends_on` or
    `cache_ttl`, its errors under `jobs.<i>`)."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[BatchMember] = Field(min_length=1, description="1 to MAX_BATCH_JOBS job submissions")
    description: str | None = None
    callback_url: Annotated[AnyHttpUrl, UrlConstraints(max_length=2000)] | None = Field(
        None, description="Receives the signed batch view once when the batch ends"
    )
    on_complete: OnComplete | None = Field(None, description="A job enqueued once when the batch ends")


class BatchCallback(BaseModel):
    attempts: int
    delivered: bool
    last_error: str | None


class BatchView(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    description: str | None
    status: str = Field(description="running, then finished or failed; canceled after DELETE")
    total: int
    counts: dict[str, int] = Field(description="Members per job status")
    progress: float = Field(description="The members' mean progress, 0-100")
    created_at: str
    ended_at: str | None
    on_complete_job_id: str | None
    callback: BatchCallback | None


class BatchPage(BaseModel):
    batches: list[BatchView]
    next_cursor: str | None


BATCH_ID = {"batch_id": "The batch's id, as returned by `POST /batches`"}
_GONE = "No such batch, it expired, or another API key's batch"
_DOWN = {503: "Redis is unreachable, or full (its maxmemory reached); nothing was changed (see `Retry-After`)"}

BATCH_OPERATIONS: list[Operation] = [
    Operation(
        "POST", "/batches", "submitBatch", "Submit a batch of jobs, validated together, with one end",
        body=BatchSubmitRequest,
        examples={
            "three jobs and a report": {
                "jobs": [{"type": "demo.steps", "args": {"steps": 3}}, {"type": "demo.steps"}, {"type": "demo.noop"}],
                "description": "chapters of one book",
                "on_complete": {"type": "demo.batch_report"},
            },
        },
        replies={202: Reply("Accepted and queued", BatchView, headers={"Location": "`/batches/{id}`"})},
        problems={400: "Malformed JSON or a body that is not an object", **BODY_REFUSED,
                  422: "An invalid member (`errors[].loc` names it) or over MAX_BATCH_JOBS",
                  429: "RATE_LIMIT or MAX_ACTIVE_JOBS (counting every member) reached", **_DOWN},
        tag="batches",
    ),
    Operation(
        "GET", "/batches", "listBatches", "List batches, newest first (a key sees its own; admin all)",
        query=ListQuery, replies={200: Reply("One page of batches", BatchPage)},
        problems={422: "The limit or cursor is invalid", **_DOWN}, tag="batches",
    ),
    Operation(
        "GET", "/batches/{batch_id}", "getBatch", "A batch's status, counts per member status and progress",
        path_params=BATCH_ID, replies={200: Reply("The batch", BatchView)}, problems={404: _GONE, **_DOWN},
        tag="batches",
    ),
    Operation(
        "DELETE", "/batches/{batch_id}", "cancelBatch", "Cancel a batch: waiting members canceled, running stopped",
        path_params=BATCH_ID, replies={202: Reply("Canceled (its end follows once no member runs)", BatchView)},
        problems={404: _GONE, 409: "The batch has already ended", **_DOWN}, tag="batches",
    ),
    Operation(
        "GET", "/batches/{batch_id}/jobs", "listBatchJobs", "The batch's members, newest first",
        path_params=BATCH_ID, query=ListQuery, replies={200: Reply("One page of members", JobPage)},
        problems={404: _GONE, 422: "The limit or cursor is invalid", **_DOWN}, tag="batches",
    ),
    Operation(
        "GET", "/batches/{batch_id}/events", "streamBatchEvents",
        "The batch's progress as Server-Sent Events (a few a second), then its final status",
        path_params=BATCH_ID,
        replies={200: Reply("An event stream (`text/event-stream`)", media_type="text/event-stream",
                            schema={"type": "string"})},
        problems={404: _GONE, **_DOWN}, tag="batches",
    ),
]  # fmt: skip
