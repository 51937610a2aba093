"""RQ's operator tools against the Procfile's worker, forking (`WORKER_CONCURRENCY=1`) and concurrent:
`kill-horse` and `stop-execution` (rq-dashboard, `rq` users), `rq suspend`/`rq resume`, the dequeue
strategies, the shutdown date a warm shutdown writes, and a burst with the scheduler."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from rq import Queue, Worker
from rq.command import send_command, send_kill_horse_command, send_stop_execution_command
from rq.job import Job, JobStatus
from rq.worker import BaseWorker

from core.queues import SERIALIZER
from stack.procfile import procfile_command
from tests.support.procs import BIN, Proc, ProcessFactory, base_env, wait_for

pytestmark = pytest.mark.integration

MODES = {"forking": "1", "concurrent": "4"}


def enqueue(rclient: redis.Redis, func: str, queue: str = "default", **kwargs: Any) -> Job:
    return Queue(queue, connection=rclient, serializer=SERIALIZER).enqueue_call(
        func, kwargs=kwargs, result_ttl=600, failure_ttl=600
    )


def status(rclient: redis.Redis, job: Job) -> JobStatus | None:
    return Job.fetch(job.id, connection=rclient, serializer=SERIALIZER).get_status()


def the_worker(rclient: redis.Redis) -> BaseWorker:
    (worker,) = Worker.all(connection=rclient)
    return worker


def worker_with(procs: ProcessFactory, options: str, queues: str = "high default low", **env: str) -> Proc:
    """The Procfile's worker line with `options` added (run to its end, or until stopped)."""
    command = procfile_command("worker").rsplit(" high default low", 1)[0] + f" {options} {queues}"
    return procs.spawn("worker", f"exec {command}", base_env(procs.redis_url, **{**procs.env, **env}))


def rq_cli(procs: ProcessFactory, *args: str) -> None:
    subprocess.run([str(BIN / "rq"), *args, "-u", procs.redis_url], check=True, capture_output=True, timeout=30)


@pytest.mark.parametrize("mode", MODES)
def test_kill_horse_fails_the_running_job_and_the_worker_goes_on(
    mode: str, rclient: redis.Redis, procs: ProcessFactory
) -> None:
    procs.worker(WORKER_CONCURRENCY=MODES[mode])
    job = enqueue(rclient, "jobs.builtin.demo.sleep", seconds=30, steps=60, mode="sync")
    wait_for(lambda: status(rclient, job) == JobStatus.STARTED, 15, what="the job started")

    send_kill_horse_command(rclient, the_worker(rclient).name)

    wait_for(lambda: status(rclient, job) == JobStatus.FAILED, 10, what="the killed job failed")
    assert job.id in Queue("default", connection=rclient).failed_job_registry
    after = enqueue(rclient, "jobs.builtin.demo.noop")
    wait_for(lambda: status(rclient, after) == JobStatus.FINISHED, 15, what="the next job run")


@pytest.mark.parametrize("mode", MODES)
def test_stop_execution_stops_only_the_execution_it_names(
    mode: str, rclient: redis.Redis, procs: ProcessFactory, record_property: Callable[[str, object], None]
) -> None:
    procs.worker(WORKER_CONCURRENCY=MODES[mode], JOB_STOP_GRACE="0")
    job = enqueue(rclient, "jobs.builtin.demo.sleep", seconds=30, steps=60, mode="sync")
    fetched = Job.fetch(job.id, connection=rclient, serializer=SERIALIZER)
    wait_for(lambda: fetched.get_executions(), 15, what="the job's execution written")
    worker = the_worker(rclient)

    send_command(rclient, worker.name, "stop-execution", job_id=job.id, execution_id="not-this-one")
    wait_for(lambda: "command ignored" in procs.procs[0].log(), 5, what="the command ignored")
    ignored = status(rclient, job)
    if ignored == JobStatus.QUEUED:
        # Seen once on a loaded CI machine: the job was put back (not stopped) around the command; the worker's
        # log says why, and the job must start again, so the command naming its execution is still tested.
        record_property("report", f"stop-execution test: job requeued meanwhile; worker log:\n{procs.procs[0].log()}")
        wait_for(lambda: status(rclient, job) == JobStatus.STARTED, 15, what="the requeued job started again")
    else:
        assert ignored == JobStatus.STARTED, procs.procs[0].log()

    newest = max(fetched.get_executions(), key=lambda execution: execution.created_at)
    send_stop_execution_command(rclient, job_id=job.id, execution_id=newest.id)
    wait_for(lambda: status(rclient, job) == JobStatus.STOPPED, 10, what="the job stopped")


