"""Rules every submission follows, whoever makes it: the web (`POST /jobs`, batches) or a worker
firing a schedule's run."""

from __future__ import annotations

from typing import Any

from rq.job import JobStatus

from core import tracing
from core.meta import MESSAGES, OWNER, PROGRESS, TRACE, TYPE
from core.settings import Settings

#: A job waiting or running, as RQ stores its status: what counts against an owner's `MAX_ACTIVE_JOBS`
#: and what a schedule with `overlap: false` waits for.
ACTIVE_STATUSES = frozenset(
    status.value.encode() for status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.STARTED)
)


def retry_intervals(retries: int, base: int, cap: int) -> list[int]:
    """Exponential backoff: base, 2*base, 4*base ... each capped. One interval per retry, so a job's
    `retry_intervals` also tell how many retries it was submitted with (POST /jobs/{id}/retry)."""
    return [min(cap, base * 2**attempt) for attempt in range(retries)]


def listing_horizon_us(settings: Settings) -> float:
    """How far back (µs) a listing index keeps entries: beyond any job's longest life, so trimming older
    entries on each submission never drops a job that still exists."""
    return (2 * max(settings.result_ttl, settings.failure_ttl) + 86400) * 1_000_000


def initial_meta(job_type: str, owner: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A new job's meta: its type and owner, no progress yet, and `extra` (callback, schedule or batch keys);
    with tracing on, the current span's context too."""
    meta = {TYPE: job_type, PROGRESS: 0, MESSAGES: [], OWNER: owner, **(extra or {})}
    carried = tracing.carrier()
    if carried:
        meta[TRACE] = carried
    return meta
