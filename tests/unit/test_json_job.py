"""`JsonJob` reads and builds jobs exactly as RQ's `Job` does, only faster."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from core.queues import SERIALIZER, JsonJob, make_queue

#: What `Job.restore` sets from a job hash (compared attribute by attribute).
ATTRIBUTES = (
    "id", "created_at", "enqueued_at", "started_at", "ended_at", "last_heartbeat", "origin", "description",
    "timeout", "result_ttl", "failure_ttl", "worker_name", "meta", "retries_left", "retry_intervals", "args",
    "kwargs", "func_name", "_status", "_dependency_ids", "group_id", "ttl",
)  # fmt: skip


def _state(job: Job) -> dict[str, Any]:
    return {name: getattr(job, name) for name in ATTRIBUTES}


def _stored_hash(connection: fakeredis.FakeRedis) -> tuple[str, dict[bytes, bytes]]:
    queue = Queue("default", connection=connection, serializer=SERIALIZER)
    job = queue.enqueue("jobs.builtin.demo.steps", kwargs={"steps": 2}, meta={"type": "demo.steps", "messages": []})
    job.started_at = job.enqueued_at
    job.last_heartbeat = job.enqueued_at
    job.save()
    return job.id, connection.hgetall(job.key)  # type: ignore[return-value]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {b"ended_at": b"2026-11-23T08:47:45Z"},  # RQ's older format, without microseconds
        {b"ended_at": b"2026-11-23T08:47:45.000001Z", b"started_at": b""},  # empty: not set
        {b"created_at": b"2026-11-23 08:47:45+00:00"},  # not RQ's format: RQ's own parser decides (and fails)
    ],
)
def test_restore_matches_rq(changes: dict[bytes, bytes]) -> None:
    connection = fakeredis.FakeRedis()
    job_id, raw = _stored_hash(connection)
    raw = {**raw, **changes}
    ours, theirs = JsonJob(job_id, connection=connection), Job(job_id, connection=connection, serializer=SERIALIZER)
    try:
        theirs.restore(dict(raw))
    except ValueError:
        with pytest.raises(ValueError):
            ours.restore(dict(raw))
        return
    ours.restore(dict(raw))
    assert _state(ours) == _state(theirs)
    assert ours.created_at.tzinfo is not None and ours.created_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_serializer_is_json_by_default_and_others_are_still_checked() -> None:
    connection = fakeredis.FakeRedis()
    assert JsonJob(connection=connection).serializer is SERIALIZER
    assert JsonJob(connection=connection, serializer=JSONSerializer).serializer is SERIALIZER
    with pytest.raises(NotImplementedError):
        JsonJob(connection=connection, serializer=object())  # RQ's own check: no dumps/loads
    assert make_queue("high", connection).job_class is JsonJob
