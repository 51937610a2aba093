"""Batches with a real web process, real `rq worker` processes and a real callback receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from core import keys, signature
from tests.factories import noop_job, steps_job
from tests.integration.test_callbacks import SECRET, WORKER_ENV, Receiver, loopback_web, receiver  # noqa: F401
from tests.support.procs import ProcessFactory, wait_for
from tests.support.sse import SSE, events

#: Recovery bound of the workers killed below (short, so the test is quick).
ABANDONED_JOB_TIMEOUT = "6"


@pytest.fixture
def api(loopback_web: str, redis_url: str) -> Iterator[httpx.Client]:  # noqa: F811 (the imported fixture)
    """A client of this module's web process that accepts loopback callback URLs."""
    with httpx.Client(base_url=loopback_web, timeout=30) as client:
        yield client


def submit(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/batches", json=body)
    assert response.status_code == 202, response.text
    batch: dict[str, Any] = response.json()
    return batch


def batch_view(api: httpx.Client, batch_id: str) -> dict[str, Any]:
    response = api.get(f"/batches/{batch_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def wait_ended(api: httpx.Client, batch_id: str, timeout: float) -> dict[str, Any]:
    wait_for(lambda: batch_view(api, batch_id)["ended_at"] is not None, timeout, interval=0.2, what="the batch's end")
    return batch_view(api, batch_id)


def wait_job(api: httpx.Client, job_id: str, timeout: float = 30) -> dict[str, Any]:
    def ended() -> bool:
        return bool(api.get(f"/jobs/{job_id}").json()["status"] in ("finished", "failed"))

    wait_for(ended, timeout, what=f"job {job_id} to end")
    job: dict[str, Any] = api.get(f"/jobs/{job_id}").json()
    return job


def follow(api: httpx.Client, batch_id: str) -> tuple[threading.Thread, list[SSE]]:
    """Read the batch's event stream in a thread until it closes."""
    received: list[SSE] = []

    def read() -> None:
        with api.stream("GET", f"/batches/{batch_id}/events", timeout=180) as response:
            received.extend(events(response))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, received


def assert_one_end(rclient: redis.Redis, ended: dict[str, Any]) -> None:
    """One batch ended, once; its on_complete job is the only `demo.batch_report` ever queued."""
    assert sum(int(n) for n in rclient.hvals(keys.BATCHES_ENDED)) == 1
    assert rclient.zcard(keys.index_for_type("demo.batch_report")) == 1
    assert rclient.zscore(keys.index_for_type("demo.batch_report"), ended["on_complete_job_id"]) is not None


def test_a_thousand_members_some_failing_end_failed_once_with_one_callback(
    api: httpx.Client,
    procs: ProcessFactory,
    receiver: Receiver,  # noqa: F811
    rclient: redis.Redis,
) -> None:
    failing = set(range(0, 1000, 20))  # 50 members fail
    jobs = [steps_job(1, args={"fail_at": 1}) if i in failing else noop_job() for i in range(1000)]
    body = {"jobs": jobs, "on_complete": {"type": "demo.batch_report"}, "callback_url": receiver.url}
    batch = submit(api, body)
    assert batch["total"] == 1000 and batch["counts"]["queued"] == 1000
    thread, received = follow(api, batch["id"])
    for _ in range(2):
        procs.worker(**WORKER_ENV)

    ended = wait_ended(api, batch["id"], timeout=120)
    assert ended["status"] == "failed"
    assert {status: n for status, n in ended["counts"].items() if n} == {"finished": 950, "failed": 50}
    report = wait_job(api, ended["on_complete_job_id"])
    assert report["result"] == {"total": 1000, "finished": 950, "failed": 50}
    assert_one_end(rclient, ended)

    [delivery] = receiver.wait(1)
    assert signature.verify(delivery.body, delivery.headers["X-Signature"], SECRET)
    assert delivery.headers["X-Job-Id"] == batch["id"]
    sent = delivery.json()
    assert (sent["id"], sent["status"], sent["counts"]["failed"]) == (batch["id"], "failed", 50)
    wait_for(lambda: batch_view(api, batch["id"])["callback"]["delivered"], 30, what="the delivery recorded")
    assert len(receiver.deliveries) == 1

    thread.join(30)
    assert not thread.is_alive()
    assert received[0].event == "status" and received[-1].event == "status"
    assert received[-1].data["status"] == "failed" and received[-1].data["counts"]["finished"] == 950
    progress = [event for event in received if event.event == "progress"]
    assert progress and all(set(event.data) == {"progress", "counts"} for event in progress)

    members = api.get(f"/batches/{batch['id']}/jobs", params={"limit": 200}).json()
    assert len(members["jobs"]) == 200 and members["next_cursor"]
    assert {job["batch_id"] for job in members["jobs"]} == {batch["id"]}


def test_a_batch_canceled_midway_ends_canceled_once(
    api: httpx.Client, procs: ProcessFactory, rclient: redis.Redis
) -> None:
    jobs = [steps_job(4, delay=0.1) for _ in range(200)]
    batch = submit(api, {"jobs": jobs, "on_complete": {"type": "demo.batch_report"}})
    procs.worker(WORKER_CONCURRENCY="4")
    wait_for(lambda: batch_view(api, batch["id"])["counts"]["finished"] >= 5, 60, what="a few members finished")

    response = api.delete(f"/batches/{batch['id']}")
    assert response.status_code == 202 and response.json()["status"] == "canceled"
    ended = wait_ended(api, batch["id"], timeout=60)
    counts = ended["counts"]
    assert ended["status"] == "canceled"
    assert counts["finished"] + counts["stopped"] + counts["canceled"] == 200
    assert counts["canceled"] > 100 and counts["finished"] >= 5
    report = wait_job(api, ended["on_complete_job_id"])
    assert report["result"]["total"] == 200 and report["result"]["finished"] == counts["finished"]
    assert_one_end(rclient, ended)
    assert api.delete(f"/batches/{batch['id']}").status_code == 409


def start_worker(procs: ProcessFactory, concurrency: str) -> Any:
    return procs.worker(WORKER_CONCURRENCY=concurrency, ABANDONED_JOB_TIMEOUT=ABANDONED_JOB_TIMEOUT)


def wait_for_more_finished(api: httpx.Client, batch_id: str) -> None:
    before = batch_view(api, batch_id)["counts"]["finished"]
    wait_for(lambda: batch_view(api, batch_id)["counts"]["finished"] > before, 60, what="members finishing")


def test_workers_sigkilled_during_a_batch_still_end_it_once(
    api: httpx.Client, procs: ProcessFactory, rclient: redis.Redis
) -> None:
    jobs = [steps_job(2, delay=0.05, retries=3) for _ in range(300)]
    batch = submit(api, {"jobs": jobs, "on_complete": {"type": "demo.batch_report"}})
    workers = [start_worker(procs, "8"), start_worker(procs, "1")]
    for round_ in range(3):
        wait_for_more_finished(api, batch["id"])
        workers.pop(0).kill_group()
        workers.append(start_worker(procs, "8" if round_ % 2 else "1"))

    ended = wait_ended(api, batch["id"], timeout=120)
    assert ended["status"] == "finished", ended
    assert ended["counts"]["finished"] == 300 and sum(ended["counts"].values()) == 300
    report = wait_job(api, ended["on_complete_job_id"])
    assert report["result"] == {"total": 300, "finished": 300, "failed": 0}
    assert_one_end(rclient, ended)
