"""The concurrent worker's commands and stop signals.

`stop-job` / `stop-execution` stop the running job (or execution) they name (RQ's handler knows one
job only), after `JOB_STOP_GRACE`; `kill-horse` fails every running job at once, as RQ's worker
fails the job of a killed horse. SIGTERM: no new jobs; running ones may finish within
`WORKER_SHUTDOWN_GRACE`, then are interrupted and requeued at the front without spending a retry;
a second signal requeues at once; exit code 0.
"""

from __future__ import annotations

import time
from types import FrameType
from typing import Any

from rq.command import parse_payload
from rq.utils import now

from core.rqadapter import worker_hooks
from core.settings import get_settings
from workers.heartbeats import RunningHeartbeatMixin
from workers.running import Running


class ConcurrentCommandsMixin(RunningHeartbeatMixin):
    def handle_payload(self, message: dict[str, Any]) -> None:
        payload = parse_payload(message)
        command = payload.get("command")
        if self._loop is None or command not in ("stop-job", "stop-execution", "kill-horse"):
            super().handle_payload(message)  # type: ignore[no-untyped-call]
        elif command == "kill-horse":
            self._loop.call_soon_threadsafe(self._kill_running)
        elif command == "stop-job":
            self._loop.call_soon_threadsafe(self._stop_job, payload.get("job_id"), None)
        else:
            self._loop.call_soon_threadsafe(self._stop_job, None, payload.get("execution_id"))

    def _kill_running(self) -> None:
        """`kill-horse`: every running job fails at once, as the job of a killed horse does (retried if it has
        retries left, else `failed`); a thread's job is interrupted at its next Python instruction."""
        if not self.running:
            self.log.info("Worker %s: not working, kill-horse command ignored", self.name)
            return
        for running in list(self.running.values()):
            self.log.warning("Worker %s: kill-horse: killing job %s", self.name, running.job.id)
            self._cancel(running, "kill")

    def _stop_job(self, job_id: str | None, execution_id: str | None) -> None:
        """`stop-job` names a job, `stop-execution` one execution of it: a command naming neither a running
        job nor a running execution is ignored."""
        if job_id is not None:
            running = self.running.get(job_id)
        else:
            running = next((r for r in self.running.values() if r.execution.id == execution_id), None)
        if running is None:
            self.log.warning(
                "Worker %s: not running %s, stop command ignored",
                self.name,
                f"job {job_id}" if job_id is not None else f"execution {execution_id}",
            )
            return
        grace = get_settings().job_stop_grace
        if grace <= 0 or self._loop is None:
            self._cancel(running, "stop")
            return
        # JOB_STOP_GRACE: a job that checks `cancel_requested()` may stop itself first (recorded stopped too).
        self._loop.call_later(grace, self._stop_if_running, running)

    def _stop_if_running(self, running: Running) -> None:
        if self.running.get(running.job.id) is running:
            self.log.info("Worker %s: job %s did not stop within its grace; stopping it", self.name, running.job.id)
            self._cancel(running, "stop")

    def handle_warm_shutdown_request(self) -> None:
        self.log.info(
            "Worker %s: warm shutdown; running jobs may finish within %ss, else they are requeued",
            self.name,
            self.shutdown_grace,
        )

    def on_warm_shutdown(self) -> None:
        """Warm shutdown: take no more jobs; running ones get `WORKER_SHUTDOWN_GRACE` seconds, then are
        requeued at the front of their queues without spending a retry."""
        worker_hooks.request_stop(self)
        self._shutdown_deadline = time.monotonic() + self.shutdown_grace
        if self.scheduler:
            self.stop_scheduler()
        self._nudge()

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        requested = worker_hooks.shutdown_requested_at(self)
        if requested is not None and (now() - requested).total_seconds() < 1:
            return  # the same shutdown delivered twice (process group and process)
        self.log.warning("Worker %s: cold shutdown, requeueing the running jobs now", self.name)
        worker_hooks.request_stop(self)
        self._forced_stop = True
        self._shutdown_deadline = time.monotonic()
        self._nudge()
