"""Worker side of job control: a grace period for stop requests, stop flags, dependents of failed jobs.

RQ's `stop-job` command kills the work horse at once. Here the worker first waits
`JOB_STOP_GRACE` seconds, so a job that checks `jobs.progress.cancel_requested()` between
steps can stop itself cleanly (it raises `StopRequested`); then it kills the horse the way RQ
does. Either way RQ records the job `stopped` and never retries it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from rq.command import handle_stop_job_command, parse_payload
from rq.job import Job, JobStatus
from rq.worker import BaseWorker

from core.rqadapter.worker_hooks import mark_stopped, stopped_job_id
from core.settings import get_settings
from jobs.control import cancel_dependents, stop_requested

logger = logging.getLogger("workers.stopping")


def handle_payload(worker: BaseWorker, message: dict[Any, Any], default: Callable[[dict[Any, Any]], None]) -> None:
    """Delay RQ's `stop-job` by the grace period; pass every other command to RQ."""
    payload = parse_payload(message)
    grace = get_settings().job_stop_grace
    if payload.get("command") != "stop-job" or grace <= 0:
        default(message)
        return
    job_id = payload.get("job_id")
    horse_pid = worker.horse_pid

    def hard_stop() -> None:
        # Only the same run of the same job: the horse may have stopped itself and a new one started.
        if job_id and worker.get_current_job_id() == job_id and worker.horse_pid == horse_pid:
            logger.info("job %s did not stop within %.1f s; killing its work horse", job_id, grace)
            handle_stop_job_command(worker, payload)

    timer = threading.Timer(grace, hard_stop)
    timer.daemon = True
    timer.start()


def note_stop_request(worker: BaseWorker, job: Job) -> None:
    """A job that fails (or raised StopRequested) after a stop was requested is recorded as stopped."""
    if stopped_job_id(worker) != job.id and stop_requested(worker.connection, job.id):
        mark_stopped(worker, job.id)


def cancel_dependents_if_ended(worker: BaseWorker, job: Job) -> None:
    """A parent that ended failed or stopped (no retry left) cancels the jobs deferred on it."""
    if job.get_status(refresh=False) in (JobStatus.FAILED, JobStatus.STOPPED):
        canceled = cancel_dependents(worker.connection, job.id, job.failure_ttl or get_settings().failure_ttl)
        if canceled:
            logger.info("job %s ended %s; canceled its dependents %s", job.id, job.get_status(refresh=False), canceled)
