"""Every Redis key this service adds beside RQ's own (`rq:*`), in one place."""

from __future__ import annotations

PREFIX = "jobsvc"

#: Sorted sets of job ids scored by creation time (microseconds): newest last.
INDEX_ALL = f"{PREFIX}:index:all"


def index_for_queue(queue: str) -> str:
    return f"{PREFIX}:index:queue:{queue}"


def index_for_type(job_type: str) -> str:
    return f"{PREFIX}:index:type:{job_type}"


# -- reliability (issue 7) --

#: Hash job id -> name of the worker that took it off its queue and has not settled it yet.
CLAIMS = f"{PREFIX}:claims"

#: Lock held by the worker running the abandoned-job sweep (value: worker name).
RECOVERY_LOCK = f"{PREFIX}:recovery:lock"


def worker_alive(worker_name: str) -> str:
    """String with a short TTL that a live worker keeps refreshing (value: JSON about the worker)."""
    return f"{PREFIX}:alive:{worker_name}"
