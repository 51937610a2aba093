"""The Procfile's worker (`ConcurrentWorker`) against a real server: many jobs at once, and RQ's
guarantees kept — registries, results, timeouts, stop, progress, crash recovery, queue order."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
import redis
from rq import Queue, Retry, Worker
from rq.command import send_stop_job_command
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from core.queues import SERIALIZER
from tests.support.procs import ProcessFactory, wait_for
from tests.support.replies import text

pytestmark = pytest.mark.integration


def enqueue(rclient: redis.Redis, func: str, queue: str = "default", **options: Any) -> Job:
    kwargs = options.pop("kwargs", {})
    job = Queue(queue, connection=rclient, serializer=SERIALIZER).enqueue_call(
        func, kwargs=kwargs, result_ttl=600, failure_ttl=600, **options
    )
    return job


def sleep_job(rclient: redis.Redis, mode: str, seconds: float = 1.0, steps: int = 1, **options: Any) -> Job:
    return enqueue(
        rclient, "jobs.builtin.demo.sleep", kwargs={"seconds": seconds, "steps": steps, "mode": mode}, **options
    )


def fetch(rclient: redis.Redis, job_id: str) -> Job:
    return Job.fetch(job_id, connection=rclient, serializer=SERIALIZER)


def status(rclient: redis.Redis, job_id: str) -> JobStatus | None:
    return fetch(rclient, job_id).get_status()


def wait_statuses(rclient: redis.Redis, jobs: list[Job], wanted: set[JobStatus], timeout: float = 30) -> None:
    wait_for(lambda: all(status(rclient, job.id) in wanted for job in jobs), timeout, 0.1, f"jobs to reach {wanted}")


def test_runs_sync_and_async_io_jobs_at_once_with_rq_bookkeeping(rclient: redis.Redis, procs: ProcessFactory) -> None:
    procs.worker(WORKER_CONCURRENCY="50")
    jobs = [sleep_job(rclient, "async" if i % 2 else "sync", seconds=3) for i in range(40)]
    started = StartedJobRegistry("default", connection=rclient)

    # All 40 are started at the same time (each waits 3 s): RQ's started registry and (from
    # EXECUTION_RECORD_DELAY after their start) the worker's execution index, which rq-dashboard reads, hold them.
    wait_for(lambda: started.count == 40, 15, what="40 jobs started at once")
    (worker,) = Worker.all(connection=rclient)
    assert worker.get_state() == "busy"
    wait_for(lambda: len(worker.get_current_executions(refresh=True)) == 40, 5, what="their executions written")
    assert worker.queue_names() == ["high", "default", "low"]

    wait_statuses(rclient, jobs, {JobStatus.FINISHED})
    for i, job in enumerate(jobs):
        done = fetch(rclient, job.id)
        assert done.return_value() == {"slept": 3, "mode": "async" if i % 2 else "sync"}
        assert done.meta["attempt"] == 1 and done.worker_name == worker.name
        assert done.id in Queue("default", connection=rclient).finished_job_registry
    assert started.count == 0
    assert rclient.llen("rq:queue:default:intermediate") == 0
    worker.refresh()
    assert worker.successful_job_count == 40 and worker.get_state() == "idle"
    assert len(worker.get_current_executions(refresh=True)) == 0


def _calls(rclient: redis.Redis, command: str) -> int:
    return int(rclient.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def test_a_job_gets_its_rq_execution_once_it_runs_on_not_when_it_ends_at_once(
    rclient: redis.Redis, procs: ProcessFactory
) -> None:
    # CPU-trivial jobs end before the rest of their execution is due (EXECUTION_RECORD_DELAY): its hash and
    # index entries are neither written nor deleted. RQ's way EXPIREs the hash and the job's index and SREMs
    # the worker's index entry at the end, on top of the job's and its result's two EXPIREs. (A job the loop
    # reaches late on this loaded machine may still get them: hence the margins.)
    trivial = [enqueue(rclient, "jobs.builtin.demo.noop") for _ in range(60)]
    expires, srems = _calls(rclient, "expire"), _calls(rclient, "srem")
    procs.worker()
    wait_statuses(rclient, trivial, {JobStatus.FINISHED})
    assert _calls(rclient, "srem") - srems < len(trivial) // 2
    assert _calls(rclient, "expire") - expires < 3 * len(trivial)
    (worker,) = Worker.all(connection=rclient)
    assert worker.successful_job_count == len(trivial)

    # A job that runs on is in RQ's started registry from its start, and in the job's and the worker's
    # execution indexes once its execution is written.
    long_job = sleep_job(rclient, "sync", seconds=3)
    started = StartedJobRegistry("default", connection=rclient)
    wait_for(lambda: status(rclient, long_job.id) == JobStatus.STARTED, 10, what="the job started")
    ((job_id, execution_id),) = started.get_job_and_execution_ids()
    assert job_id == long_job.id
    wait_for(lambda: worker.get_current_executions(refresh=True), 10, what="the running job's execution written")
    assert [e.id for e in worker.get_current_executions(refresh=True)] == [execution_id]
    assert [e.id for e in fetch(rclient, job_id).get_executions()] == [execution_id]
    wait_statuses(rclient, [long_job], {JobStatus.FINISHED})
    assert started.count == 0 and not worker.get_current_executions(refresh=True)
    assert not rclient.exists(f"rq:execution:{job_id}:{execution_id}")


def test_progress_of_async_and_sync_jobs_is_their_own(rclient: redis.Redis, procs: ProcessFactory) -> None:
    procs.worker(WORKER_CONCURRENCY="10")
    jobs = [sleep_job(rclient, mode, seconds=2, steps=4) for mode in ("async", "sync", "async", "sync")]
    wait_for(
        lambda: all(0 < fetch(rclient, j.id).meta.get("progress", 0) < 100 for j in jobs), 15, what="progress mid-run"
    )
    wait_statuses(rclient, jobs, {JobStatus.FINISHED})
    for job in jobs:
        messages = fetch(rclient, job.id).meta["messages"]
        assert [m["message"] for m in messages] == [f"slept {i}/4" for i in range(1, 5)]
        assert [m["progress"] for m in messages] == [25, 50, 75, 100]


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_timeout_fails_the_job_and_the_worker_goes_on(mode: str, rclient: redis.Redis, procs: ProcessFactory) -> None:
    procs.worker(WORKER_CONCURRENCY="4")
    slow = sleep_job(rclient, mode, seconds=60, steps=120, timeout=1)
    neighbour = sleep_job(rclient, mode, seconds=2, steps=2)
    wait_statuses(rclient, [slow], {JobStatus.FAILED}, timeout=20)
    failed = fetch(rclient, slow.id)
    result = failed.latest_result()
    assert result is not None and "JobTimeoutException" in (result.exc_string or "")
    assert "(1 seconds)" in (result.exc_string or "")
    assert slow.id in Queue("default", connection=rclient).failed_job_registry
    # the neighbour ran beside it untouched, and the worker takes new work
    wait_statuses(rclient, [neighbour], {JobStatus.FINISHED})
    after = enqueue(rclient, "jobs.builtin.demo.noop")
    wait_statuses(rclient, [after], {JobStatus.FINISHED})
    # the interrupted sync thread never writes progress after its job failed
    time.sleep(1)
    assert fetch(rclient, slow.id).get_status() == JobStatus.FAILED


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_stop_command_stops_one_running_job(mode: str, rclient: redis.Redis, procs: ProcessFactory) -> None:
    procs.worker(WORKER_CONCURRENCY="4")
    target = sleep_job(rclient, mode, seconds=60, steps=120)
    other = sleep_job(rclient, mode, seconds=3, steps=3)
    wait_statuses(rclient, [target, other], {JobStatus.STARTED})
    wait_for(lambda: fetch(rclient, target.id).meta.get("progress", 0) > 0, 10, what="target reporting")

    send_stop_job_command(rclient, target.id, serializer=SERIALIZER)

    wait_statuses(rclient, [target], {JobStatus.STOPPED}, timeout=10)
    assert target.id in Queue("default", connection=rclient).failed_job_registry
    wait_statuses(rclient, [other], {JobStatus.FINISHED})
    assert StartedJobRegistry("default", connection=rclient).count == 0


def test_jobs_of_a_killed_worker_are_recovered_as_abandoned(rclient: redis.Redis, procs: ProcessFactory) -> None:
    bound = 6.0  # ABANDONED_JOB_TIMEOUT, short so the test is quick
    worker = procs.worker(WORKER_CONCURRENCY="10", ABANDONED_JOB_TIMEOUT=str(bound))
    retried = [sleep_job(rclient, "async", seconds=60, steps=60, retry=Retry(max=1)) for _ in range(3)]
    lost = [sleep_job(rclient, "sync", seconds=60, steps=60) for _ in range(3)]
    started = StartedJobRegistry("default", connection=rclient, serializer=SERIALIZER)
    wait_for(lambda: started.count == 6, 15, what="6 jobs started")
    claims = rclient.hgetall("jobsvc:claims")
    assert {text(job_id) for job_id in claims} == {job.id for job in retried + lost}  # one claim per job

    worker.kill_group()  # SIGKILL: no chance to record anything
    assert all(status(rclient, job.id) == JobStatus.STARTED for job in retried + lost)

    # A new worker's abandoned-job sweep (not RQ's registry cleanup, disabled here) recovers
    # all six within the bound: retried where retries are left, else failed with the reason.
    killed_at = time.monotonic()
    procs.worker(WORKER_CONCURRENCY="10", ABANDONED_JOB_TIMEOUT=str(bound))
    wait_statuses(rclient, lost, {JobStatus.FAILED}, timeout=bound * 3)
    for job in lost:
        exc_string = fetch(rclient, job.id).latest_result().exc_string or ""  # type: ignore[union-attr]
        assert "AbandonedJobError: worker died while running the job" in exc_string
        assert "attempt 1 lost" in fetch(rclient, job.id).meta["messages"][-1]["message"]
    # the retried ones run again on the new worker: their second attempt
    wait_for(
        lambda: all(fetch(rclient, job.id).meta.get("attempt") == 2 for job in retried), bound * 3, what="2nd attempts"
    )
    assert time.monotonic() - killed_at < bound * 3
    assert all(status(rclient, job.id) == JobStatus.STARTED for job in retried)
    assert not any(job.id in started.get_job_ids() for job in lost)


def test_takes_jobs_in_queue_priority_order(rclient: redis.Redis, procs: ProcessFactory) -> None:
    jobs = {
        name: [enqueue(rclient, "jobs.builtin.demo.noop", queue=name) for _ in range(4)]
        for name in ("low", "default", "high")
    }
    procs.worker(WORKER_CONCURRENCY="3")
    everything = [job for batch in jobs.values() for job in batch]
    wait_statuses(rclient, everything, {JobStatus.FINISHED})
    order = sorted(everything, key=lambda job: fetch(rclient, job.id).started_at)  # type: ignore[arg-type,return-value]
    assert [job.origin for job in order] == ["high"] * 4 + ["default"] * 4 + ["low"] * 4


def test_warm_shutdown_finishes_running_jobs_first(rclient: redis.Redis, procs: ProcessFactory) -> None:
    worker = procs.worker(WORKER_CONCURRENCY="10")
    jobs = [sleep_job(rclient, mode, seconds=2, steps=2) for mode in ("async", "sync")]
    wait_statuses(rclient, jobs, {JobStatus.STARTED})
    worker.signal(signal.SIGTERM)
    wait_for(lambda: "warm shutdown; running jobs may finish" in worker.log(), 5, what="the signal handled")
    queued_later = enqueue(rclient, "jobs.builtin.demo.noop")
    worker.popen.wait(20)
    assert worker.popen.returncode == 0, worker.log()
    assert all(status(rclient, job.id) == JobStatus.FINISHED for job in jobs)
    assert status(rclient, queued_later.id) == JobStatus.QUEUED  # taken by no one after the signal
    assert Worker.all(connection=rclient) == []


def test_a_failure_goes_through_rq_retries(rclient: redis.Redis, procs: ProcessFactory) -> None:
    procs.worker(WORKER_CONCURRENCY="5", RETRY_BACKOFF_BASE="1")
    flaky = {"steps": 2, "delay": 0, "fail_at": 1, "fail_attempts": 1}
    job = enqueue(rclient, "jobs.builtin.demo.steps", kwargs=flaky, retry=Retry(max=1))
    unregistered = enqueue(rclient, "os.getcwd")
    wait_statuses(rclient, [job], {JobStatus.FINISHED}, timeout=20)
    assert fetch(rclient, job.id).return_value() == {"steps": 2, "attempt": 2}
    wait_statuses(rclient, [unregistered], {JobStatus.FAILED})
    assert "not a registered job type" in (fetch(rclient, unregistered.id).latest_result().exc_string or "")  # type: ignore[union-attr]
