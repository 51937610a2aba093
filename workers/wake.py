"""Idle workers woken by new jobs instead of waiting out a poll.

Every push the service makes (a submission, a batch, a requeue, a recovered job) also publishes the
queue's key on `keys.WAKE_CHANNEL` (`core.rqadapter.flow_index`). An idle worker waits on that
channel where it would sleep between two claims, so a job sent to an idle system is claimed within
a round trip of its submission, not at the next poll. The poll stays, at its old interval: it finds
what was pushed without a message (RQ's scheduler, rq-dashboard) and whatever came while the
subscription was down. A message only ever makes a worker look sooner; losing one delays nothing
beyond the poll.

- `WakeListener.wait(timeout)`: the forking worker's sleep between claims, cut short by a message.
- `WakeThread`: the concurrent worker's listener, in a thread of its own, calling back into the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from core import keys

logger = logging.getLogger(__name__)

#: Seconds the concurrent worker's listener waits for a message at a time (and the most it takes to stop).
LISTEN_FOR = 1.0


class WakeListener:
    """A subscription to `keys.WAKE_CHANNEL` on a connection of its own, made on first use and made again after
    a Redis error (which it never raises: a wait then lasts its timeout, as the plain poll did)."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self._pubsub: Any = None

    def wait(self, timeout: float) -> bool:
        """Until a wake-up message or `timeout` seconds; True if woken. Messages already waiting are all taken,
        so a burst of submissions wakes the worker once."""
        started = time.monotonic()
        try:
            if self._pubsub is None:
                self._pubsub = self.connection.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]  # unannotated in redis-py
                self._pubsub.subscribe(keys.WAKE_CHANNEL)
            woken = False
            left = timeout
            while left > 0 and not woken:  # a subscription's confirmation ends `get_message` early, unwoken
                woken = self._pubsub.get_message(timeout=left) is not None
                left = timeout - (time.monotonic() - started)
            while woken and self._pubsub.get_message(timeout=0) is not None:
                pass
            return woken
        except (redis.RedisError, OSError) as exc:
            logger.debug("wake-up channel unavailable (%s); polling", exc)
            self.close()
            time.sleep(max(0.0, timeout - (time.monotonic() - started)))
            return False

    def close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
            except (redis.RedisError, OSError):
                pass


class WakeThread:
    """A daemon thread that calls `notify` (from that thread) for each wake-up, until `stop()`."""

    def __init__(self, connection: redis.Redis, notify: Callable[[], None]) -> None:
        self.listener = WakeListener(connection)
        self.notify = notify
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wake-up listener", daemon=True)

    def start(self) -> WakeThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the thread to end (within `LISTEN_FOR`); it closes its subscription itself."""
        self._stopped.set()

    def _run(self) -> None:
        try:
            while not self._stopped.is_set():
                if self.listener.wait(LISTEN_FOR) and not self._stopped.is_set():
                    try:
                        self.notify()
                    except RuntimeError:  # the worker's event loop closed as the message came: stopping anyway
                        return
        finally:
            self.listener.close()
