"""The ConcurrentWorker's batched bookkeeping (`core.rqadapter.executions`, `bookkeeping`): what RQ reads
back, and the commands it sends.

That it leaves Redis exactly as RQ's own worker does is `tests/differential`'s job: it runs RQ's worker
and ours on the same jobs against a real server and compares every key.
"""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
from rq import Queue
from rq.executions import Execution
from rq.job import Job
from rq.results import Result
from rq.utils import current_timestamp, now

from core import keys, runtimes
from core.meta import ATTEMPT
from core.queues import SERIALIZER
from core.rqadapter import bookkeeping, executions
from workers.job import RegisteredJob

WORKER = "w1"
HEARTBEAT_TTL = 70


def queued_job(conn: fakeredis.FakeRedis, **options: Any) -> RegisteredJob:
    parent = options.pop("parent", None)
    if parent:  # deferred behind `parent` (its dependencies key written), then run as if the parent had finished
        Queue("default", connection=conn, serializer=SERIALIZER).enqueue_call("jobs.builtin.demo.noop", job_id=parent)
        options["depends_on"] = parent
    queue = Queue("default", connection=conn, serializer=SERIALIZER, job_class=RegisteredJob)
    queued = queue.enqueue_call("jobs.builtin.demo.noop", job_id="job-1", **options)
    conn.lrem(queue.key, 0, queued.id)  # claimed
    job = RegisteredJob.fetch(queued.id, connection=conn, serializer=SERIALIZER)
    assert isinstance(job, RegisteredJob)
    return job


def start_batched(conn: fakeredis.FakeRedis, job: RegisteredJob, *, record: bool = True) -> Execution:
    """The worker's start; `record=False`: with the started registry entry alone (a run that ends before the
    rest of its execution is due)."""
    execution = executions.new_execution(job, WORKER)
    with conn.pipeline() as pipe:
        executions.register_start(pipe, execution, HEARTBEAT_TTL, current_timestamp())
        if record:
            executions.record_execution(pipe, execution, HEARTBEAT_TTL, current_timestamp())
        job.prepare_for_execution(WORKER, pipeline=pipe)
        pipe.persist(job.key)
        if record:
            executions.expire_worker_executions(pipe, [execution], [HEARTBEAT_TTL])
        pipe.execute()
    return execution


def succeed_batched(
    conn: fakeredis.FakeRedis, job: RegisteredJob, execution: Execution, value: Any, ttl: int, *, recorded: bool = True
) -> list[str]:
    """The success as the worker writes it; returns the commands it sent."""
    job.ended_at = now()
    with conn.pipeline() as pipe:
        bookkeeping.record_success(pipe, job, execution, value, ttl, WORKER, current_timestamp(), recorded=recorded)
        sent = [str(args[0]) for args, _ in pipe.command_stack]
        pipe.execute()
    return sent


CASES = pytest.mark.parametrize(
    ("value", "result_ttl", "options"),
    [
        (None, 3600, {}),
        ({"answer": [1, 2]}, 600, {"ttl": 900}),  # a job key with a TTL while queued: persisted at start
        ({1, 2}, -1, {}),  # not JSON: RQ's "unserializable" payload; results kept forever
        ("done", 3600, {"parent": "parent-1"}),  # a job with a dependency: its dependencies key expires too
    ],
    ids=["none", "ttl", "unserializable-forever", "with-dependency"],
)


@CASES
@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "ended-before-record"])
def test_rq_reads_a_batched_start_and_success_back_as_its_own(
    value: Any, result_ttl: int, options: dict[str, Any], recorded: bool
) -> None:
    conn = fakeredis.FakeRedis()
    our_job = queued_job(conn, **options)
    execution = start_batched(conn, our_job, record=recorded)
    started = Job.fetch("job-1", connection=conn, serializer=SERIALIZER)
    assert started.get_status() == "started" and started.meta[ATTEMPT] == 1 and started.worker_name == WORKER
    assert our_job.started_job_registry.get_job_and_execution_ids() == [(our_job.id, execution.id)]
    assert bool(conn.exists(execution.key)) is recorded
    assert bool(conn.exists(execution.worker_executions_key)) is recorded

    sent = succeed_batched(conn, our_job, execution, value, result_ttl, recorded=recorded)
    if not recorded:  # a job that ended within `EXECUTION_RECORD_DELAY`: the registry entry alone to delete
        assert sent.count("ZREM") == 1 and not {"DEL", "SREM"} & set(sent)
    job = Job.fetch("job-1", connection=conn, serializer=SERIALIZER)
    assert job.get_status() == "finished" and job.ended_at is not None and job.worker_name == WORKER
    result = Result.fetch_latest(job, serializer=SERIALIZER)
    assert result is not None and result.type == Result.Type.SUCCESSFUL
    assert result.execution_id == execution.id
    expected = "Unserializable return value" if isinstance(value, set) else value
    assert job.return_value() == expected
    assert job.id in Queue("default", connection=conn).finished_job_registry
    assert job.started_job_registry.get_job_and_execution_ids() == []
    assert not conn.exists(execution.key) and not conn.exists(execution.worker_executions_key)


def test_started_job_is_in_rqs_registries_with_its_execution() -> None:
    conn = fakeredis.FakeRedis()
    job = queued_job(conn)
    execution = start_batched(conn, job)
    fetched = Job.fetch(job.id, connection=conn, serializer=SERIALIZER)
    assert fetched.get_status() == "started" and fetched.meta[ATTEMPT] == 1 and fetched.worker_name == WORKER
    assert fetched.last_heartbeat == fetched.started_at
    assert [e.id for e in fetched.get_executions()] == [execution.id]
    assert job.started_job_registry.get_job_and_execution_ids() == [(job.id, execution.id)]


def test_record_many_adds_up_as_one_record_per_run() -> None:
    runs = [("demo.noop", "finished", 0.004), ("demo.noop", "finished", 0.2), ("demo.noop", "failed", 0.004)] * 3
    one_by_one, together = fakeredis.FakeRedis(), fakeredis.FakeRedis()
    for run in runs:
        runtimes.record(one_by_one, *run)
    with together.pipeline() as pipe:
        runtimes.record_many(pipe, runs)
        assert len(pipe.command_stack) == 3 + 2 * 2  # an increment per bucket touched, a count and a sum per series
        pipe.execute()
    ours, expected = (runtimes.parse(c.hgetall(keys.JOB_RUNTIME)) for c in (together, one_by_one))
    assert {k: (v.per_bucket, v.count) for k, v in ours.items()} == {
        k: (v.per_bucket, v.count) for k, v in expected.items()
    }
    assert {k: v.total for k, v in ours.items()} == pytest.approx({k: v.total for k, v in expected.items()})
