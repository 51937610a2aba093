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
