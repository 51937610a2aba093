"""The forking worker, one work horse per job: what `workers.Worker` is at `WORKER_CONCURRENCY=1`.

It is RQ's Heroku worker (SIGTERM-safe horses) with everything of `workers.base.ServiceBase`, plus
claim-based dequeue (`workers.dequeue`) and horse supervision (`workers.horse`). On SIGTERM the
running job may finish within `WORKER_SHUTDOWN_GRACE`, else it is killed and requeued at the front
of its queue without spending a retry; the worker then exits with code 0. A second SIGTERM/SIGINT
requeues at once. RQ's `stop-job` command waits `JOB_STOP_GRACE` first (`workers.stopping`).
"""

from __future__ import annotations

import time
from types import FrameType
from typing import Any

from rq.exceptions import StopRequested
from rq.utils import now
from rq.worker import WorkerStatus

from core.rqadapter import worker_hooks
from workers import stopping
from workers.dequeue import ClaimingDequeueMixin
from workers.horse import HorseSupervisionMixin


class ServiceWorker(HorseSupervisionMixin, ClaimingDequeueMixin):
    """`rq worker -w workers.worker.ServiceWorker`: the forking worker whatever `WORKER_CONCURRENCY` says."""

    def handle_payload(self, message: dict[Any, Any]) -> None:
        stopping.handle_payload(self, message, super().handle_payload)

    def handle_warm_shutdown_request(self) -> None:
        if self.horse_pid:
            self._shutdown_deadline = time.monotonic() + self.shutdown_grace
            self.log.info(
                "Worker %s: warm shutdown; the running job may finish within %ss, else it is requeued",
                self.name,
                self.shutdown_grace,
            )
        else:
            self.log.info("Worker %s: warm shutdown", self.name)

    def on_warm_shutdown(self) -> None:
        # RQ's version also writes to Redis inside the signal handler; a down Redis would raise there.
        if self.get_state() == WorkerStatus.BUSY:
            worker_hooks.request_stop(self)
            if self.scheduler:
                self.stop_scheduler()
        else:
            raise StopRequested()

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        requested = worker_hooks.shutdown_requested_at(self)
        if requested is not None and (now() - requested).total_seconds() < 1:
            return  # the same shutdown delivered twice (process group and process)
        if self.horse_pid:
            self.log.warning("Worker %s: cold shutdown, requeueing the running job now", self.name)
            self._shutdown_deadline = time.monotonic()
            return
        raise SystemExit()
