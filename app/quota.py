"""Active jobs per API key (`MAX_ACTIVE_JOBS`): queued + scheduled + deferred + started.

Each key has a Redis set of its possibly-active job ids. A submission drops members that have
ended or expired (one status read each, O(limit)) and either refuses with 429 or adds the new
job, all inside the script that enqueues it (`app.scripts`): Redis runs one script at a time,
so the count holds across web processes without a lock. Every path that counts a job (a plain
or dependent submission, a retry: `JobStore.reserve_slot`) goes through that one script.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import TooManyRequestsError
from core import keys

#: Seconds a client refused by the quota is told to wait: when a job ends is unknown, so poll.
QUOTA_RETRY_AFTER = 5


@dataclass(frozen=True)
class Quota:
    """At most `limit` active jobs for `owner` (an API key name)."""

    owner: str
    limit: int

    @property
    def key(self) -> str:
        return keys.active_for_owner(self.owner)


def over_quota(active: int, limit: int) -> TooManyRequestsError:
    return TooManyRequestsError(
        f"this API key already has {active} active jobs (limit {limit}); retry when one of them has ended",
        QUOTA_RETRY_AFTER,
    )
