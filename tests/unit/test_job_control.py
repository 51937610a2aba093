"""Job control in-process (fakeredis, SimpleWorker): input rules, cancel, retry, idempotency, scheduling math."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from starlette.testclient import TestClient

from app.errors import ValidationFailedError
from app.scheduling import due_time
from core import keys
from core.meta import ATTEMPT
from core.queues import SERIALIZER
from jobs.control import cancel_dependents, cancel_requested
from tests.factories import noop_job, steps_job
from tests.unit.test_api_validation import assert_problem
from workers.job import RegisteredJob

NOW = datetime(2026, 11, 23, 10, 0, 0, 250_000, tzinfo=UTC)


def run_all(connection: fakeredis.FakeRedis) -> None:
    queues = [
        Queue(name, connection=connection, serializer=SERIALIZER, job_class=RegisteredJob) for name in ("default",)
    ]
    SimpleWorker(queues, connection=connection, serializer=SERIALIZER, job_class=RegisteredJob).work(burst=True)


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        (noop_job(delay=-1), ["delay"]),
        (noop_job(delay="soon"), ["delay"]),
        (noop_job(delay=True), ["delay"]),
        (noop_job(delay=30 * 86400 + 1), ["delay"]),
        (noop_job(run_at="tomorrow"), ["run_at"]),
        (noop_job(run_at="2026-13-01T00:00:00Z"), ["run_at"]),
        (noop_job(run_at="2026-11-23T10:00:00"), ["run_at"]),
        (noop_job(run_at=1700000000), ["run_at"]),
        (noop_job(run_at="2999-01-01T00:00:00Z"), ["run_at"]),
        (noop_job(delay=5, run_at="2026-11-23T10:00:00Z"), ["run_at"]),
        (noop_job(depends_on="abc"), ["depends_on"]),
        (noop_job(depends_on=[1]), ["depends_on", 0]),
        (noop_job(depends_on=[""]), ["depends_on", 0]),
        (noop_job(depends_on=["x"] * 101), ["depends_on"]),
        (noop_job(depends_on=["x"], delay=5), ["depends_on"]),
        (noop_job(depends_on=["no-such-job"]), ["depends_on", 0]),
    ],
)
def test_bad_control_fields_are_422_naming_the_field(client: TestClient, payload: Any, loc: list[Any]) -> None:
    assert_problem(client.post("/jobs", json=payload), 422, loc)


@pytest.mark.parametrize("key", [b"", b"k" * 256, b"tab\there", "caf\u00e9".encode()])
def test_bad_idempotency_keys_are_422_naming_the_header(client: TestClient, key: bytes) -> None:
    response = client.post("/jobs", json=noop_job(), headers={b"Idempotency-Key": key})
    assert_problem(response, 422, ["header", "Idempotency-Key"])


def test_due_time_rounds_up_to_whole_seconds_and_runs_past_times_now() -> None:
    assert due_time(2, None, 60, NOW) == datetime(2026, 11, 23, 10, 0, 3, tzinfo=UTC)
    assert due_time(1.75, None, 60, NOW) == datetime(2026, 11, 23, 10, 0, 2, tzinfo=UTC)
    assert due_time(None, "2026-11-23T12:00:05+02:00", 60, NOW) == datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC)
    assert due_time(None, "2026-11-23T09:00:00Z", 60, NOW) is None
    assert due_time(0, None, 60, NOW) is None
    assert due_time(None, None, 60, NOW) is None
    with pytest.raises(ValidationFailedError):
        due_time(61, None, 60, NOW)


def test_scheduled_job_waits_in_rqs_registry_at_the_rounded_second(
    client: TestClient, fake_redis: fakeredis.FakeRedis
) -> None:
    before = datetime.now(UTC)
    job = client.post("/jobs", json=noop_job(delay=10.2)).json()
    assert job["status"] == "scheduled"
    score = fake_redis.zscore("rq:scheduled:default", job["id"])
    assert score is not None and score == int(score) and score >= (before + timedelta(seconds=10.2)).timestamp()
    assert fake_redis.llen("rq:queue:default") == 0


def test_idempotent_submission(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    headers = {"Idempotency-Key": "order-1"}
    first = client.post("/jobs", json=steps_job(), headers=headers)
    again = client.post("/jobs", json=steps_job(), headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.headers["location"] == first.headers["location"]
    assert fake_redis.llen("rq:queue:default") == 1
    assert_problem(client.post("/jobs", json=steps_job(steps=4), headers=headers), 422, ["header", "Idempotency-Key"])
    # the same key with a scheduled or dependent job follows the same rules
    parent = first.json()["id"]
    child = client.post("/jobs", json=noop_job(depends_on=[parent]), headers={"Idempotency-Key": "child"})
    child_again = client.post("/jobs", json=noop_job(depends_on=[parent]), headers={"Idempotency-Key": "child"})
    assert child.status_code == 202 and child_again.status_code == 200
    assert child.json()["id"] == child_again.json()["id"] and child.json()["status"] == "deferred"
    ttl = fake_redis.ttl(next(iter(fake_redis.scan_iter("jobsvc:idempotency:anonymous:*"))))
    assert 0 < ttl <= 86400
    assert client.post("/jobs", json=noop_job(), headers={"Idempotency-Key": "~" * 255}).status_code == 202


def test_a_dependent_replay_returns_its_job_even_once_the_parent_failed(
    client: TestClient, fake_redis: fakeredis.FakeRedis
) -> None:
    parent = client.post("/jobs", json=steps_job(steps=1, args={"fail_at": 1})).json()["id"]
    headers = {"Idempotency-Key": "child-of-a-failure"}
    child = client.post("/jobs", json=noop_job(depends_on=[parent]), headers=headers)
    assert child.status_code == 202 and child.json()["status"] == "deferred"
    run_all(fake_redis)
    assert client.get(f"/jobs/{parent}").json()["status"] == "failed"
    replay = client.post("/jobs", json=noop_job(depends_on=[parent]), headers=headers)  # the claim answers first
    assert replay.status_code == 200 and replay.json()["id"] == child.json()["id"]
    assert_problem(client.post("/jobs", json=noop_job(depends_on=[parent])), 422, ["depends_on", 0])
    finished = client.post("/jobs", json=noop_job()).json()["id"]
    run_all(fake_redis)
    queued = client.post("/jobs", json=noop_job(depends_on=[finished])).json()
    assert queued["status"] == "queued" and fake_redis.lrange("rq:queue:default", 0, -1) == [queued["id"].encode()]


def test_idempotency_keys_are_scoped_per_owner() -> None:
    assert keys.idempotency("anonymous", "d") != keys.idempotency("team-a", "d")


def test_cancel_a_queued_job_then_409_and_unknown_404(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    job = client.post("/jobs", json=noop_job()).json()
    response = client.delete(f"/jobs/{job['id']}")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert fake_redis.llen("rq:queue:default") == 0
    assert 0 < fake_redis.ttl(f"rq:job:{job['id']}") <= 7 * 86400
    assert client.get("/stats").json()["queues"]["default"]["canceled"] == 1
    assert_problem(client.delete(f"/jobs/{job['id']}"), 409)
    assert_problem(client.delete("/jobs/nope"), 404)


def test_retry_a_failed_job_and_refuse_others(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    job = client.post("/jobs", json=steps_job(steps=1, args={"fail_at": 1})).json()
    assert_problem(client.post(f"/jobs/{job['id']}/retry"), 409)  # still queued
    run_all(fake_redis)
    assert client.get(f"/jobs/{job['id']}").json()["status"] == "failed"
    assert fake_redis.ttl(f"rq:job:{job['id']}") > 0

    response = client.post(f"/jobs/{job['id']}/retry")
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert fake_redis.ttl(f"rq:job:{job['id']}") == -1, "a requeued job no longer expires"
    assert fake_redis.zcard("rq:failed:default") == 0 and fake_redis.llen("rq:queue:default") == 1
    run_all(fake_redis)
    again = client.get(f"/jobs/{job['id']}").json()
    assert again["status"] == "failed" and "attempt 2" in again["error"]
    assert_problem(client.post("/jobs/nope/retry"), 404)


def test_cancel_dependents_cancels_the_whole_deferred_subtree(fake_redis: fakeredis.FakeRedis) -> None:
    queue = Queue("default", connection=fake_redis, serializer=SERIALIZER)
    parent = queue.enqueue_call("jobs.builtin.demo.noop")
    child = queue.enqueue_call("jobs.builtin.demo.noop", depends_on=parent)
    grandchild = queue.enqueue_call("jobs.builtin.demo.noop", depends_on=child)
    other = Queue("low", connection=fake_redis, serializer=SERIALIZER).enqueue_call(
        "jobs.builtin.demo.noop", depends_on=parent
    )
    assert child.get_status() == "deferred"
    assert sorted(cancel_dependents(fake_redis, parent.id, 60)) == sorted([child.id, grandchild.id, other.id])
    for job in (child, grandchild, other):
        fetched = Job.fetch(job.id, connection=fake_redis, serializer=SERIALIZER)
        assert fetched.get_status() == "canceled" and 0 < fake_redis.ttl(fetched.key) <= 60
    assert fake_redis.zcard("rq:deferred:default") == 0 and fake_redis.zcard("rq:canceled:low") == 1
    assert parent.get_status() == "queued"
    assert cancel_dependents(fake_redis, parent.id, 60) == []


def test_cancel_requested_is_false_outside_a_worker() -> None:
    assert cancel_requested() is False


def test_a_stopped_job_retried_by_hand_asks_afresh(
    fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that saw its stop flag does not make the job's next run (a retry by hand) stop too."""
    job = Queue("default", connection=fake_redis, serializer=SERIALIZER).enqueue_call("jobs.builtin.demo.noop")
    monkeypatch.setattr("jobs.control.get_current_job", lambda: job)
    job.meta[ATTEMPT] = 1
    fake_redis.set(keys.stop_requested(job.id), 1)
    assert cancel_requested() is True
    fake_redis.delete(keys.stop_requested(job.id))  # what a retry does before the job runs again
    assert cancel_requested() is True  # the same run keeps its answer
    job.meta[ATTEMPT] = 2
    assert cancel_requested() is False
