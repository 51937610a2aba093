"""Chaos soak for flow-control slots: workers SIGKILLed every 2 s while limited jobs run; the limit is never
exceeded, no slot leaks, every job ends."""

from __future__ import annotations

import random
import time
from typing import cast

import redis
from rq.job import JobStatus

from core.flow import keys as flow_keys
from tests.conftest import REPORT, RecordProperty
from tests.reliability.support import wait_claims_settled
from tests.reliability.test_chaos import KILL_EVERY, WORKERS
from tests.support.flow import intervals, most_at_once, push, slot_keys, statuses
from tests.support.procs import Proc, ProcessFactory, wait_for

JOBS = 120
LIMIT = 4
CHAOS_FOR = 20.0


def running_now(client: redis.Redis, ids: list[str]) -> int:
    return sum(1 for status in statuses(client, ids) if status == JobStatus.STARTED)


def slot_holder(client: redis.Redis, workers: list[Proc], rng: random.Random) -> int:
    """The index of a worker that holds a slot of the limited type (so the kill cuts a run short), or of
    any worker when none holds one."""
    holders = {name.decode() for name in cast(list[bytes], client.hvals(flow_keys.running_type("demo.steps")))}
    pids = {int(pid) for pid in (client.hget(f"rq:worker:{name}", "pid") for name in sorted(holders)) if pid}
    candidates = [index for index, worker in enumerate(workers) if worker.pid in pids]
    return rng.choice(candidates) if candidates else rng.randrange(len(workers))


def test_chaos_keeps_limits_and_leaks_no_slot(
    procs: ProcessFactory, rclient: redis.Redis, record_property: RecordProperty
) -> None:
    procs.env.update(TYPE_CONCURRENCY=f"demo.steps={LIMIT}", KEY_CONCURRENCY="50", WORKER_CONCURRENCY="20")
    ids = push(rclient, "demo.steps", JOBS, kwargs={"steps": 2, "delay": 0.2}, retries=3)
    workers = [procs.worker(wait=False) for _ in range(WORKERS)]
    rng = random.Random(11)
    kills, peak_slots, peak_started, samples = 0, 0, 0, 0
    chaos_ends = next_kill = time.monotonic() + KILL_EVERY
    chaos_ends += CHAOS_FOR - KILL_EVERY
    while time.monotonic() < chaos_ends:
        peak_slots = max(peak_slots, int(rclient.hlen(flow_keys.running_type("demo.steps"))))
        peak_started = max(peak_started, running_now(rclient, ids))
        samples += 1
        if time.monotonic() >= next_kill:
            victim = slot_holder(rclient, workers, rng)
            workers[victim].kill_group()
            kills += 1
            workers[victim] = procs.worker(wait=False)
            next_kill += KILL_EVERY
        time.sleep(0.05)  # the sampling interval, not a wait for an outcome

    ended = {JobStatus.FINISHED, JobStatus.FAILED}
    wait_for(lambda: set(statuses(rclient, ids)) <= ended, 120, interval=0.5, what="every job to end")
    final = statuses(rclient, ids)
    finished = [job_id for job_id, status in zip(ids, final, strict=True) if status == JobStatus.FINISHED]
    recovered = sum(1 for job_id in ids if b"lost" in (rclient.hget(f"rq:job:{job_id}", "meta") or b""))
    record_property(
        REPORT,
        f"flow chaos: {JOBS} jobs limited to {LIMIT}, {kills} worker SIGKILLs; {len(finished)} finished, "
        f"{JOBS - len(finished)} failed; {recovered} with a lost attempt; peak slots {peak_slots}, "
        f"peak started {peak_started} over {samples} samples",
    )
    assert peak_slots <= LIMIT and peak_started <= LIMIT
    assert peak_slots == LIMIT, "the limit was reached (the soak ran limited jobs at full width)"
    assert most_at_once(intervals(rclient, finished)) <= LIMIT
    assert kills >= CHAOS_FOR / KILL_EVERY - 1 and recovered > 0
    wait_claims_settled(rclient)
    wait_for(lambda: not slot_keys(rclient), 10, what="every slot released")
