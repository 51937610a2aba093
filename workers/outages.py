"""Waiting out Redis outages: the worker never quits because Redis is unreachable.

RQ's work loop quits on `redis.TimeoutError` and on any unexpected error; these overrides make
every Redis call of the loop wait for Redis instead (`until_redis`), or skip what can wait
(maintenance, a heartbeat), and keep the command listener alive.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from rq.utils import now

from core.connection import REDIS_DOWN
from core.rqadapter.worker_hooks import RQWorkerHooks
from workers.backoff import Backoff

if TYPE_CHECKING:
    from workers.recovery import Recovery

T = TypeVar("T")

#: The first wait after Redis failed a call; it doubles while Redis stays away...
REDIS_RETRY_FIRST = 0.25
#: ...up to this (and to the liveness beat interval, so beats go on as soon as Redis is back).
REDIS_RETRY_MAX = 5.0
#: Seconds before the command listener reconnects after losing Redis.
PUBSUB_RETRY = 2.0


class OutageTolerantMixin(RQWorkerHooks):
    """For any RQ worker class whose `recovery` notes when Redis was last unreachable."""

    recovery: Recovery

    def redis_backoff(self) -> Backoff:
        """A fresh wait schedule for one outage."""
        return Backoff(REDIS_RETRY_FIRST, min(self.recovery.timing.beat_interval, REDIS_RETRY_MAX))

    def note_outage(self, what: str, exc: Exception, delay: float | None = None) -> None:
        """Log that Redis failed `what` (and the wait before the next try, if any) and tell `recovery`."""
        self.recovery.note_redis_error()
        if delay is None:
            self.log.error("Worker %s: Redis unreachable while %s (%s)", self.name, what, exc)
        else:
            self.log.error("Worker %s: Redis unreachable while %s (%s); retrying in %.2fs", self.name, what, exc, delay)

    def note_unrecorded(self, what: str, exc: Exception) -> None:
        """Log that Redis refused to record `what` (it is settled once Redis is back) and tell `recovery`."""
        self.recovery.note_redis_error()
        self.log.error("Worker %s: could not record %s (%s)", self.name, what, exc)

    def until_redis(self, action: Callable[[], T], what: str) -> T:
        """Run `action`, waiting for Redis as long as it takes (the worker never quits over an outage)."""
        backoff = self.redis_backoff()
        while True:
            try:
                return action()
            except REDIS_DOWN as exc:
                delay = backoff.next()
                self.note_outage(what, exc, delay)
                time.sleep(delay)

    def check_for_suspension(self, burst: bool) -> None:
        self.until_redis(lambda: super(OutageTolerantMixin, self).check_for_suspension(burst), "checking suspension")

    def run_maintenance_tasks(self) -> None:
        try:
            super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        except REDIS_DOWN as exc:
            self.last_cleaned_at = now()  # type: ignore[assignment]  # next try after a maintenance interval
            self.note_outage("running maintenance (skipped)", exc)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        try:
            super().heartbeat(timeout)
        except REDIS_DOWN as exc:
            self.note_outage("sending a heartbeat", exc)

    def on_pubsub_error(self, exc: Exception) -> bool:
        if isinstance(exc, REDIS_DOWN):
            self.log.error("Worker %s: pubsub lost Redis (%s); retrying in %.0fs", self.name, exc, PUBSUB_RETRY)
            time.sleep(PUBSUB_RETRY)
            return True
        return False
