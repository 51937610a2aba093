"""The statuses `GET /jobs?status=` accepts: the API's own words, not every word RQ uses internally.

RQ also knows `created`, `rate_limited` and `ready_to_enqueue`, states a job passes through inside
one submission or a worker: the API never reports them, so a filter on them is refused (422) rather
than answered with an empty page.
"""

from __future__ import annotations

from enum import StrEnum

from app.errors import ValidationFailedError


class ListedStatus(StrEnum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    DEFERRED = "deferred"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"
    CANCELED = "canceled"


LISTED_STATUSES = tuple(status.value for status in ListedStatus)


def check_status(status: str | None) -> None:
    """422 naming `status` and the accepted words when `status` is not one of them."""
    if status is not None and status not in LISTED_STATUSES:
        raise ValidationFailedError.field(
            ["status"], f"expected one of {', '.join(LISTED_STATUSES)}; got {status!r}, which the API never reports"
        )
