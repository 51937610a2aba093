"""What the worker loop does besides running jobs: how often it reaches for the scheduler locks, and
when it writes (and deletes) RQ's executions of the jobs it runs."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import cast
from unittest import mock

import fakeredis
import pytest
from rq import Queue
from rq.job import JobStatus
from rq.registry import StartedJobRegistry
from rq.utils import now

from core import keys
from core.queues import SERIALIZER
from core.rqadapter import executions
from core.rqadapter.claims import Claims
from workers import scheduling
from workers.concurrent import ConcurrentWorker
from workers.job import RegisteredJob
from workers.running import Running, RunOutcome


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> ConcurrentWorker:
    monkeypatch.setattr("workers.base.sync_redis", lambda settings: fakeredis.FakeRedis())
    return ConcurrentWorker(["high", "default", "low"])


def test_a_worker_without_the_scheduler_locks_retries_them_once_a_second_not_every_turn(
    worker: ConcurrentWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers with `--with-scheduler`: the one whose scheduler did not get the locks must not spend a
    round trip per queue on every turn of its loop trying again (the locks' holder keeps them)."""
    clock = [1000.0]
    monkeypatch.setattr(scheduling, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    worker.recovery = mock.Mock()
    scheduler = worker.scheduler = mock.Mock(_process=None)
    for _ in range(50):
        worker._maintain()
        clock[0] += 0.01
    assert scheduler.acquire_locks.call_count == 1
    assert worker.recovery.tick.call_count == 50  # liveness and sweeps keep their own schedule

    clock[0] += scheduling.SCHEDULER_RETRY_INTERVAL
    worker._maintain()
    assert scheduler.acquire_locks.call_count == 2
    scheduler.acquire_locks.assert_called_with(auto_start=True)


def test_a_scheduler_that_keeps_crashing_is_restarted_ever_less_often_until_it_stays_up(
    worker: ConcurrentWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RQ's scheduler process dies on the first write a full Redis refuses, logging a traceback: restarting it
    once a second would log one a second for as long as Redis stays full."""
    clock = [1000.0]
    monkeypatch.setattr(scheduling, "time", SimpleNamespace(monotonic=lambda: clock[0]))
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
    clock[0] += scheduling.SCHEDULER_RESTART_MAX
    worker._maintain()  # found running: the delay is back to the usual one
    scheduler._process = crashed
    clock[0] += scheduling.SCHEDULER_RETRY_INTERVAL
    calls = scheduler.acquire_locks.call_count
    worker._maintain()
    assert scheduler.acquire_locks.call_count == calls + 1


def running_job(worker: ConcurrentWorker, since: float) -> Running:
    """A job as `_start` leaves it: claimed by the worker, `started`, in the started registry, running here
    since `since`, the rest of its execution not written."""
    queue = Queue("default", connection=worker.connection, serializer=SERIALIZER, job_class=RegisteredJob)
    queued = queue.enqueue_call("jobs.builtin.demo.noop")
    worker.connection.hset(keys.CLAIMS, queued.id, worker.name)
    # rq types `fetch` as returning `Job`, not the class it is called on
    job = cast(RegisteredJob, RegisteredJob.fetch(queued.id, connection=worker.connection, serializer=SERIALIZER))
    execution = executions.new_execution(job, worker.name)
    with worker.connection.pipeline() as pipe:
        executions.register_start(pipe, execution, 60, int(time.time()))
        job.prepare_for_execution(worker.name, pipeline=pipe)
        pipe.execute()
    running = Running(job, queue, execution, since=since)
    worker.running[job.id] = running
    return running


def held_executions(running: Running) -> list[tuple[str, str]]:
    registry: StartedJobRegistry = running.job.started_job_registry
    return registry.get_job_and_execution_ids()


def written(worker: ConcurrentWorker, running: Running) -> bool:
    """Whether the rest of its execution is in Redis: the hash, and the job's and the worker's indexes."""
    execution = running.execution
    return bool(
        worker.connection.exists(execution.key)
        and worker.connection.zscore(f"rq:executions:{running.job.id}", execution.id) is not None
        and worker.connection.sismember(execution.worker_executions_key, execution.composite_key)
    )


def test_an_execution_is_written_once_its_job_ran_for_the_delay_or_at_a_heartbeat_never_once_given_up(
    worker: ConcurrentWorker,
) -> None:
    clock = time.monotonic()
    old, new, given_up = (running_job(worker, since) for since in (clock - 0.2, clock, clock - 0.2))
    given_up.cancelled_for = "claim lost"
    assert worker._unrecorded(clock) == [old]
    worker._record_executions(worker._unrecorded(clock))
    assert written(worker, old) and not written(worker, new)
    assert worker._next_record_in(clock) == pytest.approx(0.1)  # `new`'s turn comes

    worker._heartbeat_running()  # a heartbeat writes the rest first, whatever their age
    assert new.recorded and written(worker, new) and worker._next_record_in(clock) == float("inf")
    assert not worker.connection.exists(given_up.execution.key)  # not even by the heartbeat


def test_a_job_recovered_elsewhere_has_the_execution_written_here_deleted(worker: ConcurrentWorker) -> None:
    # Written after the recovering worker dropped what it found (this worker was presumed dead).
    running = running_job(worker, time.monotonic() - 1)
    worker._record_executions([running])
    assert written(worker, running)
    running.cancelled_for = "claim lost"
    worker.running.pop(running.job.id)
    worker._finish([RunOutcome(running)])
    assert held_executions(running) == []
    assert not worker.connection.exists(running.execution.key)
    assert not worker.connection.exists(running.execution.worker_executions_key)


def test_a_success_deletes_an_execution_whose_write_lost_its_reply(worker: ConcurrentWorker) -> None:
    running = running_job(worker, time.monotonic() - 1)
    with worker.connection.pipeline() as pipe:  # the write reached Redis, its reply never came back
        worker._queue_records(pipe, [running])
        pipe.execute()
    assert running.record_sent and not running.recorded and written(worker, running)
    worker.running.pop(running.job.id)
    running.job.ended_at = now()
    worker._finish([RunOutcome(running, value=None)])
    assert running.job.get_status(refresh=True) == JobStatus.FINISHED
    assert held_executions(running) == []
    assert not worker.connection.exists(running.execution.key)


@pytest.mark.parametrize("kind", ["success", "failure"])
def test_an_outcome_is_discarded_once_the_claim_was_taken_over(worker: ConcurrentWorker, kind: str) -> None:
    """This worker was presumed dead and its job taken over: the batch of plain successes and RQ's per-job
    handlers alike record nothing for it, and a job still held is recorded beside it."""
    taken, kept = running_job(worker, time.monotonic() - 1), running_job(worker, time.monotonic() - 1)
    assert Claims(worker.connection).take_over(taken.job.id, worker.name, "other")
    for running in (taken, kept):
        worker.running.pop(running.job.id)
        running.job.ended_at = now()
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        exc_info = (RuntimeError, exc, exc.__traceback__)
    worker._finish([RunOutcome(r, value=1, exc_info=exc_info if kind == "failure" else None) for r in (taken, kept)])
    assert taken.job.get_status(refresh=True) == JobStatus.STARTED and taken.job.results() == []
    assert kept.job.get_status(refresh=True) == (JobStatus.FINISHED if kind == "success" else JobStatus.FAILED)
    assert Claims(worker.connection).all() == {taken.job.id: "other"}
