"""Helpers of the flow-control tests: jobs pushed as the service pushes them, their run intervals, the slots."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis
from rq import Queue, Retry
from rq.job import Job, JobStatus

from core.flow import keys as flow_keys
from core.queues import SERIALIZER
from core.rqadapter.enqueue import enqueue_writes
from core.submitting import initial_meta as initial

FUNCS = {
    "demo.sleep": "jobs.builtin.demo.sleep",
    "demo.noop": "jobs.builtin.demo.noop",
    "demo.steps": "jobs.builtin.demo.steps",
}


def push(
    client: redis.Redis,
    job_type: str,
    count: int = 1,
    *,
    owner: str = "anonymous",
    queue: str = "default",
    kwargs: dict[str, Any] | None = None,
    retries: int = 0,
    timeout: int | None = None,
) -> list[str]:
    """`count` jobs written as POST /jobs writes them (RQ's writes and the fair index's), in one round trip."""
    q = Queue(queue, connection=client, serializer=SERIALIZER)
    ids = []
    with client.pipeline(transaction=False) as pipe:
        for _ in range(count):
            job = Job.create(
                FUNCS[job_type], kwargs=dict(kwargs or {}), connection=client, serializer=SERIALIZER,
                meta=initial(job_type, owner), result_ttl=600, failure_ttl=600, timeout=timeout,
                retry=Retry(max=retries) if retries else None, origin=queue,
            )  # fmt: skip
            for command in enqueue_writes(client, q, job):
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            ids.append(job.id)
        pipe.execute()
    return ids


def fetch(client: redis.Redis, job_id: str) -> Job:
    return Job.fetch(job_id, connection=client, serializer=SERIALIZER)


def statuses(client: redis.Redis, ids: list[str]) -> list[JobStatus | None]:
    with client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(f"rq:job:{job_id}", "status")
        raw = pipe.execute()
    return [JobStatus(value.decode()) if value else None for value in raw]


def intervals(client: redis.Redis, ids: list[str]) -> list[tuple[datetime, datetime]]:
    """(started_at, ended_at) of each job (all must have ended)."""
    found = []
    for job_id in ids:
        job = fetch(client, job_id)
        assert job.started_at is not None and job.ended_at is not None, (job_id, job.get_status())
        found.append((job.started_at, job.ended_at))
    return found


def most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    """The most intervals overlapping at one instant."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def most_in_window(starts: list[datetime], seconds: float) -> int:
    """The most start times within any window of `seconds`."""
    ordered = sorted(starts)
    peak, first = 0, 0
    for last, moment in enumerate(ordered):
        while (moment - ordered[first]).total_seconds() >= seconds:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


def slot_keys(client: redis.Redis) -> list[bytes | str]:
    """Every slot hash and the held-slots map still present (empty when no limited job runs)."""
    return [*client.keys(f"{flow_keys.FLOW}:running:*"), *client.keys(flow_keys.HELD)]
