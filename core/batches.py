"""Batches: a group of jobs with one status, one progress, one end (`POST /batches`).

A batch is one Redis hash (`core.keys.batch`) holding its record (owner, description, total, when it
was created and ended, what its end enqueues) and its counters: members per status (`n:<status>`)
and the sum of the members' progress (`psum`). The counters are kept by the event script every
member's announcement runs (`core.rqadapter.batches`), which also ends the batch exactly once. This
module writes the record and reads it back as the batch view; web and jobs both use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis

from core import keys
from core.rqadapter.batches import COUNT_PREFIX, end_jobs_field

#: A member's statuses, in RQ's words: the keys of the view's `counts`.
STATUSES = ("queued", "scheduled", "deferred", "started", "finished", "failed", "stopped", "canceled")
RUNNING = "running"
CANCELED = "canceled"


@dataclass(frozen=True)
class NewBatch:
    """What a new batch's record holds."""

    id: str
    owner: str
    description: str
    total: int
    created_at: str  # ISO 8601, `Z`
    score: float  # listing score: creation time in microseconds
    ttl: int  # seconds its keys are kept once it ended
    callback_url: str | None = None
    on_complete: tuple[str, str] | None = None  # (job id, queue) of the staged on_complete job
    callback_job: tuple[str, str] | None = None  # (job id, queue) of the staged callback delivery
    end_indexes: Mapping[str, tuple[float, Sequence[str]]] | None = None  # staged job id -> (score, job indexes)


def record_commands(batch: NewBatch) -> list[tuple[Any, ...]]:
    """The writes that create `batch`'s record, its listing entries and its place among running batches."""
    staged = [job for job in (batch.on_complete, batch.callback_job) if job is not None]
    fields: dict[str, Any] = {
        "id": batch.id,
        "owner": batch.owner,
        "description": batch.description,
        "status": RUNNING,
        "total": batch.total,
        "created_at": batch.created_at,
        "ttl": batch.ttl,
        "psum": 0,
        "end_jobs": end_jobs_field(staged),
    }
    if batch.callback_url:
        fields["callback_url"] = batch.callback_url
    if batch.on_complete is not None:
        fields["on_complete_job_id"] = batch.on_complete[0]
    if batch.callback_job is not None:
        fields["callback_job_id"] = batch.callback_job[0]
    for job_id, (score, indexes) in (batch.end_indexes or {}).items():
        fields[f"index:{job_id}"] = " ".join([repr(score), *indexes])
    key = keys.batch(batch.id)
    return [
        ("HSET", key, *(part for pair in fields.items() for part in pair)),
        ("ZADD", keys.BATCH_INDEX_ALL, batch.score, batch.id),
        ("ZADD", keys.batch_index_for_owner(batch.owner), batch.score, batch.id),
        ("SADD", keys.BATCHES_RUNNING, batch.id),
    ]


def _text(raw: Mapping[Any, Any], name: str) -> str | None:
    value = raw.get(name.encode(), raw.get(name))
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _number(raw: Mapping[Any, Any], name: str) -> float:
    try:
        return float(_text(raw, name) or 0)
    except ValueError:
        return 0.0


def owner_of(raw: Mapping[Any, Any]) -> str | None:
    return _text(raw, "owner")


def is_ended(raw: Mapping[Any, Any]) -> bool:
    return _text(raw, "done") == "1"


def counts_of(raw: Mapping[Any, Any]) -> dict[str, int]:
    return {status: int(_number(raw, COUNT_PREFIX + status)) for status in STATUSES}


def progress_of(raw: Mapping[Any, Any]) -> float:
    """The members' mean progress, 0-100 (two decimals)."""
    total = _number(raw, "total")
    if total <= 0:
        return 0
    mean = max(0.0, min(100.0, _number(raw, "psum") / total))
    return int(mean) if mean.is_integer() else round(mean, 2)


def callback_state(raw: Mapping[Any, Any]) -> dict[str, Any] | None:
    """`{"attempts", "delivered", "last_error"}` of the batch's callback, None without a `callback_url`."""
    if not _text(raw, "callback_url"):
        return None
    return {
        "attempts": int(_number(raw, "cb_attempts")),
        "delivered": _text(raw, "cb_delivered") == "1",
        "last_error": _text(raw, "cb_error") or None,
    }


def batch_view(raw: Mapping[Any, Any]) -> dict[str, Any]:
    """The public view of a batch from its hash (as HGETALL returns it)."""
    ended = is_ended(raw)
    return {
        "id": _text(raw, "id"),
        "description": _text(raw, "description"),
        "status": _text(raw, "status"),
        "total": int(_number(raw, "total")),
        "counts": counts_of(raw),
        "progress": progress_of(raw),
        "created_at": _text(raw, "created_at"),
        "ended_at": _text(raw, "ended_at"),
        "on_complete_job_id": _text(raw, "on_complete_job_id") if ended else None,
        "callback": callback_state(raw),
    }


def read(connection: Redis, batch_id: str) -> dict[Any, Any] | None:
    """The batch's hash, None when there is no such batch (or it expired)."""
    raw: dict[Any, Any] = dict(connection.hgetall(keys.batch(batch_id)))
    return raw if raw and b"id" in raw else None


def record_callback(connection: Redis, batch_id: str, attempts: int, delivered: bool, last_error: str | None) -> None:
    """Write the batch callback's delivery state (only while the batch is kept)."""
    key = keys.batch(batch_id)
    fields = {"cb_attempts": attempts, "cb_delivered": "1" if delivered else "0", "cb_error": last_error or ""}
    connection.eval(
        "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], unpack(ARGV)) end return 0",
        1,
        key,
        *(part for pair in fields.items() for part in pair),
    )
