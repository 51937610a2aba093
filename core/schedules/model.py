"""A schedule as stored: its definition (what each run submits, and when) and its running state.

The definition is kept as one JSON field of the schedule's hash (`core.keys.schedule`); the state
(`next_run_at`, `runs`, `skipped`, ...) as fields of their own, so the firing script can update them
in place. `version` grows with every change of the definition: a worker that read an older one
fires nothing (`core.rqadapter.schedule_fire`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from core.clock import iso_z
from core.schedules.timing import Timing

#: The owner of the schedules declared in code (`jobs.schedules`): the service itself.
SERVICE_OWNER = "service"

#: Fields a client may set (POST) or change (PATCH).
JOB_FIELDS = ("type", "args", "queue", "timeout", "retries", "description", "callback_url")
TIMING_FIELDS = ("cron", "every", "timezone")
FLAG_FIELDS = ("enabled", "overlap")


@dataclass(frozen=True)
class Definition:
    """What each run submits (already validated as `POST /jobs` would), and when runs are due."""

    type: str
    args: dict[str, Any]
    queue: str
    timeout: int
    retries: int
    description: str
    callback_url: str | None = None
    cron: str | None = None
    every: int | None = None
    timezone: str = "UTC"
    enabled: bool = True
    overlap: bool = False
    owner: str = SERVICE_OWNER
    created_at: float = 0.0  # Unix seconds; `every` counts from here
    declared: bool = False  # declared in code (`jobs.schedules`), not created over HTTP

    @property
    def timing(self) -> Timing:
        return Timing(self.cron, self.every, self.timezone, self.created_at)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Definition:
        return cls(**json.loads(raw))

    def changed(self, **fields: Any) -> Definition:
        return replace(self, **fields)


@dataclass(frozen=True)
class State:
    """What firing keeps up to date."""

    version: int = 1
    next_run_ms: int | None = None  # None while disabled
    last_run_at: float | None = None  # the due time of the newest run
    last_job_id: str | None = None
    runs: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class Schedule:
    id: str
    definition: Definition
    state: State = field(default_factory=State)

    def view(self) -> dict[str, Any]:
        """The schedule view of the HTTP API."""
        d, s = self.definition, self.state
        return {
            "id": self.id,
            "type": d.type,
            "args": d.args,
            "queue": d.queue,
            "timeout": d.timeout,
            "retries": d.retries,
            "description": d.description,
            "callback_url": d.callback_url,
            "cron": d.cron,
            "every": d.every,
            "timezone": d.timezone,
            "enabled": d.enabled,
            "overlap": d.overlap,
            "next_run_at": iso_ms(s.next_run_ms),
            "last_run_at": iso_z(_utc(s.last_run_at)),
            "last_job_id": s.last_job_id,
            "runs": s.runs,
            "skipped": s.skipped,
            "owner": d.owner,
            "declared": d.declared,
            "created_at": iso_z(_utc(d.created_at)),
        }


def _utc(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def iso_ms(milliseconds: int | None) -> str | None:
    return None if milliseconds is None else iso_z(_utc(milliseconds / 1000))


def to_ms(seconds: float) -> int:
    """A due time as stored (whole milliseconds), rounded up: never early."""
    return -int(-seconds * 1000 // 1)


def state_fields(state: State) -> dict[str, str]:
    """`state` as the schedule hash stores it ('' = none)."""
    return {
        "version": str(state.version),
        "next_run_at": "" if state.next_run_ms is None else str(state.next_run_ms),
        "last_run_at": "" if state.last_run_at is None else repr(state.last_run_at),
        "last_job_id": state.last_job_id or "",
        "runs": str(state.runs),
        "skipped": str(state.skipped),
    }


def parse_state(raw: dict[bytes, bytes]) -> State:
    def text(name: str) -> str:
        return raw.get(name.encode(), b"").decode()

    return State(
        version=int(text("version") or 1),
        next_run_ms=int(text("next_run_at")) if text("next_run_at") else None,
        last_run_at=float(text("last_run_at")) if text("last_run_at") else None,
        last_job_id=text("last_job_id") or None,
        runs=int(text("runs") or 0),
        skipped=int(text("skipped") or 0),
    )


def parse_schedule(schedule_id: str, raw: dict[bytes, bytes]) -> Schedule | None:
    """The stored schedule, or None for an empty (deleted) hash."""
    if b"def" not in raw:
        return None
    return Schedule(schedule_id, Definition.from_json(raw[b"def"]), parse_state(raw))
