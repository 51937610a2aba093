"""`workers.batch` leaves Redis as RQ's own per-job bookkeeping does (the ConcurrentWorker's batches).

Each case runs a job's start and success twice on fresh servers: once through RQ 3.0.0's own
calls (what `ConcurrentWorker` did before, and what `rq worker` does), once through `workers.batch`,
then compares every key: type, TTL, and value (times and the random execution id normalised).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest
from rq import Queue
from rq.executions import Execution
from rq.job import Job
from rq.results import Result
from rq.utils import current_timestamp, now

from core import events, keys, runtimes
from core.meta import ATTEMPT
from core.queues import SERIALIZER
from workers import batch
from workers.job import RegisteredJob

WORKER = "w1"
HEARTBEAT_TTL = 70
FROZEN = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z|^\d{10}\.\d+$")


@pytest.fixture(autouse=True)
def frozen_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registry scores come from `rq.utils.current_timestamp()`: the same second on both sides."""
    monkeypatch.setattr("rq.utils.now", lambda: FROZEN)


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


def start_as_rq(conn: fakeredis.FakeRedis, job: RegisteredJob) -> Execution:
    with conn.pipeline() as pipe:
        execution = Execution.create(job, HEARTBEAT_TTL, pipeline=pipe, worker_name=WORKER)
        job.heartbeat(now(), HEARTBEAT_TTL, pipeline=pipe)
        Job.prepare_for_execution(job, WORKER, pipeline=pipe)
        job.meta[ATTEMPT] = 1
        pipe.hset(job.key, "meta", job._serialize_meta())
        events.add_status(pipe, job, "started")
        pipe.persist(job.key)
        pipe.execute()
    return execution


def succeed_as_rq(conn: fakeredis.FakeRedis, job: RegisteredJob, execution: Execution, value: Any, ttl: int) -> None:
    job.ended_at = now()
    job._result = value
    with conn.pipeline() as pipe:
        job._handle_success(
            ttl,
            pipeline=pipe,
            worker_name=WORKER,
            execution_id=execution.id,
            execution_started_at=execution.created_at,
            execution_ended_at=job.ended_at,
        )
        job.cleanup(ttl, pipeline=pipe, remove_from_queue=False)
        execution.delete(job=job, pipeline=pipe)
        pipe.execute()


def start_batched(conn: fakeredis.FakeRedis, job: RegisteredJob, *, record: bool = True) -> Execution:
    """The worker's start; `record=False`: with the started registry entry alone (a run that ends before the
    rest of its execution is due)."""
    execution = batch.new_execution(job, WORKER)
    with conn.pipeline() as pipe:
        batch.register_start(pipe, execution, HEARTBEAT_TTL, current_timestamp())
        if record:
            batch.record_execution(pipe, execution, HEARTBEAT_TTL, current_timestamp())
        job.prepare_for_execution(WORKER, pipeline=pipe)
        pipe.persist(job.key)
        if record:
            batch.expire_worker_executions(pipe, [execution], [HEARTBEAT_TTL])
        pipe.execute()
    return execution


def succeed_batched(
    conn: fakeredis.FakeRedis, job: RegisteredJob, execution: Execution, value: Any, ttl: int, *, recorded: bool = True
) -> list[str]:
    """The success as the worker writes it; returns the commands it sent."""
    job.ended_at = now()
    with conn.pipeline() as pipe:
        batch.record_success(pipe, job, execution, value, ttl, WORKER, current_timestamp(), recorded=recorded)
        sent = [str(args[0]) for args, _ in pipe.command_stack]
        pipe.execute()
    return sent


