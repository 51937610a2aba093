"""When a schedule is due: cron strings read in an IANA time zone (`cronsim`), fixed intervals, misfires.

All times here are Unix seconds (floats, UTC). Daylight-saving changes follow `cronsim`, which
behaves as Debian's cron does:

- a local time that does not exist (the clock jumps from 02:00 to 03:00) fires once, at the first
  valid instant after the gap (03:00 for `30 2 * * *`);
- a local time that occurs twice (the clock goes back from 03:00 to 02:00) fires once, at its first
  occurrence, for an expression with a fixed hour; an expression whose hour field is `*` (every
  hour, every 15 minutes) fires in both passes, since every real hour is one of its hours.

`every` schedules are counted from the schedule's creation (the anchor): due at anchor + k * every.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

#: The five fields of a cron string, in order; `CronError.field` is one of them.
CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")

#: Seconds late a due time may be and still fire as itself: the service promises a run within 2 s of
#: its due time, so a due time found this late was not missed (a slow tick, a busy worker).
ON_TIME = 2.0

#: Most due times counted one by one when a cron schedule's misfires are tallied (a minute cron that
#: missed ten weeks); past it the remainder is estimated from the average spacing seen so far.
MAX_COUNTED = 100_000


class CronError(ValueError):
    """A cron string `cronsim` refuses; `field` names the part of the expression that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class TimezoneError(ValueError):
    """Not an IANA time zone name."""


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name` (`Europe/Paris`, `UTC`)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TimezoneError(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris' or 'UTC'") from None


def check_cron(expression: str) -> str:
    """`expression`, normalized (single spaces), if it is a valid 5-field cron string; else CronError."""
    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        raise CronError(
            "expression", f"the expression has {len(fields)} fields; a cron string has 5: {' '.join(CRON_FIELDS)}"
        )
    normalized = " ".join(fields)
    try:
        CronSim(normalized, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise _named(str(exc), fields) from None
    return normalized


def _named(message: str, fields: list[str]) -> CronError:
    """cronsim's "Bad day-of-month" as a CronError naming the field and quoting it."""
    for position, name in enumerate(CRON_FIELDS):
        if message.lower().endswith(name):
            return CronError(name, f"the {name} field {fields[position]!r} is not valid ({message})")
    return CronError("expression", f"not a valid cron string ({message})")


@dataclass(frozen=True)
class Timing:
    """One schedule's due times: a cron string in `timezone`, or every `every` seconds from `anchor`."""

    cron: str | None = None
    every: int | None = None
    timezone: str = "UTC"
    anchor: float = 0.0

    def next_after(self, moment: float) -> float:
        """The first due time strictly after `moment` (an interval's first is one interval after its anchor)."""
        if self.every is not None:
            steps = math.floor((moment - self.anchor) / self.every) + 1
            return self.anchor + max(steps, 1) * self.every
        assert self.cron is not None
        local = datetime.fromtimestamp(moment, UTC).astimezone(zone(self.timezone))
        return next(iter(CronSim(self.cron, local))).timestamp()

    def first(self) -> float:
        """The first due time of a new schedule (strictly after its anchor for an interval)."""
        return self.next_after(self.anchor)

    def count_between(self, start: float, end: float) -> tuple[int, float]:
        """(number of due times t with start <= t <= end, the newest of them); `start` is a due time."""
        if self.every is not None:
            count = math.floor((end - start) / self.every) + 1
            return count, start + (count - 1) * self.every
        count, newest, moment = 1, start, start
        while count < MAX_COUNTED:
            following = self.next_after(moment)
            if following > end:
                return count, newest
            count, newest, moment = count + 1, following, following
        spacing = (newest - start) / (count - 1)
        return count + math.floor((end - newest) / spacing), newest  # estimated past MAX_COUNTED


@dataclass(frozen=True)
class Firing:
    """What one pass over a due schedule does: fire a run for `due` (None: none), count `skipped` due
    times as skipped, and wait next for `next_due`."""

    due: float | None
    skipped: int
    next_due: float


def plan_firing(timing: Timing, due: float, now: float, grace: float) -> Firing:
    """The pass over a schedule whose oldest pending due time is `due` (<= `now`).

    A due time at most `ON_TIME` seconds old fires as itself (a following one, if also past, is the
    next pass). Older than that, due times were missed (no worker ran): the newest of them fires once
    as a catch-up run if it is at most `grace` seconds old, and every other one is skipped. Never more
    than one run per pass, so never a burst.
    """
    if now - due <= ON_TIME:
        return Firing(due, 0, timing.next_after(due))
    count, newest = timing.count_between(due, now)
    following = timing.next_after(newest)
    if now - newest <= grace:
        return Firing(newest, count - 1, following)
    return Firing(None, count, following)
