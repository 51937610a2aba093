"""Every Redis key this service adds beside RQ's own (`rq:*`), in one place."""

from __future__ import annotations

PREFIX = "jobsvc"

#: Sorted sets of job ids scored by creation time (microseconds): newest last.
INDEX_ALL = f"{PREFIX}:index:all"


def index_for_queue(queue: str) -> str:
    return f"{PREFIX}:index:queue:{queue}"


def index_for_type(job_type: str) -> str:
    return f"{PREFIX}:index:type:{job_type}"


#: Pub/sub channel: each message is the id of a job whose event stream just grew (issue 4).
EVENTS_CHANNEL = f"{PREFIX}:channel:events"


def events_for(job_id: str) -> str:
    """A job's capped stream of progress and status events, kept as long as the job."""
    return f"{PREFIX}:events:{job_id}"
