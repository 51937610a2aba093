"""/metrics: numbers that move as jobs are submitted and run, the worker-side histogram, the token."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import fakeredis
import pytest
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue, Worker
from starlette.testclient import TestClient

from app.main import create_app
from core import runtimes
from core.queues import SERIALIZER
from core.settings import Settings
from tests.factories import noop_job, steps_job
from tests.support.inprocess import run_jobs

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; a sample missing from the scrape fails the test (use `absent` for that)."""
    return samples[(name, frozenset(labels.items()))]


def absent(samples: Samples, name: str, **labels: str) -> bool:
    return (name, frozenset(labels.items())) not in samples


def connections(server: fakeredis.FakeServer) -> tuple[fakeredis.FakeRedis, fakeredis.FakeAsyncRedis]:
    return fakeredis.FakeRedis(server=server), fakeredis.FakeAsyncRedis(server=server)


def test_metrics_follow_submissions_and_runs(
    client: TestClient, fake_server: fakeredis.FakeServer, fake_redis: fakeredis.FakeRedis
) -> None:
    before = scrape(client)
    assert value(before, "jobsvc_redis_up") == 1
    assert value(before, "jobsvc_queue_depth", queue="default") == 0

    for _ in range(3):
        assert client.post("/jobs", json=steps_job(steps=2, delay=0.01)).status_code == 202
    assert client.post("/jobs", json=noop_job(queue="high")).status_code == 202
    assert client.post("/jobs", json=steps_job(steps=2, args={"fail_at": 2})).status_code == 202
    assert client.post("/jobs", json=steps_job(steps=0)).status_code == 422
    assert client.post("/jobs", json={"type": "no.such"}).status_code == 422
    assert client.post("/jobs", content=b"{", headers={"content-type": "application/json"}).status_code == 400

    queued = scrape(client)
    assert value(queued, "jobsvc_queue_depth", queue="default") == 4
    assert value(queued, "jobsvc_queue_depth", queue="high") == 1
    assert value(queued, "jobsvc_jobs", queue="default", status="queued") == 4
    assert value(queued, "jobsvc_jobs", queue="default", status="finished") == 0
    assert absent(queued, "jobsvc_job_run_seconds_count", type="demo.steps", status="finished")
    assert value(queued, "jobsvc_submissions_total", type="demo.steps", outcome="accepted") == 4
    assert value(queued, "jobsvc_submissions_total", type="demo.noop", outcome="accepted") == 1
    assert value(queued, "jobsvc_submissions_total", type="demo.steps", outcome="invalid") == 1
    assert value(queued, "jobsvc_submissions_total", type="unknown", outcome="invalid") == 2
    route = {"method": "POST", "route": "/jobs"}
    assert value(queued, "jobsvc_http_request_duration_seconds_count", **route, status="202") == 5
    assert value(queued, "jobsvc_http_request_duration_seconds_count", **route, status="422") == 2
    assert (
        value(queued, "jobsvc_http_request_duration_seconds_count", method="GET", route="/metrics", status="200") == 1
    )

    run_jobs(fake_redis)
    ran = scrape(client)
    assert value(ran, "jobsvc_queue_depth", queue="default") == 0
    assert value(ran, "jobsvc_jobs", queue="default", status="finished") == 3
    assert value(ran, "jobsvc_jobs", queue="default", status="failed") == 1
    assert value(ran, "jobsvc_jobs", queue="high", status="finished") == 1
    steps_ok = {"type": "demo.steps", "status": "finished"}
    assert value(ran, "jobsvc_job_run_seconds_count", **steps_ok) == 3
    assert value(ran, "jobsvc_job_run_seconds_sum", **steps_ok) >= 3 * 2 * 0.01
    assert value(ran, "jobsvc_job_run_seconds_bucket", **steps_ok, le="+Inf") == 3
    assert value(ran, "jobsvc_job_run_seconds_bucket", **steps_ok, le="0.01") == 0  # each ran >= 20 ms
    assert value(ran, "jobsvc_job_run_seconds_count", type="demo.steps", status="failed") == 1
    assert value(ran, "jobsvc_job_run_seconds_count", type="demo.noop", status="finished") == 1


