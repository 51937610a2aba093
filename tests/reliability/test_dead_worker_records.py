"""A SIGKILLed worker leaves its RQ worker record and its scheduler's `rq:scheduler-lock:*` keys (61 s TTL)
behind; a live worker forgets the dead one and frees its locks within `ABANDONED_JOB_TIMEOUT`, so
`/readyz` counts only live workers and scheduled jobs keep being enqueued."""

from __future__ import annotations

import time

import httpx
import pytest
import redis
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from core.queues import QUEUE_NAMES
from tests.factories import steps_job
from tests.integration.test_spine import submit, view, wait_status
from tests.reliability.conftest import ABANDONED_JOB_TIMEOUT
from tests.reliability.test_worker_deaths import HEADROOM, wait_running
from tests.support.procs import Proc, ProcessFactory, wait_for
from tests.support.replies import text

LOCKS = [f"rq:scheduler-lock:{name}" for name in QUEUE_NAMES]


def lock_holders(client: redis.Redis) -> list[str | None]:
    return [None if value is None else text(value) for value in client.mget(LOCKS)]


def worker_key(client: redis.Redis, worker: Proc) -> str:
    """`rq:worker:<name>` of the RQ worker running in `worker` (found by its pid)."""
    for raw in client.smembers("rq:workers"):
        key = text(raw)
        if client.hget(key, "pid") == str(worker.pid).encode():
            return key
    raise AssertionError(f"no worker record with pid {worker.pid}")


def traces(client: redis.Redis, key: str) -> list[str]:
    """Where RQ still lists the worker `key`: its hash, the set of all workers, the per-queue sets."""
    found = [key] if client.exists(key) else []
    for registry in ["rq:workers", *(WORKERS_BY_QUEUE_KEY % name for name in QUEUE_NAMES)]:
        if client.sismember(registry, key):
            found.append(registry)
    return found


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
def test_a_killed_workers_records_and_scheduler_locks_are_cleared_by_a_live_worker(
    api: httpx.Client, procs: ProcessFactory, rclient: redis.Redis, worker_mode: str, busy: bool
) -> None:
    doomed = procs.worker()
    wait_for(lambda: None not in lock_holders(rclient), 30, what="the first worker's scheduler to take the locks")
    dead_scheduler = set(lock_holders(rclient))
    assert len(dead_scheduler) == 1
    doomed_key = worker_key(rclient, doomed)
    held = submit(api, steps_job(steps=400, delay=0.25)) if busy else None
    if held is not None:
        wait_running(api, held["id"])
    survivor = procs.worker()
    survivor_key = worker_key(rclient, survivor)
    assert set(lock_holders(rclient)) == dead_scheduler  # the survivor's scheduler waits for the locks

    doomed.kill_group()
    killed_at = time.monotonic()
    assert len(traces(rclient, doomed_key)) == 2 + len(QUEUE_NAMES)  # the kill left every record behind
    assert set(lock_holders(rclient)) == dead_scheduler
    # Due while the dead scheduler's locks would still stand for a minute: enqueued only if they are freed.
    scheduled = submit(api, {"type": "demo.steps", "args": {"steps": 1}, "delay": 1})
    assert view(api, scheduled["id"])["status"] == "scheduled"

    bound = ABANDONED_JOB_TIMEOUT + HEADROOM
    wait_for(lambda: dead_scheduler.isdisjoint(lock_holders(rclient)), bound + 5, what="the dead scheduler's locks")
    assert time.monotonic() - killed_at <= bound
    # The survivor's scheduler takes the locks over and enqueues the scheduled job.
    wait_for(lambda: None not in lock_holders(rclient), 10, what="the survivor's scheduler to take the locks")
    assert dead_scheduler.isdisjoint(lock_holders(rclient))
    done = wait_status(api, scheduled["id"], {"finished"}, timeout=bound)
    assert done["result"] == {"steps": 1, "attempt": 1}
    assert time.monotonic() - killed_at <= bound + 2
    if held is not None:
        failed = wait_status(api, held["id"], {"failed"}, timeout=5)
        assert failed["error"] == "AbandonedJobError: worker died while running the job"

    # The dead worker is forgotten by then (RQ alone would list it until its record's TTL, minutes later).
    left = max(0.0, killed_at + bound - time.monotonic())
    wait_for(lambda: traces(rclient, doomed_key) == [], left, what=f"{doomed_key} forgotten within {bound}s")
    assert len(traces(rclient, survivor_key)) == 2 + len(QUEUE_NAMES)  # the live one is kept
    ready = api.get("/readyz").json()
    assert ready["workers"] == 1, ready
