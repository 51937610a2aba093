"""Claims, settling and the abandoned-job sweep on fakeredis (real processes: tests/reliability)."""

from __future__ import annotations

import fakeredis
import pytest
import redis
from rq import Queue, Retry
from rq.job import Job, JobStatus

from core import keys
from core.durability import warnings_for
from core.meta import ATTEMPT
from core.queues import SERIALIZER
from core.rqadapter.claims import Claims
from tests.support.replies import text
from workers.horse import horse_death
from workers.liveness import Timing
from workers.recovery import WORKER_DIED, Recovery

TIMING = Timing(6)


def enqueue(conn: fakeredis.FakeRedis, queue: str = "default", retries: int = 0) -> Job:
    return Queue(queue, connection=conn, serializer=SERIALIZER).enqueue_call(
        "jobs.builtin.demo.noop", retry=Retry(max=retries, interval=[1] * retries) if retries else None
    )


def recovery(conn: fakeredis.FakeRedis, name: str = "sweeper") -> Recovery:
    return Recovery(conn, name, TIMING, serializer=SERIALIZER)


@pytest.fixture
def conn() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def test_claim_takes_the_highest_priority_job_and_records_the_owner(conn: fakeredis.FakeRedis) -> None:
    low, default, high = enqueue(conn, "low"), enqueue(conn, "default"), enqueue(conn, "high")
    claims = Claims(conn)
    queue_keys = [f"rq:queue:{name}" for name in ("high", "default", "low")]
    taken = [claims.claim(queue_keys, "w1") for _ in range(4)]
    assert taken == [("rq:queue:high", high.id), ("rq:queue:default", default.id), ("rq:queue:low", low.id), None]
    assert claims.all() == {high.id: "w1", default.id: "w1", low.id: "w1"}


def test_claim_many_takes_up_to_count_in_priority_order_each_claimed(conn: fakeredis.FakeRedis) -> None:
    lows = [enqueue(conn, "low") for _ in range(3)]
    highs = [enqueue(conn, "high") for _ in range(2)]
    claims = Claims(conn)
    queue_keys = [f"rq:queue:{name}" for name in ("high", "default", "low")]
    first = claims.claim_many(queue_keys, "w1", 3)
    assert first == [("rq:queue:high", highs[0].id), ("rq:queue:high", highs[1].id), ("rq:queue:low", lows[0].id)]
    assert claims.claim_many(queue_keys, "w2", 5) == [("rq:queue:low", job.id) for job in lows[1:]]
    assert claims.claim_many(queue_keys, "w2", 5) == []
    assert claims.held_by("w1") == [job.id for job in (*highs, lows[0])]
    assert sorted(claims.held_by("w2")) == sorted(job.id for job in lows[1:])


def test_release_in_the_outcomes_transaction_frees_only_this_workers_claims(conn: fakeredis.FakeRedis) -> None:
    job, other, third = enqueue(conn), enqueue(conn), enqueue(conn)
    claims = Claims(conn)
    claims.claim_many(["rq:queue:default"], "w1", 2)
    claims.claim_many(["rq:queue:default"], "w2", 1)
    with conn.pipeline() as pipe:
        pipe.hset(job.key, "status", JobStatus.FINISHED.value)
        pipe.hset(third.key, "status", JobStatus.FINISHED.value)
        Claims.release_in(pipe, [job.id, third.id], "w1")  # `third` is w2's (taken over): left alone
        assert pipe.execute()[2:] == [1]
    assert claims.all() == {other.id: "w1", third.id: "w2"}


def test_settle_releases_only_recorded_outcomes(conn: fakeredis.FakeRedis) -> None:
    job = enqueue(conn)
    claims = Claims(conn)
    claims.claim(["rq:queue:default"], "w1")
    assert claims.settle(job.key, "rq:queue:default", job.id, "w2") == 0  # not its claim
    assert claims.settle(job.key, "rq:queue:default", job.id, "w1") == -1  # queued, in no queue: lost
    job.set_status(JobStatus.STARTED)
    assert claims.settle(job.key, "rq:queue:default", job.id, "w1") == -1
    job.set_status(JobStatus.FINISHED)
    assert claims.settle(job.key, "rq:queue:default", job.id, "w1") == 1
    assert claims.all() == {}


def start(conn: fakeredis.FakeRedis, job: Job, owner: str) -> None:
    Claims(conn).claim(["rq:queue:default"], owner)
    job.meta[ATTEMPT] = 1
    job.save_meta()
    job.set_status(JobStatus.STARTED)


def test_sweep_retries_or_fails_started_jobs_of_dead_workers_and_spares_live_ones(conn: fakeredis.FakeRedis) -> None:
    retried, failed, alive = enqueue(conn, retries=2), enqueue(conn), enqueue(conn)
    start(conn, retried, "dead1")
    start(conn, failed, "dead2")
    start(conn, alive, "live")
    recovery(conn, "live").beat(force=True)

    outcomes = recovery(conn).sweep()

    assert outcomes == {retried.id: "retried", failed.id: "failed"}
    retried.refresh()
    assert retried.get_status() == JobStatus.SCHEDULED and retried.retries_left == 1
    assert retried.meta["messages"][-1]["message"] == f"attempt 1 lost: {WORKER_DIED}; retrying (1 retries left)"
    failed.refresh()
    assert failed.get_status() == JobStatus.FAILED
    assert failed.latest_result().exc_string == f"AbandonedJobError: {WORKER_DIED}"  # type: ignore[union-attr]
    assert failed.id in Queue("default", connection=conn).failed_job_registry
    assert Claims(conn).all() == {alive.id: "live"}