def test_a_suspended_worker_drains_the_queue_again_once_resumed(rclient: redis.Redis, procs: ProcessFactory) -> None:
    procs.worker(WORKER_CONCURRENCY="4")
    rq_cli(procs, "suspend")
    wait_for(lambda: the_worker(rclient).get_state() == "suspended", 10, what="the worker suspended")
    held = enqueue(rclient, "jobs.builtin.demo.noop")
    assert status(rclient, held) == JobStatus.QUEUED

    rq_cli(procs, "resume")

    wait_for(lambda: status(rclient, held) == JobStatus.FINISHED, 15, what="the queue drained after `rq resume`")
    assert the_worker(rclient).get_state() in ("idle", "busy")


def test_round_robin_takes_one_job_per_queue_in_turn_with_concurrency(
    rclient: redis.Redis, procs: ProcessFactory
) -> None:
    jobs = {name: [enqueue(rclient, "jobs.builtin.demo.noop", queue=name) for _ in range(3)] for name in ("a", "b")}
    proc = worker_with(procs, "--burst --dequeue-strategy round_robin", queues="a b", WORKER_CONCURRENCY="4")
    proc.popen.wait(30)
    everything = [job for batch in jobs.values() for job in batch]
    fetched = [Job.fetch(job.id, connection=rclient, serializer=SERIALIZER) for job in everything]
    assert all(job.get_status() == JobStatus.FINISHED for job in fetched), proc.log()
    order = sorted(fetched, key=lambda job: job.started_at)  # type: ignore[arg-type,return-value]
    assert [job.origin for job in order] == ["a", "b"] * 3


@pytest.mark.parametrize("mode", MODES)
def test_a_warm_shutdown_writes_its_date_to_the_worker_hash(
    mode: str, rclient: redis.Redis, procs: ProcessFactory
) -> None:
    proc = procs.worker(WORKER_CONCURRENCY=MODES[mode])
    name = the_worker(rclient).name
    job = enqueue(rclient, "jobs.builtin.demo.sleep", seconds=1, steps=1, mode="sync")
    wait_for(lambda: status(rclient, job) == JobStatus.STARTED, 15, what="the job started")

    proc.signal(signal.SIGTERM)
    proc.popen.wait(20)

    assert status(rclient, job) == JobStatus.FINISHED
    assert rclient.hget(f"rq:worker:{name}", "shutdown_requested_date"), proc.log()


@pytest.mark.parametrize("mode", MODES)
def test_a_burst_with_the_scheduler_makes_one_pass_and_releases_the_locks(
    mode: str, rclient: redis.Redis, procs: ProcessFactory
) -> None:
    queue = Queue("default", connection=rclient, serializer=SERIALIZER)
    due = queue.enqueue_at(datetime.now(UTC) - timedelta(seconds=1), "jobs.builtin.demo.noop", result_ttl=600)
    proc = worker_with(procs, "--burst", WORKER_CONCURRENCY=MODES[mode])
    proc.popen.wait(30)

    assert proc.popen.returncode == 0, proc.log()
    assert status(rclient, due) == JobStatus.FINISHED, proc.log()
    assert not rclient.keys("rq:scheduler-lock:*")
    assert "started with PID" in proc.log() and "Scheduler for" not in proc.log()  # no scheduler process
