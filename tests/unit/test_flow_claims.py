"""The flow-control claim script on FakeRedis (Lua via lupa): order, turns, limits, stale entries, safety net."""

from __future__ import annotations

import fakeredis
import pytest
from rq import Queue
from rq.job import Job

from core import keys
from core.flow import keys as flow_keys
from core.flow.limits import Limits, Rate
from core.queues import SERIALIZER
from core.rqadapter.claims import Claims
from core.rqadapter.enqueue import enqueue_writes
from core.submitting import initial_meta as initial

QUEUES = ("high", "default", "low")


def submit(redis: fakeredis.FakeRedis, job_type: str, owner: str = "alice", queue: str = "default") -> str:
    """A job pushed as the service's submission pushes it (RQ's writes and the fair index's)."""
    q = Queue(queue, connection=redis, serializer=SERIALIZER)
    job = Job.create("jobs.builtin.demo.noop", connection=redis, serializer=SERIALIZER, meta=initial(job_type, owner))
    with redis.pipeline() as pipe:
        for command in enqueue_writes(redis, q, job):
            pipe.execute_command(*command)  # type: ignore[no-untyped-call]
        pipe.execute()
    return job.id


def queue_keys() -> list[str]:
    return [f"rq:queue:{name}" for name in QUEUES]


def take(claims: Claims, count: int = 1, worker: str = "w1") -> list[str]:
    return [job_id for _, job_id in claims.claim_many(queue_keys(), worker, count)]


def test_fifo_for_one_owner_and_priorities_first(fake_redis: fakeredis.FakeRedis) -> None:
    first, second = submit(fake_redis, "demo.noop"), submit(fake_redis, "demo.noop")
    urgent = submit(fake_redis, "demo.noop", queue="high")
    claims = Claims(fake_redis)
    assert take(claims, 5) == [urgent, first, second]
    assert fake_redis.llen("rq:queue:default") == 0
    assert Claims(fake_redis).all() == {urgent: "w1", first: "w1", second: "w1"}
    assert not fake_redis.keys(f"{flow_keys.FLOW}:*"), "a drained index leaves no keys"


def test_owners_take_turns(fake_redis: fakeredis.FakeRedis) -> None:
    a_jobs = [submit(fake_redis, "demo.noop", "a") for _ in range(5)]
    b_jobs = [submit(fake_redis, "demo.noop", "b") for _ in range(2)]
    taken = take(Claims(fake_redis), 4)
    assert taken[:2] == [a_jobs[0], b_jobs[0]] or taken[:2] == [b_jobs[0], a_jobs[0]]
    assert set(taken) == {a_jobs[0], a_jobs[1], b_jobs[0], b_jobs[1]}


def test_without_fair_turns_the_oldest_goes_first(fake_redis: fakeredis.FakeRedis) -> None:
    a_jobs = [submit(fake_redis, "demo.noop", "a") for _ in range(3)]
    b_job = submit(fake_redis, "demo.noop", "b")
    assert take(Claims(fake_redis, Limits(fair=False)), 4) == [*a_jobs, b_job]


def test_type_concurrency_holds_back_without_blocking_the_rest(fake_redis: fakeredis.FakeRedis) -> None:
    sleeps = [submit(fake_redis, "demo.sleep") for _ in range(3)]
    noop = submit(fake_redis, "demo.noop")
    claims = Claims(fake_redis, Limits(concurrency={"demo.sleep": 2}))
    assert take(claims, 10) == [*sleeps[:2], noop]
    assert fake_redis.hlen(flow_keys.running_type("demo.sleep")) == 2
    assert take(claims, 10) == []
    assert fake_redis.hget(flow_keys.REFUSED, "type:demo.sleep") is not None
    claims.release_in(fake_redis, [sleeps[0]], "w1")
    assert fake_redis.hlen(flow_keys.running_type("demo.sleep")) == 1
    assert take(claims, 10) == [sleeps[2]]


def test_key_concurrency(fake_redis: fakeredis.FakeRedis) -> None:
    a_jobs = [submit(fake_redis, "demo.noop", "a") for _ in range(3)]
    b_job = submit(fake_redis, "demo.noop", "b")
    claims = Claims(fake_redis, Limits(key_concurrency=1))
    assert sorted(take(claims, 10)) == sorted([a_jobs[0], b_job])
    claims.drop(a_jobs[0])
    assert take(claims, 10) == [a_jobs[1]]
    assert fake_redis.hlen(flow_keys.running_key("a")) == 1


def test_rate_limit_counts_starts_in_the_window(fake_redis: fakeredis.FakeRedis) -> None:
    for _ in range(5):
        submit(fake_redis, "demo.noop")
    claims = Claims(fake_redis, Limits(rates={"demo.noop": Rate(3, "hour")}))
    assert len(take(claims, 10)) == 3
    fake_redis.delete(keys.CLAIMS)
    assert take(claims, 10) == [], "finished jobs do not give back starts of the window"
    assert fake_redis.zcard(flow_keys.starts("demo.noop")) == 3


def test_stale_entries_are_skipped(fake_redis: fakeredis.FakeRedis) -> None:
    canceled, kept = submit(fake_redis, "demo.noop"), submit(fake_redis, "demo.noop")
    fake_redis.lrem("rq:queue:default", 1, canceled)  # RQ's cancel: out of its queue list
    assert take(Claims(fake_redis), 5) == [kept]
    assert not fake_redis.keys(f"{flow_keys.FLOW}:*")


