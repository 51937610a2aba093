"""What the API returns, as small typed objects; `.raw` keeps the server's JSON as it came."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobs_client._exceptions import JobEndedBadly

#: Statuses after which a job never changes again (API.md conventions).
ENDED_STATUSES = frozenset({"finished", "failed", "stopped", "canceled"})


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report: percentage 0-100, the job's message (None for a bare percentage) and its time."""

    progress: float
    message: str | None
    time: datetime | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProgressEvent:
        return cls(float(data.get("progress") or 0), data.get("message"), parse_time(data.get("time")))


@dataclass(frozen=True)
class OutputChunk:
    """A piece of the text a job streams (an `output` event): `seq` counts chunks from 1, in order."""

    seq: int
    text: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutputChunk:
        return cls(int(data.get("seq") or 0), str(data.get("text") or ""))


@dataclass(frozen=True)
class Job:
    id: str
    type: str | None
    status: str
    progress: float
    description: str | None = None
    queue: str | None = None
    messages: list[ProgressEvent] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    created_at: datetime | None = None
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    timeout: int | None = None
    retries_left: int | None = None
    position: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: Set by `submit()`: True when the service answered with an identical job it already had (result reuse,
    #: `cache_ttl`) instead of enqueuing a new one.
    reused: bool = field(default=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        return cls(
            id=str(data["id"]),
            type=data.get("type"),
            status=str(data.get("status")),
            progress=float(data.get("progress") or 0),
            description=data.get("description"),
            queue=data.get("queue"),
            messages=[ProgressEvent.from_json(m) for m in data.get("messages") or []],
            result=data.get("result"),
            error=data.get("error"),
            created_at=parse_time(data.get("created_at")),
            enqueued_at=parse_time(data.get("enqueued_at")),
            started_at=parse_time(data.get("started_at")),
            ended_at=parse_time(data.get("ended_at")),
            timeout=data.get("timeout"),
            retries_left=data.get("retries_left"),
            position=data.get("position"),
            raw=data,
        )

    @property
    def ended(self) -> bool:
        """True once the job is finished, failed, stopped or canceled."""
        return self.status in ENDED_STATUSES

    @property
    def ok(self) -> bool:
        return self.status == "finished"

    def raise_for_status(self) -> Job:
        """Raise `JobEndedBadly` if the job ended without finishing; return self otherwise."""
        if self.ended and not self.ok:
            raise JobEndedBadly(self)
        return self


@dataclass(frozen=True)
class Page:
    """One page of `GET /jobs`; iterate it for its jobs (listings carry no messages or result)."""

    jobs: list[Job]
    next_cursor: str | None

    def __iter__(self) -> Iterator[Job]:
        return iter(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)


@dataclass(frozen=True)
class JobType:
    type: str
    description: str
    queue: str
    timeout: int
    retries: int
    args_schema: dict[str, Any]
    cache_ttl: int | None = None  # default `cache_ttl` of a submission (result reuse); None: reuse only if asked

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobType:
        return cls(
            type=data["type"],
            description=data.get("description", ""),
            queue=data.get("queue", "default"),
            timeout=int(data.get("timeout", 0)),
            retries=int(data.get("retries", 0)),
            args_schema=data.get("args_schema") or {},
            cache_ttl=data.get("cache_ttl"),
        )
