"""Outcomes only for jobs still held, and the dead idle workers the sweep forgets, on fakeredis."""

from __future__ import annotations

import fakeredis
import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.worker import Worker

from core.queues import SERIALIZER
from core.rqadapter import bookkeeping
from core.rqadapter.claims import Claims, lost_key
from tests.support.replies import text
from workers.liveness import SERVICE_WORKERS, Timing
from workers.recovery import Recovery

TIMING = Timing(6)


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


def client(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=server)


def claimed(conn: fakeredis.FakeRedis, owner: str, count: int) -> list[Job]:
    queue = Queue("default", connection=conn, serializer=SERIALIZER)
    jobs = [queue.enqueue_call("jobs.builtin.demo.noop") for _ in range(count)]
    Claims(conn).claim_many(["rq:queue:default"], owner, count)
    return jobs


def test_only_a_real_takeover_bumps_the_previous_owners_lost_counter(server: fakeredis.FakeServer) -> None:
    conn = client(server)
    (job,) = claimed(conn, "w1", 1)
    claims = Claims(conn)
    assert claims.take_over(job.id, "w1", "w1")  # still its own: no takeover
    assert conn.get(lost_key("w1")) is None
    assert not claims.take_over(job.id, "w2", "w3")  # not w2's
    assert claims.take_over(job.id, "w1", "w2")
    assert conn.get(lost_key("w1")) == b"1" and 0 < conn.ttl(lost_key("w1")) <= 3600
    assert claims.holds(job.id, "w2") and not claims.holds(job.id, "w1")


def test_the_batch_check_names_the_jobs_taken_over_before_it(server: fakeredis.FakeServer) -> None:
    conn = client(server)
    kept, taken = claimed(conn, "w1", 2)
    Claims(conn).take_over(taken.id, "w1", "w2")
    with conn.pipeline() as pipe:
        assert bookkeeping.watch_dependents(pipe, [kept, taken], "w1") == (False, {taken.id})
        assert not pipe.watching


def test_a_takeover_after_the_batch_check_fails_the_batchs_exec(server: fakeredis.FakeServer) -> None:
    conn, sweeper = client(server), client(server)
    kept, other = claimed(conn, "w1", 2)
    with conn.pipeline() as pipe:
        assert bookkeeping.watch_dependents(pipe, [kept], "w1") == (False, set())
        assert Claims(sweeper).take_over(other.id, "w1", "w2")  # any claim of w1: the EXEC must not pass
        pipe.multi()
        pipe.hset(kept.key, "status", "finished")
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert conn.hget(kept.key, "status") == b"queued"


def test_the_batch_check_counts_existing_dependents(server: fakeredis.FakeServer) -> None:
    conn = client(server)
    (job,) = claimed(conn, "w1", 1)
    conn.sadd(job.dependents_key, "dependent")
    with conn.pipeline() as pipe:
        assert bookkeeping.watch_dependents(pipe, [job], "w1") == (True, set())


def register(conn: fakeredis.FakeRedis, name: str) -> str:
    worker = Worker(["default"], connection=conn, name=name, serializer=SERIALIZER)
    worker.register_birth()
    key: str = worker.key
    return key


def test_the_sweep_forgets_the_services_dead_idle_workers_only(server: fakeredis.FakeServer) -> None:
    conn = client(server)
    now = conn.time()[0]
    dead, newborn, foreign, alive = (register(conn, name) for name in ("dead", "newborn", "foreign", "alive"))
    Recovery(conn, "alive", TIMING).beat(force=True)
    Recovery(conn, "alive", TIMING).enlist()
    conn.hset(SERVICE_WORKERS, mapping={"dead": now - 60, "newborn": now, "alive": now - 60})
    # "foreign" is a plain `rq worker` on the same server: no liveness key, never enlisted.

    Recovery(conn, "sweeper", TIMING).sweep()

    workers = {text(key) for key in conn.smembers("rq:workers")}
    assert workers == {newborn, foreign, alive}
    assert not conn.exists(dead) and not conn.sismember("rq:workers:default", dead)
    assert {text(name) for name in conn.hkeys(SERVICE_WORKERS)} == {"newborn", "alive"}
