"""Completion callbacks against a real receiver on loopback, with a real web process and real workers."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypedDict

import httpx
import pytest
import redis
from rq.command import send_stop_job_command
from rq.job import Job

from core import signature
from core.queues import SERIALIZER, make_queue
from tests.conftest import REPORT, RecordProperty
from tests.factories import steps_job
from tests.integration.conftest import TEST_ENV
from tests.integration.test_spine import submit, view, wait_status
from tests.support.procs import ProcessFactory, wait_for, web_process

SECRET = "test-callback-secret"


class CallbackEnv(TypedDict):
    """The environment variables the callback tests set (its keys cannot clash with `worker`'s `wait`)."""

    CALLBACK_SECRET: str
    CALLBACK_ALLOW_PRIVATE: str


#: What the workers of these tests get: the receiver is on loopback.
WORKER_ENV: CallbackEnv = {"CALLBACK_SECRET": SECRET, "CALLBACK_ALLOW_PRIVATE": "true"}


@dataclass
class Delivery:
    at: float
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on loopback that answers with the scripted statuses (then 200) and records every POST."""

    answers: list[int] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    url: str = ""

    def wait(self, count: int, timeout: float = 30) -> list[Delivery]:
        wait_for(lambda: len(self.deliveries) >= count, timeout, what=f"{count} callback deliveries")
        return self.deliveries


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.deliveries.append(Delivery(time.monotonic(), dict(self.headers.items()), body))
            self.send_response(state.answers.pop(0) if state.answers else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/job-done"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def loopback_web(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A web process that accepts loopback callback URLs (the guard is tested at the worker here), one for
    each test module that uses it (batches' too): its base URL."""
    logs = tmp_path_factory.mktemp("web-callbacks")
    with web_process(redis_server_url, logs, dict(TEST_ENV, **WORKER_ENV)) as url:
        yield url


@pytest.fixture
def api(loopback_web: str, redis_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=loopback_web, timeout=10) as client:
        yield client


def delivery_jobs(rclient: redis.Redis) -> list[Job]:
    queue = make_queue("low", rclient)
    ids = {
        *queue.finished_job_registry.get_job_ids(),
        *queue.failed_job_registry.get_job_ids(),
        *queue.scheduled_job_registry.get_job_ids(),
        *queue.get_job_ids(),
    }
    return [Job.fetch(job_id, connection=rclient, serializer=SERIALIZER) for job_id in ids]


def delivery_ended(rclient: redis.Redis, timeout: float = 30) -> Job:
    """The one delivery job, once it has ended (`finished`, or `failed` with no retry left): RQ retries
    neither, so no later attempt can come. Its attempts are recorded before it ends."""
    found: list[Job] = []

    def ended() -> bool:
        found[:] = delivery_jobs(rclient)
        return len(found) == 1 and found[0].get_status(refresh=False) in ("finished", "failed")

    wait_for(ended, timeout, interval=0.1, what="the delivery job to end")
    return found[0]


def callback_state(api: httpx.Client, job_id: str, attempts: int) -> dict[str, Any]:
    wait_for(lambda: view(api, job_id)["callback"]["attempts"] >= attempts, 60, what=f"{attempts} attempts recorded")
    state: dict[str, Any] = view(api, job_id)["callback"]
    return state


def test_a_finished_job_calls_back_signed_from_a_job_on_the_low_queue(
    api: httpx.Client, procs: ProcessFactory, receiver: Receiver, rclient: redis.Redis
) -> None:
    procs.worker(**WORKER_ENV)
    job = submit(api, steps_job(steps=2, callback_url=receiver.url))
    assert job["callback"] == {"attempts": 0, "delivered": False, "last_error": None}
    [delivery] = receiver.wait(1)

    assert signature.verify(delivery.body, delivery.headers["X-Signature"], SECRET)
    assert delivery.headers["X-Signature"].startswith("sha256=")
    assert not signature.verify(delivery.body, delivery.headers["X-Signature"], "another secret")
    assert not signature.verify(delivery.body.replace(b"finished", b"failed"), delivery.headers["X-Signature"], SECRET)
    assert delivery.headers["X-Job-Id"] == job["id"]
    assert delivery.headers["Content-Type"] == "application/json"
    done = view(api, job["id"])
    assert delivery.json() == {
        "id": job["id"],
        "type": "demo.steps",
        "status": "finished",
        "result": {"steps": 2, "attempt": 1},
        "error": None,
        "ended_at": done["ended_at"],
    }
    assert callback_state(api, job["id"], 1) == {"attempts": 1, "delivered": True, "last_error": None}
    [deliverer] = delivery_jobs(rclient)
    assert deliverer.origin == "low" and deliverer.func_name == "jobs.builtin.callbacks.deliver"
    assert deliverer.kwargs == {"job_id": job["id"], "status": "finished"}
    # internal: neither listed nor submittable
    assert "callbacks.deliver" not in [t["type"] for t in api.get("/job-types").json()]
    assert api.post("/jobs", json={"type": "callbacks.deliver", "args": deliverer.kwargs}).status_code == 422


def test_a_receiver_failing_twice_gets_the_third_attempt_with_backoff(
    api: httpx.Client, procs: ProcessFactory, receiver: Receiver, record_property: RecordProperty, rclient: redis.Redis
) -> None:
    receiver.answers = [500, 503]
    procs.worker(**WORKER_ENV)  # default backoff: first retry after 2 s, then 4 s
    job = submit(api, steps_job(steps=1, callback_url=receiver.url))
    deliveries = receiver.wait(3)
    assert callback_state(api, job["id"], 3) == {"attempts": 3, "delivered": True, "last_error": None}
    first, second, third = deliveries
    record_property(REPORT, f"callback attempts at +0, +{second.at - first.at:.2f} s, +{third.at - first.at:.2f} s")
    assert second.at - first.at <= 5, "first retry within 5 s"
    assert third.at - first.at <= 60, "first three attempts within a minute"
    assert third.at - second.at > second.at - first.at, "backoff grows"
    assert [d.headers["X-Callback-Attempt"] for d in deliveries] == ["1", "2", "3"]
    assert first.body == second.body == third.body  # the same signed bytes every time
    # No 4th attempt: the delivery job has ended `finished`, so RQ schedules no retry of it.
    assert delivery_ended(rclient).get_status() == "finished"
    assert len(receiver.deliveries) == 3


def test_a_receiver_down_throughout_leaves_delivered_false_after_max_attempts(
    api: httpx.Client, procs: ProcessFactory, rclient: redis.Redis
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    procs.worker(**WORKER_ENV, CALLBACK_MAX_ATTEMPTS="3", CALLBACK_BACKOFF_BASE="1")
    job = submit(api, steps_job(steps=1, callback_url=f"http://127.0.0.1:{port}/down"))
    state = callback_state(api, job["id"], 3)
    assert state["attempts"] == 3 and state["delivered"] is False
    assert "ConnectError" in state["last_error"]
    # No 4th attempt: the delivery job has ended `failed` with no retry left, so RQ schedules none.
    deliverer = delivery_ended(rclient)
    assert deliverer.get_status() == "failed" and deliverer.retries_left == 0
    assert view(api, job["id"])["callback"]["attempts"] == 3


def test_a_private_address_is_refused_at_delivery_when_the_guard_is_on(
    api: httpx.Client, procs: ProcessFactory, receiver: Receiver, rclient: redis.Redis
) -> None:
    procs.worker(CALLBACK_SECRET=SECRET)  # CALLBACK_ALLOW_PRIVATE unset: the guard is on
    job = submit(api, steps_job(steps=1, callback_url=receiver.url))
    state = callback_state(api, job["id"], 1)
    assert state["delivered"] is False and state["last_error"].startswith("refused: ")
    assert "loopback" in state["last_error"]
    [deliverer] = delivery_jobs(rclient)
    wait_for(lambda: deliverer.get_status(refresh=True) == "finished", 10, what="delivery job to end")
    assert receiver.deliveries == [] and view(api, job["id"])["callback"]["attempts"] == 1  # not retried


def test_failed_and_stopped_jobs_call_back_with_their_status(
    api: httpx.Client, procs: ProcessFactory, receiver: Receiver, rclient: redis.Redis, tmp_path: Path
) -> None:
    procs.worker(**WORKER_ENV)
    failing = submit(api, steps_job(steps=2, args={"fail_at": 2}, callback_url=receiver.url))
    [failed] = receiver.wait(1)
    assert failed.headers["X-Job-Id"] == failing["id"]
    body = failed.json()
    assert body["status"] == "failed" and body["result"] is None
    assert body["error"] == "DemoFailure: failing at step 2 as asked (attempt 1)"
    assert body["ended_at"] == view(api, failing["id"])["ended_at"] is not None

    running = submit(api, steps_job(steps=100, delay=0.2, callback_url=receiver.url))
    wait_status(api, running["id"], {"started"})
    send_stop_job_command(rclient, running["id"], serializer=SERIALIZER)
    stopped = receiver.wait(2)[1]
    assert stopped.headers["X-Job-Id"] == running["id"]
    assert signature.verify(stopped.body, stopped.headers["X-Signature"], SECRET)
    body = stopped.json()
    assert body["status"] == "stopped" and body["error"] == "stopped by request" and body["result"] is None
    assert view(api, running["id"])["status"] == "stopped"