def test_job_run_times_survive_a_web_restart(
    client: TestClient, fake_server: fakeredis.FakeServer, fake_redis: fakeredis.FakeRedis, settings: Settings
) -> None:
    client.post("/jobs", json=noop_job())
    client.post("/jobs", json=noop_job())
    run_jobs(fake_redis)
    with TestClient(create_app(settings, connections(fake_server))) as restarted:
        samples = scrape(restarted)
    assert value(samples, "jobsvc_job_run_seconds_count", type="demo.noop", status="finished") == 2
    assert absent(samples, "jobsvc_submissions_total", type="demo.noop", outcome="accepted")  # per process


def test_workers_busy_and_idle(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    queue = Queue("default", connection=fake_redis, serializer=SERIALIZER)
    workers = [Worker([queue], connection=fake_redis) for _ in range(3)]
    for worker in workers:
        worker.register_birth()
        worker.set_state("idle")
    workers[0].set_state("busy")
    samples = scrape(client)
    assert value(samples, "jobsvc_workers", state="busy") == 1
    assert value(samples, "jobsvc_workers", state="idle") == 2


def test_redis_down_still_scrapes_with_redis_up_zero(client: TestClient, fake_server: fakeredis.FakeServer) -> None:
    client.post("/jobs", json=noop_job())
    fake_server.connected = False
    samples = scrape(client)
    assert value(samples, "jobsvc_redis_up") == 0
    assert value(samples, "jobsvc_submissions_total", type="demo.noop", outcome="accepted") == 1
    assert not any(name == "jobsvc_queue_depth" for name, _ in samples)
    assert client.post("/jobs", json=noop_job()).status_code == 503
    fake_server.connected = True
    assert value(scrape(client), "jobsvc_submissions_total", type="demo.noop", outcome="unavailable") == 1


@pytest.fixture
def token_client(fake_server: fakeredis.FakeServer) -> Iterator[TestClient]:
    settings = Settings(redis_url="redis://unused:6379/0", metrics_token="t0ken")
    with TestClient(create_app(settings, connections(fake_server))) as client:
        yield client


def test_metrics_token(token_client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dDBrZW4="}):
        response = token_client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"] == "application/problem+json"
    assert value(scrape(token_client, Authorization="Bearer t0ken"), "jobsvc_redis_up") == 1


def test_histogram_buckets() -> None:
    assert runtimes.bucket_for(0.0) == 0.01
    assert runtimes.bucket_for(0.01) == 0.01
    assert runtimes.bucket_for(0.011) == 0.05
    assert runtimes.bucket_for(1e9) == float("inf")
    series = runtimes.parse(
        {
            b"t.x|finished|le=0.05": b"2",
            b"t.x|finished|le=+Inf": b"1",
            b"t.x|finished|count": b"3",
            b"t.x|finished|sum": b"9.5",
        }
    )[("t.x", "finished")]
    cumulative = dict(series.cumulative())
    assert cumulative["0.01"] == 0 and cumulative["0.05"] == 2 and cumulative["3600.0"] == 2 and cumulative["+Inf"] == 3
    assert series.count == 3 and series.total == 9.5


def test_a_reused_job_and_an_idempotent_replay_are_counted_and_logged_apart(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.submissions")
    reusable = noop_job(cache_ttl=60)
    first = client.post("/jobs", json=reusable)
    assert first.status_code == 202
    reused = client.post("/jobs", json=reusable)
    assert reused.status_code == 200 and reused.headers["cache-status"] == "jobsvc; hit"
    keyed = {"Idempotency-Key": "metrics-1"}
    original = client.post("/jobs", json=noop_job(queue="high"), headers=keyed)
    assert original.status_code == 202
    replay = client.post("/jobs", json=noop_job(queue="high"), headers=keyed)
    assert replay.status_code == 200 and "cache-status" not in replay.headers

    samples = scrape(client)
    assert value(samples, "jobsvc_submissions_total", type="demo.noop", outcome="accepted") == 2
    assert value(samples, "jobsvc_submissions_total", type="demo.noop", outcome="reused") == 1
    assert value(samples, "jobsvc_submissions_total", type="demo.noop", outcome="existing") == 1
    logged = [(r.__dict__["job_id"], r.__dict__["outcome"]) for r in caplog.records if r.name == "app.submissions"]
    assert logged == [
        (first.json()["id"], "accepted"),
        (first.json()["id"], "reused"),
        (original.json()["id"], "accepted"),
        (original.json()["id"], "existing"),
    ]
