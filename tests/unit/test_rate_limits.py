"""Per-key submission rate (RATE_LIMIT) and active-jobs quota (MAX_ACTIVE_JOBS): 429 + Retry-After."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import TypedDict

import fakeredis
import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from starlette.testclient import TestClient

from app.errors import TooManyRequestsError
from app.main import create_app
from app.quota import Quota
from app.store import JobStore
from core import keys
from core.connection import async_redis, sync_redis
from core.queues import SERIALIZER
from core.settings import Settings
from stack.redis_server import free_port
from tests.factories import noop_job
from tests.support.replies import text
from tests.unit.conftest import KEYS, bearer
from tests.unit.test_api_validation import assert_problem
from workers.job import RegisteredJob

API_KEYS = ",".join(f"{name}={key}" for name, key in KEYS.items())


def run_jobs(fake_server: fakeredis.FakeServer) -> None:
    connection = fakeredis.FakeRedis(server=fake_server)
    queue = Queue("default", connection=connection, serializer=SERIALIZER, job_class=RegisteredJob)
    SimpleWorker([queue], connection=connection, serializer=SERIALIZER, job_class=RegisteredJob).work(burst=True)


def test_rate_limit_429_with_retry_after_while_other_keys_go_on(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_keys=API_KEYS, rate_limit="3/minute")
    for _ in range(3):
        assert client.post("/jobs", json=noop_job(), headers=bearer("alice")).status_code == 202
    refused = client.post("/jobs", json=noop_job(), headers=bearer("alice"))
    body = assert_problem(refused, 429)
    assert body["type"] == "/problems/too-many-requests" and "3 per 1 minute" in body["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert client.post("/jobs", json=noop_job(), headers=bearer("bob")).status_code == 202
    assert client.get("/jobs", headers=bearer("alice")).status_code == 200  # reads are not rate limited


def test_rate_limit_is_shared_by_web_processes(make_client: Callable[..., TestClient]) -> None:
    first = make_client(api_keys=API_KEYS, rate_limit="2/hour")
    second = make_client(api_keys=API_KEYS, rate_limit="2/hour")  # another app on the same Redis
    assert first.post("/jobs", json=noop_job(), headers=bearer("alice")).status_code == 202
    assert second.post("/jobs", json=noop_job(), headers=bearer("alice")).status_code == 202
    refused = first.post("/jobs", json=noop_job(), headers=bearer("alice"))
    assert_problem(refused, 429)
    assert 3000 < int(refused.headers["retry-after"]) <= 3600


def test_invalid_rate_limit_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="rate limit"):
        Settings(rate_limit="sixty a minute")


def test_active_jobs_quota_429_until_jobs_end(
    make_client: Callable[..., TestClient], fake_server: fakeredis.FakeServer
) -> None:
    client = make_client(api_keys=API_KEYS, max_active_jobs=2)
    for _ in range(2):
        assert client.post("/jobs", json=noop_job(), headers=bearer("alice")).status_code == 202
    refused = client.post("/jobs", json=noop_job(), headers=bearer("alice"))
    body = assert_problem(refused, 429)
    assert "2 active jobs" in body["detail"] and int(refused.headers["retry-after"]) >= 1
    assert client.post("/jobs", json=noop_job(), headers=bearer("bob")).status_code == 202
    assert len(client.get("/jobs", headers=bearer("alice")).json()["jobs"]) == 2  # the refused one left no trace

    run_jobs(fake_server)
    for _ in range(2):
        assert client.post("/jobs", json=noop_job(), headers=bearer("alice")).status_code == 202
    assert_problem(client.post("/jobs", json=noop_job(), headers=bearer("alice")), 429)


@pytest.mark.parametrize(
    ("status", "counts"),
    [
        ("queued", True),
        ("scheduled", True),
        ("deferred", True),
        ("started", True),
        ("finished", False),
        ("failed", False),
        ("stopped", False),
        ("canceled", False),
        (None, False),  # expired: the job hash is gone
    ],
)
def test_quota_counts_queued_scheduled_deferred_started(
    make_client: Callable[..., TestClient], fake_server: fakeredis.FakeServer, status: str | None, counts: bool
) -> None:
    client = make_client(api_keys=API_KEYS, max_active_jobs=1)
    job_id = client.post("/jobs", json=noop_job(), headers=bearer("alice")).json()["id"]
    redis = fakeredis.FakeRedis(server=fake_server)
    if status is None:
        redis.delete(Job.key_for(job_id))
    else:
        redis.hset(Job.key_for(job_id), "status", status)
    second = client.post("/jobs", json=noop_job(), headers=bearer("alice"))
    assert second.status_code == (429 if counts else 202), second.text
    active = {member.decode() for member in redis.smembers(keys.active_for_owner("alice"))}  # type: ignore[union-attr]
    assert (job_id in active) is counts  # ended jobs are pruned from the set


def test_unset_limits_mean_unlimited(make_client: Callable[..., TestClient], fake_server: fakeredis.FakeServer) -> None:
    client = make_client(api_keys=API_KEYS)
    for _ in range(30):
        assert client.post("/jobs", json=noop_job(), headers=bearer("alice")).status_code == 202
    redis = fakeredis.FakeRedis(server=fake_server)
    assert not redis.exists(keys.active_for_owner("alice"))
    assert not redis.keys(f"{keys.RATE_LIMIT_PREFIX}*")


def test_rate_limit_counters_live_under_the_service_prefix(
    make_client: Callable[..., TestClient], fake_server: fakeredis.FakeServer
) -> None:
    client = make_client(api_keys=API_KEYS, rate_limit="5/second")
    client.post("/jobs", json=noop_job(), headers=bearer("bob"))
    names = [text(name) for name in fakeredis.FakeRedis(server=fake_server).keys(f"{keys.RATE_LIMIT_PREFIX}*")]
    assert names and all("bob" in name for name in names)
    assert hashlib.sha256(KEYS["bob"].encode()).hexdigest() not in "".join(names) and KEYS["bob"] not in "".join(names)


class LimitOverrides(TypedDict, total=False):
    """The limit settings a test turns on."""

    rate_limit: str
    max_active_jobs: int


@pytest.mark.parametrize("overrides", [LimitOverrides(rate_limit="5/minute"), LimitOverrides(max_active_jobs=3)])
def test_limits_answer_503_when_redis_is_down(overrides: LimitOverrides) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", api_keys=API_KEYS, **overrides)
    with TestClient(create_app(settings, (sync_redis(settings), async_redis(settings)))) as client:
        response = client.post("/jobs", json=noop_job(), headers=bearer("alice"))
    assert_problem(response, 503)


def test_reserve_slot_counts_a_requeued_job(
    make_client: Callable[..., TestClient], fake_server: fakeredis.FakeServer
) -> None:
    client = make_client(api_keys=API_KEYS, max_active_jobs=1)
    job_id = client.post("/jobs", json=noop_job(), headers=bearer("alice")).json()["id"]
    run_jobs(fake_server)
    redis = fakeredis.FakeRedis(server=fake_server)
    store = JobStore(Settings(redis_url="redis://unused:6379/0"), redis, fakeredis.FakeAsyncRedis(server=fake_server))
    active_key = keys.active_for_owner("alice")
    redis.srem(active_key, job_id)  # ended jobs are pruned from the set
    asyncio.run(store.reserve_slot(Quota("alice", 1), job_id))  # it had ended: the slot was free
    assert redis.sismember(active_key, job_id)
    redis.hset(Job.key_for(job_id), "status", "queued")  # as a retry would leave it
    assert_problem(client.post("/jobs", json=noop_job(), headers=bearer("alice")), 429)
    with pytest.raises(TooManyRequestsError):
        asyncio.run(store.reserve_slot(Quota("alice", 1), "another-job"))


def test_the_quota_counts_dependent_jobs_and_answers_before_their_parents_are_checked(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(api_keys=API_KEYS, max_active_jobs=2)
    parent = client.post("/jobs", json=noop_job(), headers=bearer("alice")).json()["id"]
    child = client.post("/jobs", json=noop_job(depends_on=[parent]), headers=bearer("alice"))
    assert child.status_code == 202 and child.json()["status"] == "deferred"
    assert_problem(client.post("/jobs", json=noop_job(depends_on=[parent]), headers=bearer("alice")), 429)
    assert_problem(client.post("/jobs", json=noop_job(depends_on=["no-such-job"]), headers=bearer("alice")), 429)
    assert_problem(client.post("/jobs", json=noop_job(depends_on=["no-such-job"]), headers=bearer("bob")), 422)
