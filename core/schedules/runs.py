"""A schedule's run as RQ's writes: the job `POST /jobs` would build for the schedule's fields.

The fields were validated when the schedule was created or changed (by the web, as `POST /jobs`
validates them); here they are only turned into an RQ job and its listing entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rq import Queue, Retry
from rq.job import Job

from core import keys
from core.clock import iso_z
from core.meta import CALLBACK, CALLBACK_URL, SCHEDULE_ID, SCHEDULED_FOR
from core.rqadapter.enqueue import queued_job_writes
from core.schedules.model import Definition
from core.settings import Settings
from core.submitting import initial_meta, listing_horizon_us, retry_intervals

#: Newest run ids kept per schedule for `GET /jobs?schedule=` (older ones drop out of that index).
RUNS_KEPT = 1000


@dataclass(frozen=True)
class Run:
    job: Job
    commands: list[tuple[Any, ...]]
    listing: tuple[Sequence[str], float, str]
    quota: tuple[str, int] | None


def build_run(
    queue: Queue,
    schedule_id: str,
    definition: Definition,
    func_path: str,
    due: float,
    settings: Settings,
    callback_state: dict[str, Any] | None = None,
) -> Run:
    """The run of `definition` due at `due` on `queue` (the definition's): an RQ job queued at once, its
    writes and listing entry. `callback_state` is the initial delivery state of a run with a `callback_url`."""
    retry = (
        Retry(
            max=definition.retries,
            interval=retry_intervals(definition.retries, settings.retry_backoff_base, settings.retry_backoff_max),
        )
        if definition.retries
        else None
    )
    meta = initial_meta(
        definition.type,
        definition.owner,
        {SCHEDULE_ID: schedule_id, SCHEDULED_FOR: iso_z(datetime.fromtimestamp(due, UTC))},
    )
    if definition.callback_url:
        meta.update({CALLBACK_URL: definition.callback_url, CALLBACK: callback_state or {}})
    job = queue.create_job(
        func_path,
        kwargs=definition.args,
        timeout=definition.timeout,
        result_ttl=settings.result_ttl,
        failure_ttl=settings.failure_ttl,
        description=definition.description,
        retry=retry,
        meta=meta,
    )
    commands = queued_job_writes(queue, job)
    quota = (keys.active_for_owner(definition.owner), settings.max_active_jobs) if settings.max_active_jobs else None
    return Run(job, commands, listing_entry(job, definition, schedule_id, settings), quota)


def listing_entry(
    job: Job, definition: Definition, schedule_id: str, settings: Settings
) -> tuple[list[str], float, str]:
    """The indexes a submitted job joins (as the web's submissions), plus the schedule's runs index."""
    score = job.created_at.timestamp() * 1_000_000
    indexes = [
        keys.INDEX_ALL,
        keys.index_for_queue(definition.queue),
        keys.index_for_type(definition.type),
        keys.index_for_owner(definition.owner),
        keys.schedule_runs(schedule_id),
    ]
    return indexes, score, f"({score - listing_horizon_us(settings)}"
