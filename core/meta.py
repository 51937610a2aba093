"""The keys this service keeps in a job's RQ `meta`, in one typed definition.

Web, workers and the SDK read and write `job.meta` only through these names; `JobMeta` says
what each holds.
"""

from __future__ import annotations

from typing import Any, Final, TypedDict

#: The job type's registered name (`demo.sleep`), written at submission.
TYPE: Final = "type"
#: The name of the API key that submitted the job.
OWNER: Final = "owner"
#: The last percentage the job reported, 0–100.
PROGRESS: Final = "progress"
#: The newest progress entries, `{"seq", "at", "message", "progress"}`, oldest first.
MESSAGES: Final = "messages"
#: The event id of the newest entry of `MESSAGES`.
SEQ: Final = "seq"
#: How many times the job has started (1 on its first run).
ATTEMPT: Final = "attempt"
#: Where the completion callback goes.
CALLBACK_URL: Final = "callback_url"
#: The completion callback's delivery state: `{"attempts", "delivered", "last_error"}`.
CALLBACK: Final = "callback"
#: Kept by a callback delivery job: the signed body and its target, fixed at its first attempt.
CALLBACK_BODY: Final = "body"
CALLBACK_TARGET: Final = "url"
#: The batch a job is a member of (`POST /batches`).
BATCH_ID: Final = "batch_id"
#: The batch whose end enqueued this job (its `on_complete` job): that batch's id.
COMPLETES_BATCH: Final = "completes_batch"
#: The schedule whose run this job is (absent for a job submitted directly).
SCHEDULE_ID: Final = "schedule_id"
#: The due time (ISO 8601 UTC) this schedule run was fired for.
SCHEDULED_FOR: Final = "scheduled_for"
#: The trace context the job's runs continue, as W3C headers (`traceparent`, `tracestate`); written
#: when the job is built while a span is current (the request's), and only when tracing is on.
TRACE: Final = "trace"


class JobMeta(TypedDict, total=False):
    """What a job's `meta` may hold; every key is optional (a job may have reported nothing yet)."""

    type: str
    owner: str
    progress: float
    messages: list[dict[str, Any]]
    seq: int
    attempt: int
    callback_url: str
    callback: dict[str, Any]
    body: str
    url: str
    batch_id: str
    completes_batch: str
    schedule_id: str
    scheduled_for: str
    trace: dict[str, str]
