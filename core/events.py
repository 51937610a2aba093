"""Job events: progress reports, output chunks and status changes, announced on one pub/sub channel.

A job's progress events are the entries of its `meta["messages"]` (`jobs.progress`), each stored
once: `meta["seq"]` numbers the newest entry, and the entries are consecutive, so the first of
the N kept is `seq - N + 1`. Its output chunks are numbered from 1 in their own keys
(`core.output`), each recording the progress number it follows. The event ids of
`GET /jobs/{id}/events` count both: an event's id is the number of progress and output events up
to it (`interleave`), so a job without output keeps its progress numbers as ids. A client
resumes with `Last-Event-ID`, while the job runs and after it ended, from what is kept (the
newest `PROGRESS_MAX_MESSAGES` and `OUTPUT_MAX_BYTES`) for as long as the job is kept. Status
events are the job's own status.

Whoever changes a job (a report, an output chunk, a status change) publishes its id on
`jobsvc:channel:events` in the same round trip as the change; each web process reads the job
once per announcement for all of its listeners (`app.live`). Writers only add commands to a
pipeline the caller executes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
from rq.job import Job, JobStatus

from core import keys
from core.output import Chunk, Output
from core.settings import Settings

PROGRESS = "progress"
OUTPUT = "output"
STATUS = "status"

#: Statuses after which a job changes no more (unless retried by hand): streams close on them.
FINAL_STATUSES = frozenset(
    status.value for status in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED)
)

Pipeline = redis.client.Pipeline | aioredis.client.Pipeline

_ID = re.compile(r"^\d{1,18}$")


@dataclass(frozen=True)
class Event:
    """A progress event (`data` = `{"progress", "message", "time"}`), an output event (`{"seq", "text"}`, and
    the attempt that wrote it), or where a status event goes in a batch."""

    id: int
    kind: str
    data: dict[str, Any]
    attempt: int = 0


def parse_id(event_id: str) -> int:
    """An event id as its number; ValueError for anything else."""
    if _ID.match(event_id) is None:
        raise ValueError(f"not an event id: {event_id!r}")
    return int(event_id)


def announce(pipe: Pipeline, job_id: str) -> None:
    """Queue the announcement that `job_id` changed (its progress or its status) on `pipe`."""
    pipe.execute_command(*announcement(job_id))


def announcement(job_id: str) -> tuple[str, str, str]:
    """The command that announces `job_id` changed."""
    return ("PUBLISH", keys.EVENTS_CHANNEL, job_id)


def add_status(pipe: Pipeline, job: Job, status: str | JobStatus, settings: Settings | None = None) -> None:
    """Announce that `job` moved to `status` (saved by the caller, or queued on `pipe` before this).

    The status itself is not stored again: listeners read it from the job.
    """
    announce(pipe, job.id)


def status_value(status: str | JobStatus) -> str:
    return status.value if isinstance(status, JobStatus) else str(status)


def progress_event(event_id: int, entry: Mapping[str, Any]) -> Event:
    data = {"progress": entry.get("progress"), "message": entry.get("message"), "time": entry.get("time")}
    return Event(event_id, PROGRESS, data)


def output_event(chunk: Chunk) -> Event:
    return Event(chunk.event_id, OUTPUT, {"seq": chunk.seq, "text": chunk.text}, chunk.attempt)


def interleave(progress: list[Event], chunks: list[Chunk], outputs_before: int) -> list[Event]:
    """Progress events (numbered by their own `seq`) and output chunks in one order, with their event ids.

    `chunks` are consecutive and follow `outputs_before` chunks; a chunk comes after the progress
    events numbered up to its `after`."""
    merged: list[Event] = []
    pending = iter(chunks)
    chunk = next(pending, None)
    written = outputs_before
    for event in progress:
        while chunk is not None and chunk.after < event.id:
            merged.append(output_event(chunk))
            written = chunk.seq
            chunk = next(pending, None)
        merged.append(Event(event.id + written, event.kind, event.data))
    while chunk is not None:
        merged.append(output_event(chunk))
        chunk = next(pending, None)
    return merged


def deliverable(output: Output, newest_progress: int) -> list[Chunk]:
    """The chunks read whose preceding progress event is visible too: a chunk that follows a report not yet
    seen (read in between) waits for the next read, so ids never go back."""
    return [chunk for chunk in output.chunks if chunk.after <= newest_progress]


def resume_point(event_id: int, newest_progress: int, chunks: list[Chunk], output: Output) -> tuple[int, int]:
    """(progress events, output chunks) a client that got every event up to `event_id` has seen.

    `chunks` are the kept deliverable ones, oldest first; `output` tells how many were dropped. A client
    whose id falls among dropped output resumes after it (what was dropped cannot be sent)."""
    seen = [chunk.seq for chunk in chunks if chunk.event_id <= event_id]
    outputs = seen[-1] if seen else min(output.first - 1, chunks[0].seq - 1 if chunks else output.total)
    outputs = max(0, outputs)
    return max(0, min(event_id - outputs, newest_progress)), outputs
