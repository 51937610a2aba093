"""RQ job -> the JSON job view of API.md section 2."""

from __future__ import annotations

import re
from typing import Any

from rq.job import Job, JobStatus
from rq.results import Result

from jobs.clock import iso_z
from jobs.progress import MESSAGES, PROGRESS

TYPE = "type"
OWNER = "owner"  # the name of the API key that submitted the job
UNREADABLE = "job metadata in Redis is not JSON; it was not deserialized (refusing non-JSON job data)"
ERROR_STATUSES = (JobStatus.FAILED, JobStatus.STOPPED)
ENDED = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
_TIMEOUT = re.compile(r"JobTimeoutException: .*?\((\d+) seconds?\)")
_EXCEPTION_LINE = re.compile(
    r"^(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Failure|Warning)\b.*)$"
)


def job_view(
    job: Job,
    *,
    result: Result | None = None,
    position: int | None = None,
    details: bool = True,
) -> dict[str, Any]:
    """The public view of `job`; `details=False` leaves out messages and result (for listings)."""
    status = job.get_status(refresh=False)
    unreadable = job._unreadable_meta is not None  # not JSON (a planted pickle, say): never deserialized
    meta = {} if unreadable else job.meta
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
        view["messages"] = list(meta.get(MESSAGES, []))
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
    )
    return view


def error_line(job: Job, result: Result | None) -> str | None:
    """A one-line reason, never a traceback: exception type and message, or why the job ended."""
    exc_string = (result.exc_string if result is not None else None) or job._exc_info
    if job.get_status(refresh=False) == JobStatus.STOPPED:
        return "stopped by request"
    if not exc_string:
        return None
    return summarize_exception(exc_string)


def summarize_exception(exc_string: str) -> str:
    timed_out = _TIMEOUT.search(exc_string)
    if timed_out:
        return f"timed out: exceeded its {timed_out.group(1)} s run-time limit (JobTimeoutException)"
    lines = [line.strip() for line in exc_string.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        match = _EXCEPTION_LINE.match(line)
        if match:
            return _one_line(match.group(1))
    return _one_line(lines[-1]) if lines else "failed"


def _one_line(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
