"""Result reuse over HTTP: the `Reuse` a `POST /jobs` request makes, and the `Cache-Status` header
(RFC 9211) that says how it was answered.

`Cache-Status: jobsvc; hit` (with `ttl=<seconds>`, the remaining freshness, once the reused job has
finished) when an identical job answered; `jobsvc; fwd=miss` when a new job was enqueued;
`jobsvc; fwd=request` when one could have been reused but the request said `Cache-Control: no-cache`.
No header when the submission reuses nothing (no `cache_ttl`, from the request or its job type).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from rq.job import Job, JobStatus
from starlette.requests import Request

from app.submission import Submission
from core.reuse import Reuse, reuse_key
from core.settings import Settings

HEADER = "Cache-Status"
CACHE_NAME = "jobsvc"


def wants_new_job(request: Request) -> bool:
    """True when the request's `Cache-Control` has `no-cache`: a new job, even if one could be reused."""
    directives = request.headers.get("cache-control", "").split(",")
    return any(directive.split("=", 1)[0].strip().lower() == "no-cache" for directive in directives)


def reuse_for(request: Request, submission: Submission, owner: str, settings: Settings) -> Reuse:
    """What this submission does in result reuse: record its job, and with `cache_ttl` first look for one."""
    key = reuse_key(owner, submission.spec.name, submission.queue, submission.args)
    refresh = submission.cache_ttl is not None and wants_new_job(request)
    return Reuse(key, settings.result_ttl, submission.cache_ttl, refresh)


def hit(job: Job, cache_ttl: int, now: datetime | None = None) -> str:
    """The header of an answer with a reused `job`; a finished one says how long it stays fresh."""
    if job.get_status(refresh=False) != JobStatus.FINISHED or job.ended_at is None:
        return f"{CACHE_NAME}; hit"
    age = ((now or datetime.now(UTC)) - job.ended_at.replace(tzinfo=UTC)).total_seconds()
    return f"{CACHE_NAME}; hit; ttl={max(0, math.floor(cache_ttl - age))}"


def forwarded(passed_over: bool) -> str:
    """The header of an answer with a new job: `request` when the client's no-cache passed over a reusable one."""
    return f"{CACHE_NAME}; fwd={'request' if passed_over else 'miss'}"
