"""What the worker loop does besides running jobs: how often it reaches for the scheduler locks."""

from __future__ import annotations

from unittest import mock

import fakeredis
import pytest

from workers import reliable
from workers.concurrent import ConcurrentWorker


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> ConcurrentWorker:
    monkeypatch.setattr("workers.worker.sync_redis", lambda settings: fakeredis.FakeRedis())
    return ConcurrentWorker(["high", "default", "low"])


def test_a_worker_without_the_scheduler_locks_retries_them_once_a_second_not_every_turn(
    worker: ConcurrentWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers with `--with-scheduler`: the one whose scheduler did not get the locks must not spend a
    round trip per queue on every turn of its loop trying again (the locks' holder keeps them)."""
    clock = [1000.0]
    monkeypatch.setattr(reliable.time, "monotonic", lambda: clock[0])
    worker.recovery = mock.Mock()
    scheduler = worker.scheduler = mock.Mock(_process=None)
    for _ in range(50):
        worker._maintain()
        clock[0] += 0.01
    assert scheduler.acquire_locks.call_count == 1
    assert worker.recovery.tick.call_count == 50  # liveness and sweeps keep their own schedule

    clock[0] += reliable.SCHEDULER_RETRY_INTERVAL
    worker._maintain()
    assert scheduler.acquire_locks.call_count == 2
    scheduler.acquire_locks.assert_called_with(auto_start=True)


def test_a_scheduler_that_keeps_crashing_is_restarted_ever_less_often_until_it_stays_up(
    worker: ConcurrentWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RQ's scheduler process dies on the first write a full Redis refuses, logging a traceback: restarting it
    once a second would log one a second for as long as Redis stays full."""
    clock = [1000.0]
    monkeypatch.setattr(reliable.time, "monotonic", lambda: clock[0])
    worker.recovery = mock.Mock()
    crashed = mock.Mock(exitcode=1, **{"is_alive.return_value": False})
    scheduler = worker.scheduler = mock.Mock(_process=crashed)
    restarts = []
    for _ in range(200 * 10):  # 200 s in 0.1 s turns
        calls = scheduler.acquire_locks.call_count
        worker._maintain()
        if scheduler.acquire_locks.call_count > calls:
            restarts.append(round(clock[0] - 1000.0))
        clock[0] += 0.1
    assert restarts == [0, 2, 6, 14, 30, 62, 122, 182]  # 2, 4, 8, 16, 32, then every 60 s

    scheduler._process = mock.Mock(exitcode=None, **{"is_alive.return_value": True})
    clock[0] += reliable.SCHEDULER_RESTART_MAX
    worker._maintain()  # found running: the delay is back to the usual one
    scheduler._process = crashed
    clock[0] += reliable.SCHEDULER_RETRY_INTERVAL
    calls = scheduler.acquire_locks.call_count
    worker._maintain()
    assert scheduler.acquire_locks.call_count == calls + 1
