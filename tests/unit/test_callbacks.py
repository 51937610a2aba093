"""Callbacks without the network: signatures, the SSRF guard, backoff bounds, submission checks, enqueueing."""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from rq import Queue, Retry, SimpleWorker
from rq.job import Job
from starlette.testclient import TestClient

from app.main import create_app
from core import events, keys, netguard, signature
from core.queues import SERIALIZER
from core.settings import Settings
from jobs.builtin import callbacks
from jobs.catalog import registry
from tests.factories import steps_job
from workers.announcing import AnnouncingWorker
from workers.job import RegisteredJob

SECRET = "unit-secret"


class InProcessWorker(AnnouncingWorker, SimpleWorker):
    """What ServiceWorker announces, run in-process on fakeredis."""


def run_all(connection: fakeredis.FakeRedis, *queues: str) -> None:
    names = queues or ("high", "default", "low")
    worker = InProcessWorker(
        [Queue(name, connection=connection, serializer=SERIALIZER, job_class=RegisteredJob) for name in names],
        connection=connection,
        serializer=SERIALIZER,
        job_class=RegisteredJob,
    )
    worker.work(burst=True)


# -- signatures ---------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"id":"1","status":"finished"}'
    expected = "sha256=" + hmac.new(SECRET.encode(), body, "sha256").hexdigest()
    assert signature.sign(body, SECRET) == expected
    assert signature.verify(body, expected, SECRET)
    assert not signature.verify(body + b" ", expected, SECRET)
    assert not signature.verify(body, expected, "other")
    assert not signature.verify(body, None, SECRET) and not signature.verify(body, expected, "")
    assert not signature.verify(body, expected.replace("sha256=", "sha1="), SECRET)


def test_verify_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module core.signature compares with
    assert signature.verify(b"x", signature.sign(b"x", SECRET), SECRET)
    assert len(calls) == 1


# -- SSRF guard ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.10", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "not a publicly routable"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_the_guard_refuses_non_public_addresses(address: str, reason: str) -> None:
    refused = netguard.refusal(ipaddress.ip_address(address))
    assert refused is not None and reason in refused
    with pytest.raises(netguard.RefusedAddressError, match="CALLBACK_ALLOW_PRIVATE"):
        netguard.vet(address, 80, allow_private=False)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700:4700::1111", "8.8.8.8"])
def test_the_guard_passes_public_addresses(address: str) -> None:
    assert netguard.refusal(ipaddress.ip_address(address)) is None
    assert netguard.vet(address, 443, allow_private=False) == [str(ipaddress.ip_address(address))]


def test_a_name_resolving_to_loopback_is_refused_unless_allowed() -> None:
    with pytest.raises(netguard.RefusedAddressError, match="localhost"):
        netguard.vet("localhost", 80, allow_private=False)
    assert "127.0.0.1" in netguard.vet("localhost", 80, allow_private=True)


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_the_backend_connects_only_to_checked_addresses(listening: int) -> None:
    with pytest.raises(netguard.RefusedAddressError):
        netguard.GuardedBackend(allow_private=False).connect_tcp("127.0.0.1", listening, timeout=2)
    stream = netguard.GuardedBackend(allow_private=True).connect_tcp("localhost", listening, timeout=2)
    stream.close()


# -- backoff and registry -----------------------------------------------------------------


def test_default_backoff_meets_the_bounds() -> None:
    settings = Settings(redis_url="redis://unused:6379/0")
    intervals = callbacks.retry_intervals(settings)
    assert len(intervals) == settings.callback_max_attempts - 1
    assert intervals[:4] == [2, 4, 8, 16] and max(intervals) <= settings.callback_backoff_max
    scheduler_poll = 1  # RQ's scheduler looks for due jobs every second
    assert intervals[0] + scheduler_poll <= 5, "first retry within 5 s"
    worst_case = 2 * settings.callback_timeout + intervals[0] + intervals[1] + 2 * scheduler_poll
    assert worst_case <= 60, "first three attempts within a minute, even when both failures time out"
    assert settings.callback_timeout == 10


def test_the_delivery_job_type_is_internal() -> None:
    assert "callbacks.deliver" not in registry
    assert "callbacks.deliver" not in [spec.name for spec in registry]
    spec = registry.for_function("jobs.builtin.callbacks.deliver")
    assert spec.internal and spec.queue == "low"


# -- submission ---------------------------------------------------------------------------


