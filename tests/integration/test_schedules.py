"""Schedules with a real server and real `rq worker` processes: exactly once under several workers and
SIGKILLs, one catch-up run after an outage of every worker, pause and resume."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest
import redis

from core import keys
from tests.support.procs import Proc, ProcessFactory, wait_for

pytestmark = pytest.mark.integration


def create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = api.post("/schedules", json={"type": "demo.noop", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def schedule(api: httpx.Client, schedule_id: str) -> dict[str, Any]:
    response = api.get(f"/schedules/{schedule_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def runs(api: httpx.Client, schedule_id: str) -> list[dict[str, Any]]:
    """Every run of the schedule, newest first, through `GET /jobs?schedule=` (all pages)."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"schedule": schedule_id, "limit": 200, **({"cursor": cursor} if cursor else {})}
        page = api.get("/jobs", params=params).json()
        found += page["jobs"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def due_of(run: dict[str, Any]) -> float:
    return datetime.fromisoformat(run["scheduled_for"]).timestamp()


def assert_once_each(dues: list[float]) -> None:
    """No due time twice, and none missing between the first and the last (`every: 1`)."""
    assert len(dues) == len(set(dues)), f"a due time fired twice: {sorted(dues)}"
    ordered = sorted(dues)
    gaps = [b - a for a, b in zip(ordered, ordered[1:], strict=False) if b - a != 1]
    assert not gaps, f"gaps between due times: {gaps} in {ordered}"


def test_every_second_with_three_workers_fires_each_due_time_once(
    api: httpx.Client, procs: ProcessFactory, rclient: redis.Redis
) -> None:
    for _ in range(3):
        procs.worker()
    made = create(api, every=1, overlap=True)
    start = time.time()
    wait_for(lambda: time.time() - start >= 11.5, 15, interval=0.2, what="11.5 s of schedule runs")
    window = [run for run in runs(api, made["id"]) if start + 0.5 <= due_of(run) < start + 10.5]
    assert len(window) in (9, 10, 11), [run["scheduled_for"] for run in window]
    assert_once_each([due_of(run) for run in runs(api, made["id"])])
    lags = [datetime.fromisoformat(run["enqueued_at"]).timestamp() - due_of(run) for run in window]
    assert max(lags) <= 2.0, lags  # queued within 2 s of the due time
    wait_for(lambda: all(run["status"] == "finished" for run in runs(api, made["id"])[1:]), 20, what="runs done")
    assert schedule(api, made["id"])["skipped"] == 0


def test_sigkilled_workers_leave_no_duplicate_and_no_gap(api: httpx.Client, procs: ProcessFactory) -> None:
    workers: list[Proc] = [procs.worker() for _ in range(3)]
    made = create(api, every=1, overlap=True)
    start = time.time()
    kills = 0
    while time.time() - start < 12:
        victim = workers.pop(0)
        victim.kill_group()  # kill -9, the worker and anything it started
        kills += 1
        workers.append(procs.worker(wait=False))
        next_kill = time.time() + 1
        wait_for(lambda at=next_kill: time.time() >= at, 2, interval=0.1, what="the next kill")  # type: ignore[misc]
    wait_for(lambda: time.time() - start >= 14, 5, interval=0.2, what="the last due times")
    found = runs(api, made["id"])
    dues = [due_of(run) for run in found]
    assert kills >= 10
    assert_once_each(dues)
    assert len([due for due in dues if start + 0.5 <= due < start + 12.5]) in (11, 12, 13)
    assert schedule(api, made["id"])["runs"] == len(found)


def test_one_catch_up_run_after_every_worker_was_down(
    api: httpx.Client, procs: ProcessFactory, rclient: redis.Redis
) -> None:
    worker = procs.worker()
    made = create(api, every=1, overlap=True)
    wait_for(lambda: schedule(api, made["id"])["runs"] >= 2, 15, what="two runs")
    worker.stop()
    before = schedule(api, made["id"])
    last_due = max(due_of(run) for run in runs(api, made["id"]))
    stopped_at = time.time()
    wait_for(lambda: time.time() - stopped_at >= 20, 25, interval=0.5, what="20 s without workers")
    assert schedule(api, made["id"])["runs"] == before["runs"]  # nothing fires without a worker
    procs.worker()
    wait_for(lambda: schedule(api, made["id"])["runs"] >= before["runs"] + 3, 20, what="runs after the restart")
    after = schedule(api, made["id"])
    dues = sorted(due_of(run) for run in runs(api, made["id"]))
    assert len(dues) == len(set(dues))
    catch_up = min(due for due in dues if due > last_due)
    assert catch_up - last_due >= 20  # the missed ones were not run
    skipped = after["skipped"] - before["skipped"]
    assert skipped == round(catch_up - last_due) - 1  # every missed due time but the catch-up is counted
    regular = [due for due in dues if due > catch_up]
    assert regular[:2] == [catch_up + 1, catch_up + 2]  # then once a second again, no burst
    assert rclient.zscore(keys.SCHEDULES_DUE, made["id"]) is not None


def test_pause_and_resume(api: httpx.Client, procs: ProcessFactory) -> None:
    procs.worker()
    made = create(api, every=1, overlap=True)
    wait_for(lambda: schedule(api, made["id"])["runs"] >= 1, 15, what="a first run")
    paused = api.patch(f"/schedules/{made['id']}", json={"enabled": False}).json()
    assert paused["enabled"] is False and paused["next_run_at"] is None
    held = schedule(api, made["id"])["runs"]
    since = time.time()
    wait_for(lambda: time.time() - since >= 3, 5, interval=0.2, what="3 s paused")
    assert schedule(api, made["id"])["runs"] == held
    resumed = api.patch(f"/schedules/{made['id']}", json={"enabled": True}).json()
    assert resumed["enabled"] is True
    wait_for(lambda: schedule(api, made["id"])["runs"] > held, 5, what="a run after resuming")
    after = schedule(api, made["id"])
    assert after["skipped"] == 0  # a pause is not a misfire: nothing was counted, nothing caught up
    assert api.delete(f"/schedules/{made['id']}").status_code == 204


def test_a_schedule_declared_in_code_runs_and_is_listed(api: httpx.Client, procs: ProcessFactory) -> None:
    for _ in range(2):  # both declare it at start-up: one schedule
        procs.worker(JOB_MODULES="tests.support.declared_schedules")
    wait_for(lambda: api.get("/schedules/svc-it-every-second").status_code == 200, 10, what="the declaration")
    wait_for(lambda: schedule(api, "svc-it-every-second")["runs"] >= 3, 15, what="three runs")
    listed = [s for s in api.get("/schedules").json()["schedules"] if s["declared"]]
    assert [s["id"] for s in listed] == ["svc-it-every-second"] and listed[0]["owner"] == "service"
    found = runs(api, "svc-it-every-second")
    assert len(found) >= 3 and all(run["schedule_id"] == "svc-it-every-second" for run in found)
    assert_once_each([due_of(run) for run in found])
