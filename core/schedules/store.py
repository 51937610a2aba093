"""Schedules in Redis (blocking client): create, read, list, change, delete, and declare from code.

Every write that touches a schedule's timing updates its hash and its place in the due set
(`core.keys.SCHEDULES_DUE`) in one MULTI/EXEC, WATCHing the hash, so a worker firing the schedule
meanwhile (`core.rqadapter.schedule_fire`) either sees the old definition whole or the new one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import WatchError

from core import keys
from core.schedules.model import (
    SERVICE_OWNER,
    Definition,
    Schedule,
    State,
    parse_schedule,
    state_fields,
    to_ms,
)

#: Optimistic writes retry this often before giving up (the schedule fires or changes all the time).
WATCH_ATTEMPTS = 50
#: Extra entries read past a listing cursor's score, to step over ties with it.
TIE_SLACK = 16


class ScheduleContendedError(RuntimeError):
    """The schedule kept changing while a write was applied."""


@dataclass(frozen=True)
class SchedulePage:
    schedules: list[Schedule]
    next_cursor: tuple[float, str] | None  # (creation score, id) of the last one listed


def new_id() -> str:
    return uuid.uuid4().hex


def first_due_ms(definition: Definition, now: float) -> int | None:
    """When an enabled schedule is next due, from `now` on (None while disabled)."""
    if not definition.enabled:
        return None
    timing = definition.timing
    return to_ms(timing.next_after(max(now, definition.created_at)))


def _creation_score(definition: Definition) -> float:
    return definition.created_at * 1_000_000


class ScheduleStore:
    def __init__(self, connection: Redis) -> None:
        self.connection = connection

    def create(self, definition: Definition, schedule_id: str | None = None, *, now: float | None = None) -> Schedule:
        schedule_id = schedule_id or new_id()
        state = State(next_run_ms=first_due_ms(definition, time.time() if now is None else now))
        with self.connection.pipeline(transaction=True) as pipe:
            self._write(pipe, schedule_id, definition, state)
            pipe.zadd(keys.SCHEDULES_ALL, {schedule_id: _creation_score(definition)})
            pipe.zadd(keys.schedules_of_owner(definition.owner), {schedule_id: _creation_score(definition)})
            pipe.execute()
        return Schedule(schedule_id, definition, state)

    def get(self, schedule_id: str) -> Schedule | None:
        return parse_schedule(schedule_id, self.connection.hgetall(keys.schedule(schedule_id)))  # type: ignore[arg-type]

    def count_of(self, owner: str) -> int:
        return int(self.connection.zcard(keys.schedules_of_owner(owner)))

    def update(
        self, schedule_id: str, change: Callable[[Definition], Definition], *, now: float | None = None
    ) -> Schedule | None:
        """Apply `change` to the stored definition (None: no such schedule). The next due time is
        recomputed from now when the timing changed or the schedule was enabled again."""
        key = keys.schedule(schedule_id)
        for _ in range(WATCH_ATTEMPTS):
            with self.connection.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    current = parse_schedule(schedule_id, pipe.hgetall(key))  # type: ignore[arg-type]
                    if current is None:
                        return None
                    updated = change(current.definition)
                    state = _rescheduled(current, updated, time.time() if now is None else now)
                    pipe.multi()
                    self._write(pipe, schedule_id, updated, state)
                    pipe.execute()
                    return Schedule(schedule_id, updated, state)
                except WatchError:
                    continue
        raise ScheduleContendedError(schedule_id)

    def delete(self, schedule_id: str, owner: str) -> None:
        with self.connection.pipeline(transaction=True) as pipe:
            pipe.delete(keys.schedule(schedule_id))
            pipe.zrem(keys.SCHEDULES_DUE, schedule_id)
            pipe.zrem(keys.SCHEDULES_ALL, schedule_id)
            pipe.zrem(keys.schedules_of_owner(owner), schedule_id)
            pipe.execute()  # the runs index is left to expire with its jobs (listing prunes it)

    def page(self, owners: list[str] | None, limit: int, after: tuple[float, str] | None) -> SchedulePage:
        """Oldest created first; `owners` None: every schedule, else those of these owners (merged)."""
        indexes = [keys.SCHEDULES_ALL] if owners is None else [keys.schedules_of_owner(o) for o in owners]
        low = after[0] if after else "-inf"
        with self.connection.pipeline(transaction=False) as pipe:
            for index in indexes:
                pipe.zrangebyscore(index, low, "+inf", start=0, num=limit + 1 + TIE_SLACK, withscores=True)
            replies = pipe.execute()
        entries = sorted({(score, member.decode()) for reply in replies for member, score in reply})
        if after is not None:
            entries = [entry for entry in entries if entry > after]
        taken = entries[:limit]
        with self.connection.pipeline(transaction=False) as pipe:
            for _, schedule_id in taken:
                pipe.hgetall(keys.schedule(schedule_id))
            hashes = pipe.execute()
        found = [parse_schedule(sid, raw) for (_, sid), raw in zip(taken, hashes, strict=True)]
        schedules = [schedule for schedule in found if schedule is not None]
        more = len(entries) > limit
        return SchedulePage(schedules, taken[-1] if more and taken else None)

    def declare(self, schedule_id: str, definition: Definition, *, now: float | None = None) -> Schedule:
        """Create or bring up to date a schedule declared in code; unchanged, it is left alone (its
        counters and next due time kept), so every process may declare it at every start-up."""
        current = self.get(schedule_id)
        if current is None:
            kept = definition.changed(created_at=definition.created_at or (time.time() if now is None else now))
            return self.create(kept, schedule_id, now=now)
        kept = current.definition  # its creation and enabled flag are the service's, not the code's
        wanted = definition.changed(created_at=kept.created_at, enabled=kept.enabled)
        if wanted == current.definition:
            return current
        updated = self.update(schedule_id, lambda _old: wanted, now=now)
        assert updated is not None
        return updated

    def _write(self, pipe: Redis, schedule_id: str, definition: Definition, state: State) -> None:
        fields: dict[Any, Any] = {"def": definition.to_json(), **state_fields(state)}
        pipe.hset(keys.schedule(schedule_id), mapping=fields)
        if state.next_run_ms is None:
            pipe.zrem(keys.SCHEDULES_DUE, schedule_id)
        else:
            pipe.zadd(keys.SCHEDULES_DUE, {schedule_id: state.next_run_ms})


def _rescheduled(current: Schedule, updated: Definition, now: float) -> State:
    old = current.definition
    state = current.state
    version = state.version + 1
    if not updated.enabled:
        next_ms = None
    elif not old.enabled or old.timing != updated.timing or state.next_run_ms is None:
        next_ms = first_due_ms(updated, now)
    else:
        next_ms = state.next_run_ms
    return State(version, next_ms, state.last_run_at, state.last_job_id, state.runs, state.skipped)


def visible_owners(caller: str, admin: bool) -> list[str] | None:
    """Whose schedules a caller lists: everyone's for an admin, else their own and the service's."""
    return None if admin else [caller, SERVICE_OWNER]
