"""The schedules' firing loop, run by every worker process beside its work (`ServiceBase._maintain`).

At most every `TICK_INTERVAL` seconds a worker counts the due schedules (`ZCOUNT
jobsvc:schedules:due -inf <now>`: O(log N) and 0 while nothing is due, whatever the number of
schedules), reads up to BATCH of them, plans each pass (`plan_firing`) and applies each with one
script run (`core.rqadapter.schedule_fire`, all of a batch sent in one round trip), which writes
nothing if another worker fired that due time first. Workers take a random window of a large burst,
in a random order, so several of them share it instead of racing for the same schedules.

The first tick also declares the schedules written in code (`jobs.schedules`).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq import Queue

from core import keys
from core.connection import REDIS_DOWN
from core.queues import make_queue
from core.rqadapter import schedule_fire
from core.schedules.model import Schedule, parse_schedule, to_ms
from core.schedules.runs import RUNS_KEPT, build_run
from core.schedules.store import ScheduleStore
from core.schedules.timing import plan_firing
from core.settings import Settings, get_settings
from core.submitting import ACTIVE_STATUSES
from jobs import schedules as declared
from jobs.builtin import callbacks
from jobs.catalog import registry
from jobs.registry import UnknownJobTypeError

logger = logging.getLogger("workers.periodic")

#: Seconds between two looks at the due set by one worker process.
TICK_INTERVAL = 0.25
#: Due schedules handled per look (the rest at the next look, at once).
BATCH = 100


@dataclass
class TickCounts:
    due: int = 0  # due schedules read (BATCH: maybe more are due)
    fired: int = 0
    skipped: int = 0
    stale: int = 0


class PeriodicScheduler:
    def __init__(self, connection: Redis, settings: Settings | None = None) -> None:
        self.connection = connection
        self.settings = settings or get_settings()
        self.store = ScheduleStore(connection)
        self._fire = connection.register_script(schedule_fire.fire_source(ACTIVE_STATUSES))
        self._next_tick = 0.0
        self._declared = False
        self._queues: dict[str, Queue] = {}

    def maybe_tick(self) -> None:
        """A tick if one is due; a Redis outage is logged and waited out by the next tick."""
        moment = time.monotonic()
        if moment < self._next_tick:
            return
        self._next_tick = moment + TICK_INTERVAL
        try:
            counts = self.tick()
        except REDIS_DOWN as exc:
            logger.warning("schedules: Redis unreachable (%s); trying again next tick", exc)
            return
        if counts.due == BATCH:
            self._next_tick = moment  # more may be due: at once

    def tick(self, now: float | None = None) -> TickCounts:
        if not self._declared:
            declared.register_all(self.store)
            self._declared = True
        now = time.time() if now is None else now
        due = self._due_slice(int(now * 1000))  # due at or before now
        counts = TickCounts(due=len(due))
        if not due:
            return counts
        with self.connection.pipeline(transaction=False) as pipe:
            for member, _score in due:
                pipe.hgetall(keys.schedule(member.decode()))
            hashes = pipe.execute()
        passes: list[tuple[schedule_fire.FireCall, list[Any]]] = []
        for (member, score), raw in zip(due, hashes, strict=True):
            schedule = parse_schedule(member.decode(), raw)
            if schedule is None:  # deleted meanwhile: drop its stray due entry
                self.connection.zrem(keys.SCHEDULES_DUE, member)
                continue
            passes.append(self._prepare(schedule, int(score), now))
        with self.connection.pipeline(transaction=False) as pipe:  # each script atomic; one round trip in all
            for _call, args in passes:
                self._fire(keys=[], args=args, client=pipe)
            replies = pipe.execute()
        for (call, _args), reply in zip(passes, replies, strict=True):
            outcome = self._outcome(call, reply)
            counts.fired += outcome == schedule_fire.FIRED
            counts.skipped += outcome == schedule_fire.SKIPPED
            counts.stale += outcome == schedule_fire.STALE
        return counts

    def _due_slice(self, bound_ms: int) -> list[tuple[bytes, float]]:
        """Up to BATCH due schedules, in random order. Past BATCH due, a random window of them: workers
        sharing a burst then mostly work on different schedules instead of racing for the same ones.
        While nothing is due this is one ZCOUNT, O(log N)."""
        count = int(self.connection.zcount(keys.SCHEDULES_DUE, "-inf", bound_ms))
        if not count:
            return []
        offset = random.randrange(count - BATCH + 1) if count > BATCH else 0
        due: list[tuple[bytes, float]] = self.connection.zrangebyscore(  # type: ignore[assignment]
            keys.SCHEDULES_DUE, "-inf", bound_ms, start=offset, num=BATCH, withscores=True
        )
        random.shuffle(due)
        return due

    def fire(self, schedule: Schedule, due_ms: int, now: float) -> int:
        """One pass over `schedule`, due at `due_ms`, on its own: the script's reply code."""
        call, args = self._prepare(schedule, due_ms, now)
        return self._outcome(call, self._fire(keys=[], args=args))

    def _prepare(self, schedule: Schedule, due_ms: int, now: float) -> tuple[schedule_fire.FireCall, list[Any]]:
        """The pass over `schedule` due at `due_ms`, as the firing script's arguments."""
        definition = schedule.definition
        firing = plan_firing(definition.timing, due_ms / 1000, now, self.settings.schedule_misfire_grace)
        call = schedule_fire.FireCall(
            schedule.id,
            due_ms,
            schedule.state.version,
            to_ms(firing.next_due),
            firing.skipped,
            firing.due,
            definition.overlap,
            RUNS_KEPT,
        )
        if firing.due is None:
            return call, schedule_fire.fire_args(call)
        try:
            func_path = registry.get(definition.type).func_path
        except UnknownJobTypeError:
            logger.error("schedule %s: job type %r is no longer registered; run skipped", schedule.id, definition.type)
            call = schedule_fire.FireCall(**{**call.__dict__, "fired_for": None, "skipped": firing.skipped + 1})
            return call, schedule_fire.fire_args(call)
        state = callbacks.initial_state() if definition.callback_url else None
        queue = self._queues.get(definition.queue) or self._queues.setdefault(
            definition.queue, make_queue(definition.queue, self.connection)
        )
        run = build_run(queue, schedule.id, definition, func_path, firing.due, self.settings, state)
        args = schedule_fire.fire_args(
            call,
            commands=run.commands,
            job_id=run.job.id,
            quota=run.quota,
            listing=run.listing,
            pushed_onto=definition.queue,
        )
        return call, args

    def _outcome(self, call: schedule_fire.FireCall, reply: Any) -> int:
        code = int(reply[0])
        if code == schedule_fire.SKIPPED and len(reply) > 2 and int(reply[2]) > 0:
            logger.warning("schedule %s: run refused by the owner's active-jobs quota; skipped", call.schedule_id)
        return code
