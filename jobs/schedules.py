"""Schedules declared in code, next to the job types they run.

    from jobs.schedules import periodic

    periodic("stats.nightly", "stats.collect", cron="0 3 * * *", timezone="Europe/Paris")

Every worker (at its first scheduler tick) and the web (at start-up) declares them: a schedule
not yet in Redis is created, one whose declaration changed is updated (counters kept), an
unchanged one is left alone. They belong to the service (owner `service`): every API key sees
them in `GET /schedules`; only admin keys may change or delete them (a deleted one comes back at
the next start-up; disable it with `PATCH {"enabled": false}` instead, which sticks). Their id is
`svc-<name>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from core.schedules.model import SERVICE_OWNER, Definition
from core.schedules.timing import check_cron, zone
from jobs.registry import Registry


class Declares(Protocol):
    def declare(self, schedule_id: str, definition: Definition) -> Any: ...


@dataclass(frozen=True)
class Declared:
    name: str
    type: str
    args: dict[str, Any] = field(default_factory=dict)
    cron: str | None = None
    every: int | None = None
    timezone: str = "UTC"
    overlap: bool = False
    description: str | None = None

    @property
    def schedule_id(self) -> str:
        return f"svc-{self.name}"

    def definition(self, registry: Registry) -> Definition:
        spec = registry.get(self.type)
        args = spec.args_model.model_validate(self.args).model_dump(mode="json")
        return Definition(
            type=spec.name,
            args=args,
            queue=spec.queue,
            timeout=spec.timeout,
            retries=spec.retries,
            description=self.description or f"{spec.name} ({self.name})",
            cron=self.cron,
            every=self.every,
            timezone=self.timezone,
            overlap=self.overlap,
            owner=SERVICE_OWNER,
            declared=True,
        )


_declared: dict[str, Declared] = {}


def periodic(
    name: str,
    job_type: str,
    *,
    args: dict[str, Any] | None = None,
    cron: str | None = None,
    every: int | None = None,
    timezone: str = "UTC",
    overlap: bool = False,
    description: str | None = None,
) -> Declared:
    """Declare the schedule `name`: run `job_type` on `cron` (read in `timezone`) or `every` seconds."""
    if (cron is None) == (every is None):
        raise ValueError(f"schedule {name!r}: give exactly one of cron and every")
    if every is not None and every < 1:
        raise ValueError(f"schedule {name!r}: every must be at least 1 second")
    zone(timezone)
    entry = Declared(
        name, job_type, args or {}, check_cron(cron) if cron else None, every, timezone, overlap, description
    )
    _declared[name] = entry
    return entry


def declared() -> list[Declared]:
    return list(_declared.values())


def register_all(store: Declares, registry: Registry | None = None) -> int:
    """Declare every schedule written in code to `store`; returns how many."""
    if registry is None:
        from jobs.catalog import registry as catalog

        registry = catalog
    for entry in _declared.values():
        store.declare(entry.schedule_id, entry.definition(registry))
    return len(_declared)
