"""Queue names, their priority order and the serializer every process must agree on."""

from __future__ import annotations

from typing import Final, Literal

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from core.rqadapter.jobdata import JsonJob as JsonJob

QueueName = Literal["high", "default", "low"]

#: Highest priority first: the order workers listen in.
QUEUE_NAMES: Final[tuple[QueueName, ...]] = ("high", "default", "low")

#: Job data and results are JSON, never pickle: web, workers and dashboard all use this (and `JsonJob`
#: defaults to it).
SERIALIZER: Final = JSONSerializer


def make_queue(name: str, connection: Redis) -> Queue:
    return Queue(name, connection=connection, serializer=SERIALIZER, job_class=JsonJob)


def all_queues(connection: Redis) -> list[Queue]:
    return [make_queue(name, connection) for name in QUEUE_NAMES]
