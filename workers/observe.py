"""What a worker tells operators: one log line per job start, end and failure, and job run times.

`ObservedWorker` is a mixin for RQ's worker classes (`class ServiceWorker(ObservedWorker, HerokuWorker)`).
Log lines carry the job id, type, queue, attempt and duration, never the job's arguments or its
description (client text). Run times go into the Redis histogram of `core.runtimes` inside the
transaction RQ already sends when a run ends, so they cost no extra round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from redis.client import Pipeline
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.utils import now
from rq.worker import BaseWorker

from core import runtimes
from core.meta import ATTEMPT, TYPE

logger = logging.getLogger("workers.jobs")

#: `job.meta` key holding the public job type (written by the web at submission).


def job_type(job: Job) -> str:
    return str(job.meta.get(TYPE) or "unknown")


def run_seconds(job: Job) -> float | None:
    started: datetime | None = job.started_at
    if started is None:
        return None
    ended: datetime = job.ended_at or now()
    return round((ended - started).total_seconds(), 6)


def one_line(exc_string: str, limit: int = 300) -> str:
    lines = [line.strip() for line in exc_string.strip().splitlines() if line.strip()]
    text = lines[-1] if lines else "failed"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_times(jobs: Iterable[Job]) -> list[tuple[str, str, float]]:
    """`(type, outcome, seconds)` of each ended run, for `core.runtimes.record_many`."""
    entries = []
    for job in jobs:
        seconds = run_seconds(job)
        if seconds is None:
            continue
        status = job.get_status(refresh=False)
        outcome = "finished" if status == JobStatus.FINISHED else "stopped" if status == JobStatus.STOPPED else "failed"
        entries.append((job_type(job), outcome, seconds))
    return entries


def job_fields(job: Job) -> dict[str, Any]:
    """The fields every job log line carries."""
    return {"job_id": job.id, "type": job_type(job), "queue": job.origin, "attempt": job.meta.get(ATTEMPT)}


def finished_fields(job: Job) -> dict[str, Any]:
    """The fields of a "job finished" line."""
    return {**job_fields(job), "status": "finished", "duration_s": run_seconds(job)}


class ObservedWorker(BaseWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # RQ would log each job's description, which is free text from the client.
        kwargs["log_job_description"] = False
        super().__init__(*args, **kwargs)

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        super().prepare_job_execution(job, remove_from_intermediate_queue)
        logger.info("job started", extra=job_fields(job))

    def cleanup_execution(self, job: Job, pipeline: Pipeline, execution: Any = None) -> None:
        """Called once per run that ended (success, failure, retry), with RQ's pending transaction."""
        super().cleanup_execution(job, pipeline, execution)
        runtimes.record_many(pipeline, run_times([job]))

    def handle_job_success(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        super().handle_job_success(job, queue, *args, **kwargs)
        logger.info("job finished", extra=finished_fields(job))

    def handle_job_failure(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        super().handle_job_failure(job, queue, *args, **kwargs)
        status = job.get_status(refresh=False)
        exc_string = kwargs.get("exc_string") or (args[1] if len(args) > 1 else "")
        logger.warning(
            "job stopped" if status == JobStatus.STOPPED else "job failed",
            extra={
                **job_fields(job),
                "status": status.value if status else None,
                "duration_s": run_seconds(job),
                "retries_left": job.retries_left,
                "error": one_line(str(exc_string)),
            },
        )
