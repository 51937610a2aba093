"""RQ job -> the JSON job view of API.md section 2."""

from __future__ import annotations

from typing import Any

from rq.job import Job, JobStatus
from rq.results import Result

from core.clock import iso_z
from core.meta import CALLBACK, OWNER, PROGRESS, SCHEDULE_ID, SCHEDULED_FOR, TYPE
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
) -> dict[str, Any]:
    """The public view of `job`; `details=False` leaves out messages and result (for listings)."""
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
    if meta.get(SCHEDULE_ID):  # a schedule's run: which schedule, and the due time it was fired for
        view.update(schedule_id=meta[SCHEDULE_ID], scheduled_for=meta.get(SCHEDULED_FOR))
    return view