@pytest.fixture
def settings() -> Settings:
    return Settings(redis_url="redis://unused:6379/0", callback_secret=SECRET)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/hook", "scheme"),
        ("not a url", "URL"),
        ("http://127.0.0.1:9000/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://10.0.0.7/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://[::1]/hook", "loopback"),
    ],
)
def test_bad_or_private_callback_urls_are_422(client: TestClient, url: str, message: str) -> None:
    response = client.post("/jobs", json=steps_job(callback_url=url))
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["loc"][0] == "callback_url" and message in error["msg"]


def test_without_a_secret_callbacks_are_refused(fake_server: fakeredis.FakeServer) -> None:
    connections = (fakeredis.FakeRedis(server=fake_server), fakeredis.FakeAsyncRedis(server=fake_server))
    with TestClient(create_app(Settings(redis_url="redis://unused:6379/0"), connections)) as client:
        response = client.post("/jobs", json=steps_job(callback_url="http://93.184.216.34/hook"))
    assert response.status_code == 422 and "CALLBACK_SECRET" in response.json()["errors"][0]["msg"]


def test_internal_types_cannot_be_submitted(client: TestClient) -> None:
    response = client.post("/jobs", json={"type": "callbacks.deliver", "args": {"job_id": "x", "status": "finished"}})
    assert response.status_code == 422
    assert "callbacks.deliver" not in [t["type"] for t in client.get("/job-types").json()]


def test_an_accepted_callback_is_pending_in_the_view(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    response = client.post("/jobs", json=steps_job(callback_url="http://93.184.216.34/hooks/done?x=1"))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["callback"] == {"attempts": 0, "delivered": False, "last_error": None}
    assert "callback_url" not in body
    job = Job.fetch(body["id"], connection=fake_redis, serializer=SERIALIZER)
    assert job.meta["callback_url"] == "http://93.184.216.34/hooks/done?x=1"
    assert client.get(f"/jobs/{body['id']}").json()["callback"] == body["callback"]


# -- the end of a job: final status event and the delivery job, in one round trip ----------


@pytest.fixture
def announced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(job id, status) of every status change announced, in order."""
    seen: list[tuple[str, str]] = []
    add_status = events.add_status

    def spy(pipe: events.Pipeline, job: Job, status: Any, settings: Settings | None = None) -> None:
        seen.append((job.id, events.status_value(status)))
        add_status(pipe, job, status, settings)

    monkeypatch.setattr(events, "add_status", spy)
    return seen


def test_a_job_ending_publishes_its_status_and_enqueues_the_delivery(
    client: TestClient, fake_redis: fakeredis.FakeRedis, settings: Settings, announced: list[tuple[str, str]]
) -> None:
    job_id = client.post("/jobs", json=steps_job(steps=2, callback_url="http://93.184.216.34/h")).json()["id"]
    pubsub = fake_redis.pubsub()  # type: ignore[no-untyped-call]  # unannotated in redis-py
    pubsub.subscribe(keys.EVENTS_CHANNEL)
    run_all(fake_redis, "default")
    published = [m["data"].decode() for m in iter(pubsub.get_message, None) if m["type"] == "message"]
    assert published == [job_id] * 4  # started, 2 reports, finished
    assert announced == [(job_id, "started"), (job_id, "finished")]
    assert not list(fake_redis.scan_iter("jobsvc:events:*")), "events live in the job hash, no stream beside it"

    [delivery_id] = Queue("low", connection=fake_redis, serializer=SERIALIZER).get_job_ids()
    delivery = Job.fetch(delivery_id, connection=fake_redis, serializer=SERIALIZER)
    assert delivery.func_name == "jobs.builtin.callbacks.deliver"
    assert delivery.kwargs == {"job_id": job_id, "status": "finished"}
    assert delivery.retries_left == settings.callback_max_attempts - 1
    assert delivery.retry_intervals == callbacks.retry_intervals(settings)
    assert delivery.timeout == settings.callback_timeout + 5


def test_a_retried_job_announces_its_retry_and_no_callback_until_it_ends(
    fake_redis: fakeredis.FakeRedis, announced: list[tuple[str, str]]
) -> None:
    queue = Queue("default", connection=fake_redis, serializer=SERIALIZER, job_class=RegisteredJob)
    job = queue.enqueue_call(
        "jobs.builtin.demo.steps",
        kwargs={"steps": 1, "delay": 0, "fail_at": 1},
        retry=Retry(max=1),
        meta={"type": "demo.steps", "callback_url": "http://93.184.216.34/h"},
    )
    run_all(fake_redis, "default")
    assert announced == [(job.id, status) for status in ("started", "queued", "started", "failed")]
    assert len(Queue("low", connection=fake_redis, serializer=SERIALIZER).get_job_ids()) == 1
