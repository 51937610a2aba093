"""Queue names, their priority order and the serializer every process must agree on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, Literal

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer, resolve_serializer
from rq.utils import str_to_date

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

    def restore(self, raw_data: Any) -> Any:
        """RQ's restore, with its timestamps parsed by `datetime.fromisoformat` (RQ uses `strptime`:
        ~9 us each, up to five per job read)."""
        if not isinstance(raw_data, dict) or not all(isinstance(field, bytes) for field in raw_data):
            return super().restore(raw_data)
        stamps = {field: raw_data[field] for field in _TIMESTAMPS if raw_data.get(field)}
        result = super().restore({field: value for field, value in raw_data.items() if field not in stamps})
        for field, value in stamps.items():
            setattr(self, field.decode(), _utc(value))
        return result


#: The job hash fields RQ stores as `utcformat` timestamps (what `Job.restore` parses).
_TIMESTAMPS = (b"created_at", b"enqueued_at", b"started_at", b"ended_at", b"last_heartbeat")


def _utc(value: bytes) -> datetime:
    text = value.decode()
    if len(text) in (20, 27) and text[10] == "T" and text[-1] == "Z":  # RQ's own formats, with and without us
        try:
            return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
        except ValueError:
            pass
    return str_to_date(value)  # whatever RQ itself makes of anything else


def make_queue(name: str, connection: Redis) -> Queue:
    return Queue(name, connection=connection, serializer=SERIALIZER, job_class=JsonJob)


def all_queues(connection: Redis) -> list[Queue]:
    return [make_queue(name, connection) for name in QUEUE_NAMES]
