"""Keeping RQ's scheduler going (`rq worker --with-scheduler`) beside the work loop.

RQ starts the scheduler once, if it gets the queues' scheduler locks. A worker that did not get
them tries again every `SCHEDULER_RETRY_INTERVAL` seconds (another worker's scheduler may die);
a scheduler process that crashed (on a Redis that refuses its writes: full, say) is restarted
after a delay that doubles up to `SCHEDULER_RESTART_MAX`, not once a second with a traceback.
Stopping it is bounded: RQ's `stop_scheduler` waits for the process forever.
"""

from __future__ import annotations

import logging
import os
import signal
import time

from rq.scheduler import RQScheduler

from core.rqadapter.worker_hooks import scheduler_process
from workers.backoff import Backoff

#: Seconds between attempts to take the scheduler locks while another worker's scheduler holds them
#: (RQ's scheduler itself works in 1 s steps; each attempt costs a round trip per queue).
SCHEDULER_RETRY_INTERVAL = 1.0
#: The longest delay before restarting a scheduler that keeps crashing.
SCHEDULER_RESTART_MAX = 60.0
#: Seconds a scheduler process gets to stop after SIGTERM before it is killed.
SCHEDULER_STOP_GRACE = 5.0

logger = logging.getLogger("workers.scheduling")


def stop_scheduler_process(scheduler: RQScheduler | None, grace: float = SCHEDULER_STOP_GRACE) -> None:
    """SIGTERM to the scheduler process, then SIGKILL if it is still there after `grace` seconds.

    The process is forked from the worker: a SIGTERM that arrives before RQ's scheduler installs its own
    handler runs the worker's inherited one, which does not stop the scheduler loop, so an unbounded
    `join()` (what RQ does) could keep the worker from ever exiting. A killed scheduler only loses its
    locks' remaining seconds; another worker's scheduler takes them over."""
    process = scheduler_process(scheduler) if scheduler is not None else None
    if process is None or not process.pid:
        return
    try:
        os.kill(process.pid, signal.SIGTERM)
    except OSError:
        pass  # gone already
    process.join(grace)
    if process.is_alive():
        logger.warning("scheduler process %s did not stop within %.0f s of SIGTERM; killing it", process.pid, grace)
        process.kill()
        process.join()


class SchedulerWatch:
    """When to look at the scheduler next, and whether it needs (re)starting then."""

    def __init__(self) -> None:
        self.next_check = 0.0
        self.restarts = Backoff(SCHEDULER_RETRY_INTERVAL * 2, SCHEDULER_RESTART_MAX)

    def needs_start(self, scheduler: RQScheduler) -> bool:
        """At most once per delay: True if the scheduler is not running (its locks are to be taken again)."""
        moment = time.monotonic()
        if moment < self.next_check:
            return False
        process = scheduler_process(scheduler)
        crashed = process is not None and not process.is_alive() and process.exitcode not in (0, None)
        if crashed:
            delay = self.restarts.next()
        else:
            self.restarts.reset()
            delay = SCHEDULER_RETRY_INTERVAL
        self.next_check = moment + delay
        return process is None or not process.is_alive()
