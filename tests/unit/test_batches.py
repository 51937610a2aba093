"""Batches on FakeRedis: validation, counters under every member transition, the one end, cancel, scoping."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from starlette.testclient import TestClient

from app.errors import ValidationFailedError
from app.submission import parse_submission
from core import batches, events, keys
from core.meta import BATCH_ID, PROGRESS
from core.queues import SERIALIZER
from core.settings import Settings
from jobs.builtin import callbacks
from jobs.catalog import registry
from tests.factories import noop_job, steps_job
from tests.support.sse import events as sse_events
from tests.unit.conftest import bearer
from workers.announcing import AnnouncingWorker
from workers.job import RegisteredJob


class InProcessWorker(AnnouncingWorker, SimpleWorker):
    """What ServiceWorker announces, run in-process on fakeredis."""


def run_all(connection: fakeredis.FakeRedis) -> None:
    queues = [
        Queue(name, connection=connection, serializer=SERIALIZER, job_class=RegisteredJob)
        for name in ("high", "default", "low")
    ]
    InProcessWorker(queues, connection=connection, serializer=SERIALIZER, job_class=RegisteredJob).work(burst=True)


def submit(client: TestClient, jobs: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    response = client.post("/batches", json={"jobs": jobs, **options})
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/batches/{response.json()['id']}"
    body: dict[str, Any] = response.json()
    return body


def member_ids(connection: fakeredis.FakeRedis, batch_id: str) -> list[str]:
    found: list[Any] = connection.zrange(keys.batch_jobs(batch_id), 0, -1)
    return [raw.decode() for raw in found]


def move(connection: fakeredis.FakeRedis, job_id: str, status: str, progress: float | None = None) -> None:
    """Save `status` (and `progress`) as any writer would, then announce it as every writer does."""
    job = Job.fetch(job_id, connection=connection, serializer=SERIALIZER)
    if progress is not None:
        job.meta[PROGRESS] = progress
    with connection.pipeline() as pipe:
        pipe.hset(job.key, "status", status)
        pipe.hset(job.key, "meta", SERIALIZER.dumps(job.meta))
        events.add_status(pipe, job, status)
        pipe.execute()


def view(connection: fakeredis.FakeRedis, batch_id: str) -> dict[str, Any]:
    raw = batches.read(connection, batch_id)
    assert raw is not None
    return batches.batch_view(raw)


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {status: n for status, n in counts.items() if n}


# -- validation ---------------------------------------------------------------------------


def test_an_invalid_member_is_named_and_nothing_is_written(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    jobs = [noop_job(), noop_job(), noop_job(), steps_job(args={"steps": "many"})]
    response = client.post("/batches", json={"jobs": jobs})
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["errors"]] == [["jobs", 3, "args", "steps"]]
    assert fake_redis.keys("rq:*") == [] and fake_redis.keys("jobsvc:batch*") == []


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"jobs": []}, ["jobs"]),
        ({"jobs": [noop_job()] * 4}, ["jobs"]),
        ({"jobs": [{"type": "no.such"}]}, ["jobs", 0, "type"]),
        ({"jobs": [noop_job(depends_on=["x"])]}, ["jobs", 0, "depends_on"]),
        ({"jobs": ["noop"]}, ["jobs", 0]),
        ({"jobs": [noop_job()], "on_complete": {"type": "no.such"}}, ["on_complete", "type"]),
        ({"jobs": [noop_job()], "extra": 1}, ["extra"]),
    ],
)
def test_bad_batches_are_422_naming_the_field(
    make_client: Callable[..., TestClient], fake_redis: fakeredis.FakeRedis, body: dict[str, Any], loc: list[Any]
) -> None:
    client = make_client(max_batch_jobs=3)
    response = client.post("/batches", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == loc
    assert fake_redis.keys("rq:*") == []


def test_quota_counts_every_member(make_client: Callable[..., TestClient], fake_redis: fakeredis.FakeRedis) -> None:
    client = make_client(max_active_jobs=3)
    response = client.post("/batches", json={"jobs": [noop_job()] * 4})
    assert response.status_code == 429
    assert fake_redis.keys("rq:job:*") == [] and fake_redis.keys("jobsvc:batch:*") == []
    assert client.post("/batches", json={"jobs": [noop_job()] * 3}).status_code == 202


# -- counters -----------------------------------------------------------------------------


def test_counters_follow_every_member_transition(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    batch = submit(client, [noop_job(), noop_job(), noop_job(delay=60)])
    assert batch["status"] == "running" and nonzero(batch["counts"]) == {"queued": 2, "scheduled": 1}
    a, b, c = member_ids(fake_redis, batch["id"])
    scheduled = next(job_id for job_id in (a, b, c) if fake_redis.hget(f"rq:job:{job_id}", "status") == b"scheduled")
    first, second = (job_id for job_id in (a, b, c) if job_id != scheduled)

    move(fake_redis, first, "started", progress=40)
    assert nonzero(view(fake_redis, batch["id"])["counts"]) == {"queued": 1, "scheduled": 1, "started": 1}
    assert view(fake_redis, batch["id"])["progress"] == pytest.approx(40 / 3, abs=0.01)
    # a failed attempt with retries left goes back to scheduled (backoff), then queued (unannounced), then runs
    move(fake_redis, first, "scheduled")
    fake_redis.hset(f"rq:job:{first}", "status", "queued")  # RQ's scheduler does not announce
    move(fake_redis, first, "started", progress=10)
    move(fake_redis, first, "failed")
    assert nonzero(view(fake_redis, batch["id"])["counts"]) == {"queued": 1, "scheduled": 1, "failed": 1}
    # retried by hand (POST /jobs/{id}/retry does not announce): its next start moves it out of failed
    fake_redis.hset(f"rq:job:{first}", "status", "queued")
    move(fake_redis, first, "started")
    move(fake_redis, first, "started")  # the same event twice moves nothing
    assert nonzero(view(fake_redis, batch["id"])["counts"]) == {"queued": 1, "scheduled": 1, "started": 1}
    move(fake_redis, first, "finished")
    move(fake_redis, second, "started")
    move(fake_redis, second, "stopped")
    current = view(fake_redis, batch["id"])
    assert nonzero(current["counts"]) == {"scheduled": 1, "finished": 1, "stopped": 1}
    assert current["status"] == "running" and current["ended_at"] is None
    assert current["progress"] == pytest.approx((100 + 0 + 0) / 3, abs=0.01)


def test_the_last_member_end_ends_the_batch_once(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    batch = submit(client, [noop_job(), noop_job()], on_complete={"type": "demo.batch_report"})
    a, b = member_ids(fake_redis, batch["id"])
    move(fake_redis, a, "finished")
    assert view(fake_redis, batch["id"])["on_complete_job_id"] is None
    assert fake_redis.llen("rq:queue:default") == 2  # the on_complete job is staged, not queued
    move(fake_redis, b, "canceled")
    ended = view(fake_redis, batch["id"])
    assert ended["status"] == "failed" and ended["ended_at"] is not None
    on_complete = ended["on_complete_job_id"]
    assert on_complete and fake_redis.lrange("rq:queue:default", 0, -1).count(on_complete.encode()) == 1
    for _ in range(3):  # repeated end events, and a member's later change, end nothing again
        move(fake_redis, b, "canceled")
        move(fake_redis, a, "finished")
    assert fake_redis.lrange("rq:queue:default", 0, -1).count(on_complete.encode()) == 1
    assert fake_redis.hget(keys.BATCHES_ENDED, "failed") == b"1"
    assert not fake_redis.sismember(keys.BATCHES_RUNNING, batch["id"])
    assert fake_redis.ttl(keys.batch(batch["id"])) > 0
    job = client.get(f"/jobs/{on_complete}").json()
    assert job["status"] == "queued" and job["type"] == "demo.batch_report" and job["enqueued_at"] is not None


def test_all_finished_is_finished_and_mean_progress_is_100(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    batch = submit(client, [noop_job(), noop_job()])
    for job_id in member_ids(fake_redis, batch["id"]):
        move(fake_redis, job_id, "started", progress=50)
        move(fake_redis, job_id, "finished")
    ended = view(fake_redis, batch["id"])
    assert (ended["status"], ended["progress"], ended["counts"]["finished"]) == ("finished", 100, 2)


# -- real runs ----------------------------------------------------------------------------


def test_a_run_counts_failures_and_reports_on_complete(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    jobs = [noop_job(), steps_job(2), steps_job(2, args={"fail_at": 1})]
    batch = submit(client, jobs, on_complete={"type": "demo.batch_report"}, description="three")
    run_all(fake_redis)
    ended = client.get(f"/batches/{batch['id']}").json()
    assert ended["status"] == "failed" and ended["description"] == "three"
    assert nonzero(ended["counts"]) == {"finished": 2, "failed": 1}
    report = client.get(f"/jobs/{ended['on_complete_job_id']}").json()
    assert report["status"] == "finished" and report["result"] == {"total": 3, "finished": 2, "failed": 1}
    members = client.get(f"/batches/{batch['id']}/jobs").json()["jobs"]
    assert len(members) == 3 and {member["batch_id"] for member in members} == {batch["id"]}


def test_the_callback_gets_the_signed_batch_view_once(
    make_client: Callable[..., TestClient], fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, bytes, dict[str, str]]] = []

    def post(url: str, body: bytes, headers: dict[str, str], settings: Settings) -> int:
        sent.append((url, body, headers))
        return 200

    monkeypatch.setattr(callbacks, "post", post)
    worker_settings = Settings(redis_url="redis://unused:6379/0", callback_secret="unit-secret")
    monkeypatch.setattr(callbacks, "get_settings", lambda: worker_settings)
    client = make_client(callback_secret="unit-secret", callback_allow_private=True)
    batch = submit(client, [noop_job(), noop_job()], callback_url="http://127.0.0.1:9/hook")
    run_all(fake_redis)
    assert len(sent) == 1
    url, body, headers = sent[0]
    assert url == "http://127.0.0.1:9/hook" and headers["X-Job-Id"] == batch["id"]
    expected = "sha256=" + hmac.new(b"unit-secret", body, "sha256").hexdigest()
    assert headers["X-Signature"] == expected
    delivered = json.loads(body)
    assert delivered["id"] == batch["id"] and delivered["status"] == "finished" and delivered["counts"]["finished"] == 2
    assert client.get(f"/batches/{batch['id']}").json()["callback"] == {
        "attempts": 1,
        "delivered": True,
        "last_error": None,
    }


# -- cancel, scoping, listing, events, metrics ---------------------------------------------


def test_cancel_cancels_waiting_members_and_ends_the_batch(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    batch = submit(client, [noop_job(), noop_job(delay=30)], on_complete={"type": "demo.batch_report"})
    response = client.delete(f"/batches/{batch['id']}")
    assert response.status_code == 202
    canceled = response.json()
    assert canceled["status"] == "canceled" and nonzero(canceled["counts"]) == {"canceled": 2}
    assert canceled["ended_at"] is not None and canceled["on_complete_job_id"]
    assert client.delete(f"/batches/{batch['id']}").status_code == 409
    run_all(fake_redis)
    assert client.get(f"/jobs/{canceled['on_complete_job_id']}").json()["result"] == {
        "total": 2,
        "finished": 0,
        "failed": 2,
    }


def test_another_keys_batch_is_404(keyed: TestClient) -> None:
    response = keyed.post("/batches", json={"jobs": [noop_job()]}, headers=bearer("alice"))
    batch_id = response.json()["id"]
    for method, path in [("GET", ""), ("DELETE", ""), ("GET", "/jobs"), ("GET", "/events")]:
        assert keyed.request(method, f"/batches/{batch_id}{path}", headers=bearer("bob")).status_code == 404
    assert keyed.get(f"/batches/{batch_id}", headers=bearer("ops")).status_code == 200
    assert keyed.get("/batches", headers=bearer("bob")).json()["batches"] == []
    assert [b["id"] for b in keyed.get("/batches", headers=bearer("alice")).json()["batches"]] == [batch_id]
    assert keyed.get("/batches/nope", headers=bearer("alice")).status_code == 404


def test_list_batches_pages_newest_first(client: TestClient) -> None:
    ids = [submit(client, [noop_job()])["id"] for _ in range(3)]
    first = client.get("/batches", params={"limit": 2}).json()
    assert [b["id"] for b in first["batches"]] == ids[::-1][:2] and first["next_cursor"]
    second = client.get("/batches", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [b["id"] for b in second["batches"]] == ids[:1] and second["next_cursor"] is None
    assert client.get("/batches", params={"cursor": "junk"}).status_code == 422


def test_event_stream_of_an_ended_batch_is_its_final_view(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    batch = submit(client, [noop_job()])
    run_all(fake_redis)
    with client.stream("GET", f"/batches/{batch['id']}/events") as response:
        received = list(sse_events(response))
    assert [event.event for event in received] == ["status"]
    assert received[0].data["status"] == "finished" and received[0].data["counts"]["finished"] == 1


def test_metrics_count_batches(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    submit(client, [noop_job()])
    done = submit(client, [noop_job()])
    move(fake_redis, member_ids(fake_redis, done["id"])[0], "failed")
    text = client.get("/metrics").text
    assert 'jobsvc_batches{status="running"} 1.0' in text and 'jobsvc_batches{status="failed"} 1.0' in text


def test_member_jobs_carry_their_batch(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    batch = submit(client, [noop_job()])
    (job_id,) = member_ids(fake_redis, batch["id"])
    job = Job.fetch(job_id, connection=fake_redis, serializer=SERIALIZER)
    assert job.meta[BATCH_ID] == batch["id"] and fake_redis.hget(job.key, keys.BATCH_FIELD) == batch["id"].encode()


def test_a_templated_member_is_the_job_post_jobs_writes(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    """Members sharing a template get the hash RQ writes for the same job submitted alone, but for the batch."""
    single = client.post("/jobs", json=steps_job(2)).json()["id"]
    batch = submit(client, [steps_job(2), steps_job(2), noop_job()])
    alone = fake_redis.hgetall(f"rq:job:{single}")
    own = {b"created_at", b"enqueued_at", b"meta", keys.QUEUE_SEQ.encode(), keys.BATCH_FIELD.encode()}
    for job_id in member_ids(fake_redis, batch["id"]):
        member = fake_redis.hgetall(f"rq:job:{job_id}")
        if member[b"description"] != b"demo.steps":
            continue
        assert {k: v for k, v in member.items() if k not in own} == {k: v for k, v in alone.items() if k not in own}
        assert member[b"created_at"] == member[b"enqueued_at"]
        assert SERIALIZER.loads(member[b"meta"])[BATCH_ID] == batch["id"]
    assert fake_redis.lrange("rq:queue:default", 0, -1)[0] == single.encode()
    assert fake_redis.llen("rq:queue:default") == 4


def test_a_type_for_on_complete_only_is_refused_as_a_job_of_its_own() -> None:
    settings = Settings()
    with pytest.raises(ValidationFailedError) as refused:
        parse_submission({"type": "demo.batch_report"}, registry, settings)
    (error,) = refused.value.errors or []
    assert error["loc"] == ["type"] and "on_complete" in error["msg"]
    assert parse_submission({"type": "demo.batch_report"}, registry, settings, on_complete=True).spec.on_complete_only
