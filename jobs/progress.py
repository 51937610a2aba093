"""The one API a running job uses to talk back: `report(40, "Found 12 resources")`.

Progress lives in `job.meta` (`progress`, `messages`, `seq`, `attempt`), so rq-dashboard shows it
too. Each report is one entry of `messages` (the newest `PROGRESS_MAX_MESSAGES` are kept) and one
progress event of the job's live stream, numbered by `seq` (`core.events`): the entry is the
event, stored once. `report()` updates the running job's own `meta` object and writes it, with
the announcement for live streams, in one Redis round trip, unless the job was started again since
(a frozen worker that comes back: its superseded run's reports are dropped, with one warning in its
log, and the job taken over keeps its own progress); RQ's success and failure paths save
the job without `meta`, and the worker re-reads `meta` before it handles a crash, so a message
written just before the job returns or dies is kept.
Outside a worker every call here is a no-op, so job functions stay testable as plain functions.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from rq import get_current_job
from rq.job import Job

from core import events
from core.clock import iso_z, utc_now
from core.meta import ATTEMPT, BATCH_ID, MESSAGES, PROGRESS, SEQ
from core.rqadapter.jobdata import SUPERSEDED, meta_write
from core.rqadapter.redis_private import send_together
from core.settings import get_settings
from jobs.control import StopRequested, cancel_requested

logger = logging.getLogger(__name__)

#: Set on a job object once its run was told that a newer attempt superseded it (warned once per run).
_WARNED_SUPERSEDED = "_jobsvc_superseded"

__all__ = [
    "StopRequested",
    "append_message",
    "attempt",
    "cancel_requested",
    "current_job",
    "newest_seq",
    "progress_events",
    "report",
    "shown_messages",
]


def append_message(meta: dict[str, Any], message: str | None, progress: float | None = None) -> dict[str, Any]:
    """Add a timestamped entry (and the new percentage) to `meta`, keeping the newest N; it is event `meta["seq"]`.

    `message=None` records a percentage alone: a progress event, left out of the job view's `messages`.
    """
    settings = get_settings()
    if progress is None:
        progress = float(meta.get(PROGRESS, 0))
    else:
        progress = _clamp(progress)
        meta[PROGRESS] = progress
    if message is not None and len(message) > settings.progress_max_message_chars:
        message = message[: settings.progress_max_message_chars - 1] + "…"
    entry = {"time": iso_z(utc_now()), "message": message, "progress": progress}
    seq = newest_seq(meta) + 1
    messages = _messages(meta)
    messages.append(entry)
    del messages[: -settings.progress_max_messages]
    meta[MESSAGES] = messages
    meta[SEQ] = seq
    return entry


def report(progress: float | None = None, message: str | None = None) -> None:
    """Record `progress` (0-100) and/or a message for the running job; no-op outside a worker."""
    job = get_current_job()
    if job is None or (progress is None and message is None):
        return
    append_message(job.meta, message, progress)
    written, _ = send_together(job.connection, meta_write(job), events.announcement(job.id, job.meta.get(BATCH_ID)))
    if written == SUPERSEDED and not job.__dict__.get(_WARNED_SUPERSEDED):
        job.__dict__[_WARNED_SUPERSEDED] = True
        logger.warning("job %s: attempt %s was superseded by a newer one; its progress is dropped", job.id, attempt())


def newest_seq(meta: dict[str, Any]) -> int:
    """The event id of the newest entry of `meta["messages"]`; 0 before the first report."""
    seq = meta.get(SEQ)
    return seq if isinstance(seq, int) and seq >= 0 else len(_messages(meta))  # no `seq`: an older job's meta


def progress_events(meta: dict[str, Any], after: int = 0) -> list[events.Event]:
    """The kept progress events numbered above `after`, oldest first."""
    messages = _messages(meta)
    first = newest_seq(meta) - len(messages) + 1
    skip = max(0, after + 1 - first)
    kept = enumerate(messages[skip:], start=first + skip)
    return [events.progress_event(seq, entry) for seq, entry in kept if isinstance(entry, dict)]


def shown_messages(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries the job view lists: those with a message (a bare percentage is an event only)."""
    return [entry for entry in _messages(meta) if isinstance(entry, dict) and entry.get("message") is not None]


def current_job() -> Job | None:
    """The RQ job being run by this process, or None outside a worker."""
    return get_current_job()


def attempt() -> int:
    """Which start of the running job this is: 1 on the first run, counting retries and recoveries."""
    job = get_current_job()
    if job is None:
        return 1
    return int(job.meta.get(ATTEMPT, 1))


def _messages(meta: dict[str, Any]) -> list[Any]:
    messages = meta.get(MESSAGES)
    return messages if isinstance(messages, list) else []


def _clamp(progress: float) -> float:
    if math.isnan(progress):
        return 0.0
    value = max(0.0, min(100.0, float(progress)))
    return int(value) if value.is_integer() else round(value, 2)
