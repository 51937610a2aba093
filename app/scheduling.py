"""When a submitted job may start: `delay` or `run_at`, as a whole-second time RQ's scheduler can keep."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from app.errors import ValidationFailedError


def parse_run_at(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailedError.field(
            ["run_at"], "not an ISO 8601 time; send e.g. 2026-11-23T10:00:00Z or 2026-11-23T11:00:00+01:00"
        ) from None
    if moment.tzinfo is None:
        raise ValidationFailedError.field(["run_at"], "needs a UTC offset or Z, e.g. 2026-11-23T10:00:00Z")
    return moment.astimezone(UTC)


def due_time(delay: float | None, run_at: str | None, max_delay: int, now: datetime | None = None) -> datetime | None:
    """The time to schedule the job at, rounded UP to a whole second; None to enqueue it now.

    RQ's scheduled registry keeps whole seconds and enqueues a job once that second has begun,
    so rounding down would start jobs up to a second early.
    """
    if delay is not None and run_at is not None:
        raise ValidationFailedError.field(["run_at"], "give either delay or run_at, not both")
    now = now or datetime.now(UTC)
    if delay is not None:
        if delay > max_delay:  # before the arithmetic: a huge delay overflows datetime
            raise ValidationFailedError.field(["delay"], f"at most {max_delay} seconds ahead (JOB_MAX_DELAY)")
        field, due = "delay", now + timedelta(seconds=delay)
    elif run_at is not None:
        field, due = "run_at", parse_run_at(run_at)
    else:
        return None
    if due - now > timedelta(seconds=max_delay):
        raise ValidationFailedError.field([field], f"at most {max_delay} seconds ahead (JOB_MAX_DELAY)")
    if due <= now:
        return None  # due already: run now
    whole = math.ceil(due.timestamp())
    return datetime.fromtimestamp(whole, UTC)
