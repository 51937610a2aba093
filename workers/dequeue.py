"""The forking worker's dequeue: a job is always in a queue or claimed (`core.rqadapter.claims`).

Redis has no blocking command that moves from several lists into a hash, so an idle worker
polls: the claims script is one round trip, retried after a short wait that grows from
`POLL_MIN` to `POLL_MAX` while all queues stay empty, and that a job the service pushes cuts
short (`workers.wake`: a message on the wake-up channel). A job pushed without one (RQ's
scheduler, rq-dashboard) is found within `POLL_MAX`; a busy worker never waits. Liveness beats
and abandoned-job sweeps go on meanwhile; a Redis outage is waited out.
"""

from __future__ import annotations

import time
from typing import Any

from rq import Queue
from rq.job import Job
from rq.worker import WorkerStatus

from core.connection import REDIS_DOWN
from core.rqadapter.worker_hooks import ordered_queues
from workers.backoff import Backoff
from workers.base import ServiceBase
from workers.claimed import load_claimed
from workers.wake import WakeListener

POLL_MIN = 0.01
POLL_MAX = 0.1


class ClaimingDequeueMixin(ServiceBase):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: What an idle worker waits on between claims (it subscribes on first use).
        self.wake_listener = WakeListener(self.connection)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        try:
            self.set_state(WorkerStatus.IDLE)
        except REDIS_DOWN:
            self.recovery.note_redis_error()
        self.procline("Listening on " + ",".join(self.queue_names()))  # type: ignore[no-untyped-call]
        idle_since = last_rq_heartbeat = time.monotonic()
        poll = Backoff(POLL_MIN, POLL_MAX)
        outage = self.redis_backoff()
        while True:
            try:
                self._maintain()
                if time.monotonic() - last_rq_heartbeat > self.recovery.timing.beat_interval:
                    self.heartbeat()
                    last_rq_heartbeat = time.monotonic()
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()
                claimed = self.recovery.claims.claim([queue.key for queue in ordered_queues(self)], self.name)
                outage.reset()
                if claimed is not None:
                    taken = self._load_one(claimed)
                    if taken is not None:
                        # Unsubscribed while the job runs: the messages of a long job's minutes would pile up
                        # in Redis's output buffer for this connection; the next idle wait subscribes again.
                        self.wake_listener.close()
                        return taken
                    continue  # gone or unreadable: the next one, at once
            except REDIS_DOWN as exc:
                delay = outage.next()
                self.note_outage("dequeueing", exc, delay)
                time.sleep(delay)
                continue
            if timeout is None or (max_idle_time is not None and time.monotonic() - idle_since >= max_idle_time):
                return None
            if self.wake_listener.wait(poll.next()):
                poll.reset()

    def _load_one(self, claimed: tuple[str, str]) -> tuple[Job, Queue] | None:
        """The claimed job and its queue, ready to run (None: it was gone or unreadable)."""
        loaded = load_claimed(self, [claimed])
        if not loaded:
            return None
        job, queue = loaded[0]
        self.reorder_queues(reference_queue=queue)
        self.log.info("Worker %s: %s: %s", self.name, queue.name, job.id)
        self.heartbeat()
        return job, queue
