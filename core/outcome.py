"""How a job ended, in one line: shared by the job view and the completion callback."""

from __future__ import annotations

import re

from rq.job import Job, JobStatus
from rq.results import Result

from core.rqadapter.jobdata import exc_info

_TIMEOUT = re.compile(r"JobTimeoutException: .*?\((\d+) seconds?\)")
_EXCEPTION_LINE = re.compile(
    r"^(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Failure|Warning)\b.*)$"
)


def error_line(job: Job, result: Result | None) -> str | None:
    """A one-line reason, never a traceback: exception type and message, or why the job ended."""
    exc_string = (result.exc_string if result is not None else None) or exc_info(job)
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