def snapshot(conn: fakeredis.FakeRedis, execution: Execution) -> dict[str, tuple[str, int, Any]]:
    def norm(raw: Any) -> Any:
        if isinstance(raw, float):
            return raw
        try:
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError:
            return raw  # compressed job data: compared as bytes
        return _TIME.sub("<time>", text.replace(execution.id, "<execution>"))

    state: dict[str, tuple[str, int, Any]] = {}
    for raw_key in conn.keys("*"):
        kind = conn.type(raw_key).decode()
        value: Any
        if kind == "hash":
            value = {norm(f): norm(v) for f, v in conn.hgetall(raw_key).items()}
        elif kind == "zset":
            value = {norm(m): score for m, score in conn.zrange(raw_key, 0, -1, withscores=True)}
        elif kind == "set":
            value = sorted(norm(m) for m in conn.smembers(raw_key))
        elif kind == "stream":
            value = [{norm(f): norm(v) for f, v in fields.items()} for _, fields in conn.xrange(raw_key)]
        else:
            value = [norm(item) for item in conn.lrange(raw_key, 0, -1)]
        state[norm(raw_key)] = (kind, conn.ttl(raw_key), value)
    return state


def assert_same(ours: dict[str, tuple[str, int, Any]], rqs: dict[str, tuple[str, int, Any]]) -> None:
    assert sorted(ours) == sorted(rqs)
    for key, (kind, ttl, value) in rqs.items():
        our_kind, our_ttl, our_value = ours[key]
        assert (key, our_kind, our_value) == (key, kind, value)
        assert abs(our_ttl - ttl) <= 1, (key, our_ttl, ttl)


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
def test_batched_start_and_success_leave_what_rq_leaves(value: Any, result_ttl: int, options: dict[str, Any]) -> None:
    rq_conn, our_conn = fakeredis.FakeRedis(), fakeredis.FakeRedis()
    rq_job, our_job = queued_job(rq_conn, **options), queued_job(our_conn, **options)
    rq_execution, our_execution = start_as_rq(rq_conn, rq_job), start_batched(our_conn, our_job)
    assert_same(snapshot(our_conn, our_execution), snapshot(rq_conn, rq_execution))
    succeed_as_rq(rq_conn, rq_job, rq_execution, value, result_ttl)
    succeed_batched(our_conn, our_job, our_execution, value, result_ttl)
    assert_same(snapshot(our_conn, our_execution), snapshot(rq_conn, rq_execution))

    # And RQ reads it back as its own.
    job = Job.fetch("job-1", connection=our_conn, serializer=SERIALIZER)
    assert job.get_status() == "finished" and job.ended_at is not None and job.worker_name == WORKER
    result = Result.fetch_latest(job, serializer=SERIALIZER)
    assert result is not None and result.type == Result.Type.SUCCESSFUL
    assert result.execution_id == our_execution.id
    expected = "Unserializable return value" if isinstance(value, set) else value
    assert job.return_value() == expected
    assert job.id in Queue("default", connection=our_conn).finished_job_registry


@CASES
def test_a_run_that_ends_before_its_execution_is_written_ends_as_rqs_does(
    value: Any, result_ttl: int, options: dict[str, Any]
) -> None:
    """A job that ends within `EXECUTION_RECORD_DELAY`: of its execution only the started registry entry is
    written and deleted, and the end state is RQ's."""
    rq_conn, our_conn = fakeredis.FakeRedis(), fakeredis.FakeRedis()
    rq_job, our_job = queued_job(rq_conn, **options), queued_job(our_conn, **options)
    rq_execution, our_execution = start_as_rq(rq_conn, rq_job), start_batched(our_conn, our_job, record=False)
    started = Job.fetch("job-1", connection=our_conn, serializer=SERIALIZER)
    assert started.get_status() == "started" and started.meta[ATTEMPT] == 1 and started.worker_name == WORKER
    assert our_job.started_job_registry.get_job_and_execution_ids() == [(our_job.id, our_execution.id)]
    assert not our_conn.exists(our_execution.key) and not our_conn.exists(our_execution.worker_executions_key)
    succeed_as_rq(rq_conn, rq_job, rq_execution, value, result_ttl)
    sent = succeed_batched(our_conn, our_job, our_execution, value, result_ttl, recorded=False)
    assert sent.count("ZREM") == 1 and not {"DEL", "SREM"} & set(sent)  # the registry entry alone to delete
    assert_same(snapshot(our_conn, our_execution), snapshot(rq_conn, rq_execution))
    result = Result.fetch_latest(Job.fetch("job-1", connection=our_conn, serializer=SERIALIZER), serializer=SERIALIZER)
    assert result is not None and result.execution_id == our_execution.id


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
