"""Queue names, their priority order and the serializer every process must agree on."""

from __future__ import annotations

from typing import Any, Final, Literal

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer, resolve_serializer

QueueName = Literal["high", "default", "low"]

#: Highest priority first: the order workers listen in.
QUEUE_NAMES: Final[tuple[QueueName, ...]] = ("high", "default", "low")

#: Job data and results are JSON, never pickle: web, workers and dashboard all use this.
SERIALIZER: Final = JSONSerializer


class JsonJob(Job):
    """RQ's `Job` with JSON as its default serializer, resolved without RQ's check when it is ours.

    RQ checks a serializer with `isinstance` against a runtime Protocol, which costs ~11 us on
    Python 3.11 for every job built or read (a page of 50 jobs: ~0.5 ms). `SERIALIZER` is known
    to be fine; anything else still goes through RQ's check."""

    def __init__(self, id: str | None = None, connection: Redis | None = None, serializer: Any = None) -> None:
        super().__init__(id, connection=connection, serializer=None)  # RQ's fast path: no check
        self.serializer = SERIALIZER if serializer in (None, SERIALIZER) else resolve_serializer(serializer)


def make_queue(name: str, connection: Redis) -> Queue:
    return Queue(name, connection=connection, serializer=SERIALIZER, job_class=JsonJob)


def all_queues(connection: Redis) -> list[Queue]:
    return [make_queue(name, connection) for name in QUEUE_NAMES]