def test_sweep_puts_a_claimed_unstarted_job_back_at_the_front(conn: fakeredis.FakeRedis) -> None:
    first, second = enqueue(conn), enqueue(conn)
    Claims(conn).claim(["rq:queue:default"], "dead")
    assert recovery(conn).sweep() == {first.id: "requeued"}
    assert [text(item) for item in conn.lrange("rq:queue:default", 0, -1)] == [first.id, second.id]
    first.refresh()
    assert first.retries_left is None and first.meta["messages"][0]["message"] == f"requeued: {WORKER_DIED}"


def test_one_sweeper_at_a_time_and_none_right_after_a_redis_error(conn: fakeredis.FakeRedis) -> None:
    job = enqueue(conn)
    Claims(conn).claim(["rq:queue:default"], "dead")
    shaken = recovery(conn, "shaken")
    shaken.note_redis_error()
    assert shaken.sweep() == {}  # its own link just failed: others may not have re-beaten yet
    conn.set(keys.RECOVERY_LOCK, "other")
    assert recovery(conn).sweep() == {}
    conn.delete(keys.RECOVERY_LOCK)
    assert recovery(conn).sweep() == {job.id: "requeued"}


def test_a_takeover_whose_recovery_redis_refused_is_settled_by_the_next_sweep(
    conn: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = enqueue(conn, retries=1)
    start(conn, job, "dead")
    sweeper = recovery(conn)

    def refused(*args: object) -> None:
        raise redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'")

    with monkeypatch.context() as patched:  # the takeover lands, then Redis is full for the recovery itself
        patched.setattr(Recovery, "_lose_attempt", refused)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            sweeper.sweep()
    assert Claims(conn).all() == {job.id: "sweeper"}  # no other sweeper touches a live worker's claim
    conn.delete(keys.RECOVERY_LOCK)

    assert sweeper.sweep() == {job.id: "retried"}
    job.refresh()
    assert job.get_status() == JobStatus.SCHEDULED and job.retries_left == 0
    assert Claims(conn).all() == {}


def test_interrupted_job_is_requeued_without_spending_a_retry(conn: fakeredis.FakeRedis) -> None:
    job = enqueue(conn, retries=1)
    start(conn, job, "me")
    assert recovery(conn, "me").requeue_interrupted(job.id, "shutting down") == "requeued"
    job.refresh()
    assert job.get_status() == JobStatus.QUEUED and job.retries_left == 1
    assert conn.lrange("rq:queue:default", 0, -1) == [job.id.encode()]
    assert job.meta["messages"][-1]["message"] == "attempt 1 interrupted: shutting down"


def test_a_worker_settles_nothing_of_a_job_taken_over_from_it(conn: fakeredis.FakeRedis) -> None:
    """Presumed dead, its claim taken over and the job running elsewhere: its own late requeue is skipped."""
    job = enqueue(conn, retries=1)
    start(conn, job, "me")
    assert Claims(conn).take_over(job.id, "me", "other")
    assert recovery(conn, "me").requeue_interrupted(job.id, "shutting down") == "skipped"
    job.refresh()
    assert job.get_status() == JobStatus.STARTED and conn.llen("rq:queue:default") == 0
    assert Claims(conn).all() == {job.id: "other"}


def test_timing_keeps_the_bound() -> None:
    timing = Timing(60)
    assert timing.liveness_ttl + timing.sweep_interval < 60
    assert timing.beat_interval * 3 <= timing.liveness_ttl


def test_horse_death_names_the_signal_or_the_timeout() -> None:
    assert horse_death(9, timed_out=False, timeout=5)[0] == (
        "WorkHorseKilledError: work horse killed by SIGKILL (signal 9) (out of memory, or killed from outside)"
    )
    assert horse_death(15, timed_out=False, timeout=5)[1] == "work horse killed by SIGTERM (signal 15)"
    assert horse_death(3 << 8, timed_out=False, timeout=5)[1] == "work horse exited with code 3 before the job ended"
    assert horse_death(9, timed_out=True, timeout=5)[0].startswith(
        "JobTimeoutException: Task exceeded maximum timeout value (5 seconds)"
    )


def test_durability_warnings() -> None:
    assert warnings_for({"appendonly": "yes", "save": "", "maxmemory-policy": "noeviction"}) == []
    assert "no persistence" in warnings_for({"appendonly": "no", "save": ""})[0]
    assert "snapshots only" in warnings_for({"appendonly": "no", "save": "3600 1"})[0]
    assert "may evict" in warnings_for({"appendonly": "yes", "maxmemory-policy": "allkeys-lru"})[0]
    assert "could not verify" in warnings_for({})[0]
