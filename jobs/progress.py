"""The one API a running job uses to talk back: `report(40, "Found 12 resources")`.

Progress lives in `job.meta` (`progress`, `messages`, `attempt`), so rq-dashboard shows it
too. `report()` updates the running job's own `meta` object and writes it, with a
`progress` event for live streams (`jobs.events`), in one Redis round trip; RQ's success
and failure paths save the job without `meta`, and the worker re-reads `meta` before it
handles a crash, so a message written just before the job returns or dies is kept.
Outside a worker every call here is a no-op, so job functions stay testable as plain functions.
"""

from __future__ import annotations

import math
from typing import Any

from rq import get_current_job
from rq.job import Job

from jobs import events
from jobs.clock import iso_z, utc_now
from jobs.control import StopRequested, cancel_requested
from jobs.settings import get_settings

__all__ = ["StopRequested", "append_message", "attempt", "cancel_requested", "current_job", "report"]

PROGRESS = "progress"
MESSAGES = "messages"
ATTEMPT = "attempt"


def append_message(meta: dict[str, Any], message: str, progress: float | None = None) -> dict[str, Any]:
    """Add a timestamped message (and the new percentage) to `meta`, keeping the newest N."""
    settings = get_settings()
    if progress is None:
        progress = float(meta.get(PROGRESS, 0))
    else:
        progress = _clamp(progress)
        meta[PROGRESS] = progress
    if len(message) > settings.progress_max_message_chars:
        message = message[: settings.progress_max_message_chars - 1] + "…"
    entry = {"time": iso_z(utc_now()), "message": message, "progress": progress}
    messages: list[dict[str, Any]] = meta.setdefault(MESSAGES, [])
    messages.append(entry)
    del messages[: -settings.progress_max_messages]
    return entry


def report(progress: float | None = None, message: str | None = None) -> None:
    """Record `progress` (0-100) and/or a message for the running job; no-op outside a worker."""
    job = get_current_job()
    if job is None:
        return
    if message is None:
        if progress is None:
            return
        job.meta[PROGRESS] = _clamp(progress)
        entry: dict[str, Any] = {"time": iso_z(utc_now()), "message": None, "progress": job.meta[PROGRESS]}
    else:
        entry = append_message(job.meta, message, progress)
    with job.connection.pipeline(transaction=True) as pipe:  # one round trip: meta, event, announcement
        pipe.hset(job.key, "meta", job._serialize_meta())
        events.add_progress(pipe, job, entry)
        pipe.execute()


def current_job() -> Job | None:
    """The RQ job being run by this process, or None outside a worker."""
    return get_current_job()


def attempt() -> int:
    """Which start of the running job this is: 1 on the first run, counting retries and recoveries."""
    job = get_current_job()
    if job is None:
        return 1
    return int(job.meta.get(ATTEMPT, 1))


def _clamp(progress: float) -> float:
    if math.isnan(progress):
        return 0.0
    value = max(0.0, min(100.0, float(progress)))
    return int(value) if value.is_integer() else round(value, 2)
