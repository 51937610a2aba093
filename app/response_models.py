"""Response models: the shapes of what the API answers, for /openapi.json and the tests that keep
the views honest (tests validate real responses against these)."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.listing.statuses import ListedStatus
from core.queues import QueueName


class Message(BaseModel):
    time: AwareDatetime = Field(description="When the job reported it (UTC, `Z`)")
    message: str
    progress: float = Field(ge=0, le=100)


class JobSummary(BaseModel):
    """A job as listings show it (no messages, no result)."""

    model_config = ConfigDict(extra="allow")  # later fields (e.g. `callback`) may be added

    id: str
    type: str | None = Field(description="The job type; null only where the stored job is unreadable")
    description: str | None
    queue: str
    status: ListedStatus | None = Field(description="The job's status (the words `GET /jobs?status=` takes)")
    progress: float = Field(ge=0, le=100)
    owner: str | None = Field(description="Name of the API key that submitted the job")
    error: str | None = Field(description="One line, once failed or stopped (never a traceback)")
    created_at: AwareDatetime | None
    enqueued_at: AwareDatetime | None
    started_at: AwareDatetime | None
    ended_at: AwareDatetime | None
    timeout: int | None = Field(description="Run-time limit (s)")
    retries_left: int = Field(ge=0)
    position: int | None = Field(description="0-based place in its queue while queued")
    trace_id: str | None = Field(None, description="The trace its runs join (with tracing on), 32 hex digits")


class JobView(JobSummary):
    """A job with its progress messages and result (API.md section 2)."""

    messages: list[Message] = Field(description="Oldest first; the newest PROGRESS_MAX_MESSAGES are kept")
    result: Any = Field(description="The JSON return value once finished, else null")
    waiting: str | None = Field(
        None,
        description="Why a queued job is held back by a flow-control limit (`demo.sleep: 2 of 2 running`), else null",
    )


class JobPage(BaseModel):
    jobs: list[JobSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class QueueCounts(BaseModel):
    queued: int = Field(ge=0)
    started: int = Field(ge=0)
    scheduled: int = Field(ge=0)
    deferred: int = Field(ge=0)
    finished: int = Field(ge=0)
    failed: int = Field(ge=0)
    canceled: int = Field(ge=0)


class WorkerCounts(BaseModel):
    count: int = Field(ge=0)
    busy: int = Field(ge=0)


class LimitCounts(BaseModel):
    running: int = Field(ge=0, description="Running jobs (for a rate limit: starts in the current window)")
    limit: int = Field(ge=1)
    waiting: int = Field(ge=0, description="Queued jobs the limit applies to")


class Stats(BaseModel):
    queues: dict[QueueName, QueueCounts]
    workers: WorkerCounts
    limits: dict[str, LimitCounts] = Field(
        description="Flow-control limits in force: `<type>`, `<type>/<unit>` (a rate) or `key <owner>`"
    )


class JobTypeInfo(BaseModel):
    type: str
    description: str
    queue: QueueName
    timeout: int
    retries: int
    cache_ttl: int | None = Field(
        None, description="Default `cache_ttl` of POST /jobs (result reuse, seconds); null: no reuse unless asked"
    )
    args_schema: dict[str, Any] = Field(description="JSON Schema of the type's `args`")


class Health(BaseModel):
    status: str = Field(description="`ok` while the process serves")


class Ready(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str
    redis: str
    workers: int = Field(ge=0)


class FieldProblem(BaseModel):
    loc: list[str | int] = Field(description='Path to the offending field, e.g. ["args", "steps"]')
    msg: str


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`); never a traceback."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="`/problems/<slug>`")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    errors: list[FieldProblem] | None = Field(None, description="Field problems (422)")