def test_ids_pushed_without_the_index_are_adopted(fake_redis: fakeredis.FakeRedis) -> None:
    queue = Queue("default", connection=fake_redis, serializer=SERIALIZER)
    plain = queue.enqueue_call("jobs.builtin.demo.noop", meta=initial("demo.sleep", "alice"))
    indexed = submit(fake_redis, "demo.sleep", "alice")
    claims = Claims(fake_redis, Limits(concurrency={"demo.sleep": 1}))
    assert take(claims, 5) == [plain.id], "RQ's own push is claimed first (its place in RQ's list), limits apply"
    assert fake_redis.hlen(flow_keys.running_type("demo.sleep")) == 1
    claims.drop(plain.id)
    assert take(claims, 5) == [indexed]


def test_ids_of_deleted_jobs_are_still_claimed_for_the_worker_to_drop(fake_redis: fakeredis.FakeRedis) -> None:
    fake_redis.rpush("rq:queue:default", "ghost")
    assert take(Claims(fake_redis), 5) == ["ghost"]


def test_reconcile_releases_slots_without_a_claim(fake_redis: fakeredis.FakeRedis) -> None:
    job_id = submit(fake_redis, "demo.sleep")
    claims = Claims(fake_redis, Limits(concurrency={"demo.sleep": 1}))
    assert take(claims) == [job_id]
    fake_redis.hdel(keys.CLAIMS, job_id)  # a restore from a snapshot taken between two writes, say
    assert claims.reconcile(queue_keys()) == [job_id]
    assert not fake_redis.exists(flow_keys.running_type("demo.sleep"), flow_keys.HELD)


@pytest.mark.parametrize("drop", ["settle", "drop_in", "take_over"])
def test_every_way_a_claim_goes_releases_its_slots(fake_redis: fakeredis.FakeRedis, drop: str) -> None:
    job_id = submit(fake_redis, "demo.sleep")
    claims = Claims(fake_redis, Limits(concurrency={"demo.sleep": 1}, key_concurrency=3))
    assert take(claims) == [job_id]
    if drop == "settle":
        fake_redis.hset(f"rq:job:{job_id}", "status", "finished")
        assert claims.settle(f"rq:job:{job_id}", "rq:queue:default", job_id, "w1") == 1
    elif drop == "drop_in":
        with fake_redis.pipeline() as pipe:
            Claims.drop_in(pipe, job_id)
            pipe.execute()
    else:
        assert claims.take_over(job_id, "w1", "w2")
        assert fake_redis.hlen(flow_keys.running_type("demo.sleep")) == 1, "a takeover keeps the slot"
        claims.drop(job_id)
    assert not fake_redis.exists(flow_keys.running_type("demo.sleep"), flow_keys.running_key("alice"), flow_keys.HELD)


def test_reconcile_indexes_ids_deep_in_rq_lists(fake_redis: fakeredis.FakeRedis) -> None:
    sleeps = [submit(fake_redis, "demo.sleep") for _ in range(30)]
    queue = Queue("default", connection=fake_redis, serializer=SERIALIZER)
    plain = queue.enqueue_call("jobs.builtin.demo.noop", meta=initial("demo.noop", "alice"))
    sleeps += [submit(fake_redis, "demo.sleep") for _ in range(30)]  # now deep in RQ's list
    claims = Claims(fake_redis, Limits(concurrency={"demo.sleep": 1}))
    assert take(claims, 5) == [sleeps[0]], "beyond the claim's look at the head: not seen yet"
    claims.reconcile(queue_keys())
    assert take(claims, 5) == [plain.id]


def test_an_emptied_queue_leaves_no_index(fake_redis: fakeredis.FakeRedis) -> None:
    for owner in ("a", "b"):
        submit(fake_redis, "demo.noop", owner)
    fake_redis.delete("rq:queue:default")  # RQ's Queue.empty(), say
    assert take(Claims(fake_redis), 5) == []
    assert not fake_redis.keys(f"{flow_keys.FLOW}:*")


def test_ids_pushed_at_the_tail_without_the_index_are_adopted_at_once(fake_redis: fakeredis.FakeRedis) -> None:
    sleeps = [submit(fake_redis, "demo.sleep") for _ in range(30)]
    queue = Queue("default", connection=fake_redis, serializer=SERIALIZER)
    retried = queue.enqueue_call("jobs.builtin.demo.noop", meta=initial("demo.noop", "alice"))  # RQ's own push
    claims = Claims(fake_redis, Limits(concurrency={"demo.sleep": 1}))
    assert take(claims, 5) == [sleeps[0], retried.id]


def test_ids_pushed_by_rq_alone_keep_rq_order(fake_redis: fakeredis.FakeRedis) -> None:
    queue = Queue("default", connection=fake_redis, serializer=SERIALIZER)
    ids = [queue.enqueue_call("jobs.builtin.demo.noop").id for _ in range(40)]
    claims = Claims(fake_redis)
    taken = take(claims, 3)
    ids.insert(3, queue.enqueue_call("jobs.builtin.demo.noop", at_front=True).id)
    while batch := take(claims, 3):
        taken += batch
    assert taken == ids
