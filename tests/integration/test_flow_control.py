"""Flow control with real `rq worker` processes: limits held across processes, owners' turns, no head-of-line
blocking, priorities, and a malformed setting stopping web and workers at start-up."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import redis
from rq.job import JobStatus

from stack.procfile import procfile_command
from tests.support.flow import fetch, intervals, most_at_once, most_in_window, push, slot_keys, statuses
from tests.support.procs import ProcessFactory, base_env, wait_for

pytestmark = pytest.mark.integration


def wait_ended(client: redis.Redis, ids: list[str], timeout: float) -> None:
    ended = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
    wait_for(lambda: set(statuses(client, ids)) <= ended, timeout, 0.1, f"{len(ids)} jobs to end")


def test_type_concurrency_holds_across_three_workers(rclient: redis.Redis, procs: ProcessFactory) -> None:
    procs.env.update(TYPE_CONCURRENCY="demo.sleep=2", WORKER_CONCURRENCY="20")
    for _ in range(3):
        procs.worker()
    ids = push(rclient, "demo.sleep", 30, kwargs={"seconds": 0.2})
    wait_ended(rclient, ids, 60)
    assert set(statuses(rclient, ids)) == {JobStatus.FINISHED}
    assert most_at_once(intervals(rclient, ids)) == 2
    wait_for(lambda: not slot_keys(rclient), 5, what="every slot released")


def test_rate_limit_spreads_starts(rclient: redis.Redis, procs: ProcessFactory) -> None:
    """100 jobs at 20/second (not 200 at 10/second: the same check in a quarter of the time). Starts are read from
    the jobs' `started_at`, written a moment after the claim that the limit counts: any window of 0.8 s holds at
    most 20 of them whatever that moment (under 0.2 s), and the drain takes at least 4 s."""
    procs.worker(TYPE_RATE_LIMIT="demo.noop=20/second", WORKER_CONCURRENCY="20")
    began = time.monotonic()
    ids = push(rclient, "demo.noop", 100)
    wait_ended(rclient, ids, 30)
    took = time.monotonic() - began
    starts = [start for start, _ in intervals(rclient, ids)]
    assert most_in_window(starts, 0.8) <= 20
    assert 4 <= took <= 12, took
    assert (max(starts) - min(starts)).total_seconds() >= 3.8  # 5 windows: the 5th batch starts 4 s after the 1st


def test_owners_take_turns(rclient: redis.Redis, procs: ProcessFactory) -> None:
    procs.worker(WORKER_CONCURRENCY="5")
    a_ids = push(rclient, "demo.sleep", 500, owner="a", kwargs={"seconds": 0.2})
    wait_for(lambda: fetch(rclient, a_ids[0]).started_at is not None, 10, what="a's first job to start")
    b_submitted = datetime.now(UTC)
    b_ids = push(rclient, "demo.sleep", 5, owner="b", kwargs={"seconds": 0.2})
    wait_ended(rclient, b_ids, 30)
    last_b = max(start for start, _ in intervals(rclient, b_ids))
    a_started = [fetch(rclient, job_id).started_at for job_id in a_ids]
    a_between = [start for start in a_started if start is not None and b_submitted < start <= last_b]
    assert len(a_between) < 20, len(a_between)
    assert sum(1 for start in a_started if start is not None) < 400, "a's backlog is still there"


def test_a_held_back_type_blocks_nothing_behind_it(rclient: redis.Redis, procs: ProcessFactory) -> None:
    sleeps = push(rclient, "demo.sleep", 3, kwargs={"seconds": 30})
    noops = push(rclient, "demo.noop", 5)
    procs.worker(TYPE_CONCURRENCY="demo.sleep=1", WORKER_CONCURRENCY="20")
    wait_ended(rclient, noops, 30)
    assert set(statuses(rclient, noops)) == {JobStatus.FINISHED}
    assert statuses(rclient, sleeps) == [JobStatus.STARTED, JobStatus.QUEUED, JobStatus.QUEUED]


def test_priorities_hold_under_limits(rclient: redis.Redis, procs: ProcessFactory) -> None:
    """One job at a time (a forking worker): the `high` job, queued last, starts first."""
    defaults = push(rclient, "demo.noop", 3)
    urgent = push(rclient, "demo.noop", queue="high")
    procs.worker(TYPE_CONCURRENCY="demo.noop=1", WORKER_CONCURRENCY="1")
    wait_ended(rclient, defaults + urgent, 30)
    spans = intervals(rclient, urgent + defaults)
    assert spans[0][1] <= min(start for start, _ in spans[1:])


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("TYPE_CONCURRENCY", "demo.nope=2", "TYPE_CONCURRENCY: 'demo.nope=2': unknown job type 'demo.nope'"),
        ("TYPE_RATE_LIMIT", "demo.sleep=5/fortnight", "TYPE_RATE_LIMIT: 'demo.sleep=5/fortnight': unknown unit"),
        ("KEY_CONCURRENCY", "0", "KEY_CONCURRENCY: '0': the limit must be at least 1"),
    ],
)
def test_a_malformed_setting_stops_web_and_workers(
    procs: ProcessFactory, redis_url: str, setting: str, value: str, message: str
) -> None:
    env = base_env(redis_url, **{setting: value})
    for name in ("web", "worker"):
        proc = procs.spawn(name, f"exec {procfile_command(name)}", {**env, "PORT": "0"})
        wait_for(lambda: not proc.alive(), 30, what=f"{name} to stop")  # noqa: B023
        assert proc.popen.returncode != 0, proc.log()
        assert message in proc.log(), proc.log()
