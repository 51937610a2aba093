"""RQ job -> the JSON job view of API.md section 2."""

from __future__ import annotations

from typing import Any

from rq.job import Job, JobStatus
from rq.results import Result

from core import tracing
from core.clock import iso_z
from core.meta import ATTEMPT, BATCH_ID, CALLBACK, OWNER, PROGRESS, SCHEDULE_ID, SCHEDULED_FOR, TRACE, TYPE
from core.outcome import error_line, summarize_exception
from core.rqadapter.jobdata import meta_is_unreadable, readable_meta
from jobs.progress import shown_messages

UNREADABLE = "job metadata in Redis is not JSON; it was not deserialized (refusing non-JSON job data)"
ERROR_STATUSES = (JobStatus.FAILED, JobStatus.STOPPED)

__all__ = ["ENDED", "OWNER", "TYPE", "error_line", "job_view", "summarize_exception"]

ENDED = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}


def job_view(
    job: Job,
    *,
    result: Result | None = None,
    position: int | None = None,
    details: bool = True,
    waiting: str | None = None,
) -> dict[str, Any]:
    """The public view of `job`; `details=False` leaves out messages and result (for listings). `waiting`: why
    a queued job is held back by a flow-control limit (`app.flow.waiting_of`), shown with the details."""
    status = job.get_status(refresh=False)
    unreadable = meta_is_unreadable(job)
    meta = readable_meta(job)
    view: dict[str, Any] = {
        "id": job.id,
        "type": meta.get(TYPE),
        "description": job.description,
        "queue": job.origin,
        "status": status.value if status else None,
        "progress": 100 if status == JobStatus.FINISHED else meta.get(PROGRESS, 0),
        "owner": meta.get(OWNER),
    }
    if details:
        view["messages"] = shown_messages(meta)
        view["result"] = result.return_value if status == JobStatus.FINISHED and result is not None else None
        view["args"] = None if unreadable else _arguments(job)
        view["attempt"] = int(meta.get(ATTEMPT, 0) or 0)
        view["waiting"] = waiting if status == JobStatus.QUEUED else None
    view.update(
        error=UNREADABLE if unreadable else error_line(job, result) if status in ERROR_STATUSES else None,
        created_at=iso_z(job.created_at),
        enqueued_at=iso_z(job.enqueued_at),
        started_at=iso_z(job.started_at),
        ended_at=iso_z(job.ended_at),
        timeout=job.timeout,
        retries_left=job.retries_left or 0,
        position=position if status == JobStatus.QUEUED else None,
        callback=meta.get(CALLBACK),
    )
    if meta.get(BATCH_ID):  # a batch's member
        view["batch_id"] = meta[BATCH_ID]
    if meta.get(SCHEDULE_ID):  # a schedule's run: which schedule, and the due time it was fired for
        view.update(schedule_id=meta[SCHEDULE_ID], scheduled_for=meta.get(SCHEDULED_FOR))
    if trace_id := tracing.trace_id(meta.get(TRACE)):  # submitted while traced: the trace its runs join
        view["trace_id"] = trace_id
    return view


def _arguments(job: Job) -> dict[str, Any] | None:
    """The arguments the job was submitted with (what "Run again" starts from), or None when its data
    cannot be read as JSON."""
    try:
        kwargs = job.kwargs
    except Exception:  # data RQ cannot deserialize with the JSON serializer: shown as unknown, not a 500
        return None
    return dict(kwargs) if isinstance(kwargs, dict) else None
