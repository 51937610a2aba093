"""RQ's job hash, field by field: what the service reads of it, or writes to it, without a `Job` method.

- `JsonJob`: RQ's `Job`, JSON by default, read faster (`restore` parses RQ's timestamps itself).
- `is_stored`: whether a raw hash read with HGETALL is a whole job (RQ writes `data` with every save).
- `queue_status_reads` / `decode_status`: a job's `status` field, read in a pipeline.
- `readable_meta`, `meta_is_unreadable`: `meta`, unless it is not JSON (then RQ never deserializes it).
- `exc_info`: the traceback RQ keeps on the hash of a job that failed before it had a result.
- `serialize_meta` / `meta_write`: `meta` as RQ's JSON serializer writes it, and the script that saves it
  unless the job was started again since (`SUPERSEDED`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq.job import Job
from rq.serializers import JSONSerializer, resolve_serializer
from rq.utils import str_to_date

from core import keys
from core.meta import ATTEMPT, MESSAGES

#: The hash field holding a job's status, and the one holding its meta.
STATUS_FIELD = "status"
META_FIELD = "meta"


class JsonJob(Job):
    """RQ's `Job` with JSON as its default serializer, resolved without RQ's check when it is JSON.

    RQ checks a serializer with `isinstance` against a runtime Protocol, which costs ~11 us on
    Python 3.11 for every job built or read (a page of 50 jobs: ~0.5 ms). `JSONSerializer` is known
    to be fine; anything else still goes through RQ's check."""

    def __init__(self, id: str | None = None, connection: Redis | None = None, serializer: Any = None) -> None:
        super().__init__(id, connection=connection, serializer=None)  # RQ's fast path: no check
        self.serializer = JSONSerializer if serializer in (None, JSONSerializer) else resolve_serializer(serializer)

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


def is_stored(raw: dict[bytes, bytes] | None) -> bool:
    """True if `raw` (a job hash as HGETALL returns it) is a whole job, not nothing or a leftover field."""
    return bool(raw) and b"data" in raw  # type: ignore[operator]


def queue_status_reads(pipe: Any, job_ids: list[str]) -> None:
    """Queue on `pipe` (sync or asyncio) one read of each job's status; see `decode_status`."""
    for job_id in job_ids:
        pipe.hget(Job.key_for(job_id), STATUS_FIELD)


def decode_status(raw: bytes | str | None) -> str | None:
    """A status as `queue_status_reads` returned it; None when the job does not exist."""
    return raw.decode() if isinstance(raw, bytes) else raw


def meta_is_unreadable(job: Job) -> bool:
    """True if the stored meta is not JSON (a planted pickle, say): RQ kept it undeserialized."""
    return job._unreadable_meta is not None


def readable_meta(job: Job) -> dict[str, Any]:
    """The job's meta, or {} when it is not JSON (see `meta_is_unreadable`)."""
    return {} if meta_is_unreadable(job) else job.meta


def exc_info(job: Job) -> str | None:
    """The traceback stored on the job's hash (a failure recorded without a result entry), if any."""
    return job._exc_info


def serialize_meta(job: Job) -> bytes:
    """`job.meta` as its serializer (JSON) writes it, each kept message encoded only once.

    A progress report re-encodes what is new and reuses the rest, remembered on the job object:
    ~13 us instead of ~31 us for 50 kept messages. Entries are events: never changed once appended.
    """
    meta, messages = job.meta, job.meta.get(MESSAGES)
    if job.serializer is not JSONSerializer or not isinstance(messages, list) or not messages:
        return job._serialize_meta()
    known: dict[int, tuple[Any, str]] = job.__dict__.get("_encoded_messages", {})
    encoded: dict[int, tuple[Any, str]] = {}
    texts: list[str] = []
    for entry in messages:
        hit = known.get(id(entry))
        if hit is None or hit[0] is not entry:
            hit = (entry, json.dumps(entry))
        encoded[id(entry)] = hit
        texts.append(hit[1])
    job.__dict__["_encoded_messages"] = encoded  # holds the entries, so their ids stay theirs
    head = json.dumps({key: value for key, value in meta.items() if key != MESSAGES})
    separator = ", " if len(head) > 2 else ""
    listed = ", ".join(texts)
    return f'{head[:-1]}{separator}"{MESSAGES}": [{listed}]}}'.encode()


#: `meta_write`'s reply when nothing was written: a newer start of the job was recorded since the writer's (its
#: run was superseded: its worker was presumed dead and the job was started again).
SUPERSEDED = 0

# KEYS: the job's hash. ARGV: the writer's attempt, the meta. Replies 1 (written) or SUPERSEDED.
_META_WRITE = f"""local newest = tonumber(redis.call('HGET', KEYS[1], '{keys.ATTEMPT_FIELD}') or '0') or 0
if newest > tonumber(ARGV[1]) then return {SUPERSEDED} end
redis.call('HSET', KEYS[1], '{META_FIELD}', ARGV[2])
return 1"""


def meta_write(job: Job) -> tuple[Any, ...]:
    """The command that saves `job.meta` alone (what `Job.save_meta` writes), for a caller's own batch,
    unless a newer start of the job was recorded since this run's (then it replies `SUPERSEDED`)."""
    return ("EVAL", _META_WRITE, 1, job.key, int(job.meta.get(ATTEMPT, 1)), serialize_meta(job))


def origin_and_status(connection: Redis, job_id: str) -> tuple[str | None, str | None]:
    """The job's queue and status as stored (blocking); (None, None) when it does not exist."""
    origin, status = connection.hmget(Job.key_for(job_id), ["origin", STATUS_FIELD])
    return decode_status(origin), decode_status(status)
