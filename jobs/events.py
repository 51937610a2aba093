"""Job events: progress reports and status changes, kept in a capped per-job Redis stream.

Every event is appended (XADD) to `jobsvc:events:{id}` and announced by publishing the job
id on one channel, `jobsvc:channel:events`. Writers only add commands to a pipeline that
the caller executes, so an event goes out in the same round trip (and the same MULTI) as
the state it describes: `report()` writes `meta` with it, the worker its status change.

Stream ids are the event ids of `GET /jobs/{id}/events`, so a client resumes with
`Last-Event-ID`. The stream keeps the newest `2 * PROGRESS_MAX_MESSAGES` events (status
changes count too, hence the factor) and expires with the job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
from rq.job import Job, JobStatus

from jobs import keys
from jobs.settings import Settings, get_settings

PROGRESS = "progress"
STATUS = "status"

#: Statuses after which a job changes no more (unless retried by hand): streams close on them.
FINAL_STATUSES = frozenset(
    status.value for status in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED)
)

Pipeline = redis.client.Pipeline | aioredis.client.Pipeline

_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")


@dataclass(frozen=True)
class Event:
    id: str
    kind: str
    data: dict[str, Any]

    @property
    def order(self) -> tuple[int, int]:
        return parse_id(self.id)


def parse_id(event_id: str) -> tuple[int, int]:
    """A stream id as a comparable pair; ValueError for anything else."""
    match = _ID.match(event_id)
    if match is None:
        raise ValueError(f"not an event id: {event_id!r}")
    return int(match.group(1)), int(match.group(2))


def stream_cap(settings: Settings) -> int:
    return 2 * settings.progress_max_messages


def add_event(
    pipe: Pipeline, job_id: str, kind: str, data: Mapping[str, Any], ttl: int | None, settings: Settings | None = None
) -> None:
    """Queue XADD (capped), the stream's TTL and the announcement on `pipe`; `ttl=None` keeps it forever."""
    settings = settings or get_settings()
    key = keys.events_for(job_id)
    pipe.xadd(key, {"kind": kind, "data": json.dumps(data)}, maxlen=stream_cap(settings), approximate=False)
    if ttl is None:
        pipe.persist(key)
    else:
        pipe.expire(key, max(1, ttl))
    pipe.publish(keys.EVENTS_CHANNEL, job_id)


def add_progress(pipe: Pipeline, job: Job, entry: Mapping[str, Any], settings: Settings | None = None) -> None:
    """A `progress` event: `{"progress", "message", "time"}`."""
    settings = settings or get_settings()
    data = {"progress": entry.get("progress"), "message": entry.get("message"), "time": entry.get("time")}
    add_event(pipe, job.id, PROGRESS, data, running_ttl(job, settings), settings)


def add_status(pipe: Pipeline, job: Job, status: str, settings: Settings | None = None) -> None:
    """A `status` event; a final status gives the stream the job's own remaining lifetime."""
    settings = settings or get_settings()
    status = status_value(status)
    ttl = ended_ttl(job, status, settings) if status in FINAL_STATUSES else running_ttl(job, settings)
    add_event(pipe, job.id, STATUS, {"status": status}, ttl, settings)


def status_value(status: str | JobStatus) -> str:
    return status.value if isinstance(status, JobStatus) else str(status)


def running_ttl(job: Job, settings: Settings) -> int:
    """While a job is alive its key has no TTL; its events outlive any outcome it can still reach."""
    timeout = job.timeout if isinstance(job.timeout, int) and job.timeout > 0 else settings.job_max_timeout
    return timeout + max(_ttl(job.result_ttl, settings.result_ttl), _ttl(job.failure_ttl, settings.failure_ttl))


def ended_ttl(job: Job, status: str, settings: Settings) -> int | None:
    """The TTL RQ gives the ended job's key: result_ttl when finished, failure_ttl otherwise (None = forever)."""
    if status == JobStatus.FINISHED:
        value = job.result_ttl if job.result_ttl is not None else settings.result_ttl
    else:
        value = job.failure_ttl if job.failure_ttl is not None else settings.failure_ttl
    return None if value is None or value < 0 else int(value)


def _ttl(value: int | None, default: int) -> int:
    return default if value is None or value < 0 else int(value)


def decode(entries: Sequence[Any] | None) -> list[Event]:
    """XRANGE/XREVRANGE replies (bytes) as events, oldest first as given."""
    events: list[Event] = []
    for raw_id, fields in entries or ():
        event_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        kind = fields.get(b"kind", b"").decode()
        try:
            data = json.loads(fields.get(b"data", b"{}"))
        except ValueError:
            continue
        if isinstance(data, dict):
            events.append(Event(event_id, kind, data))
    return events
