"""Result reuse (`cache_ttl`) against the real stack: two web processes (the Procfile's line) and a real
`rq worker` on one valkey. Identical requests racing on both web processes make one job; a finished job
is reused while fresh and replaced after; a failed one never is; `jobsvc submit --cache-ttl` says so."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest
import redis

from tests.integration.test_cli import jobsvc
from tests.support.procs import ROOT, ProcessFactory, wait_for

RACERS = 40


@pytest.fixture
def urls(procs: ProcessFactory) -> Iterator[list[str]]:
    """Two web processes and a worker on the same Redis."""
    web_urls = [procs.web()[1], procs.web()[1]]
    procs.worker()
    yield web_urls


def job_hashes(rclient: redis.Redis) -> list[bytes]:
    return [key for key in rclient.scan_iter("rq:job:*") if key.count(b":") == 2]


def ended(api: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job's view once it ended (bounded wait)."""
    view: dict[str, Any] = {}

    def done() -> bool:
        view.update(api.get(f"/jobs/{job_id}").json())
        return view["status"] in ("finished", "failed", "stopped", "canceled")

    wait_for(done, 30, what=f"job {job_id} to end")
    return view


def test_identical_requests_racing_on_two_web_processes_make_one_job(urls: list[str], rclient: redis.Redis) -> None:
    payload = {"type": "demo.steps", "args": {"steps": 2, "delay": 0.2}, "cache_ttl": 300}
    start = threading.Barrier(RACERS)

    def post(i: int) -> httpx.Response:
        with httpx.Client(base_url=urls[i % 2], timeout=15) as client:
            start.wait()
            return client.post("/jobs", json=payload)

    with ThreadPoolExecutor(RACERS) as pool:
        responses = list(pool.map(post, range(RACERS)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * (RACERS - 1) + [202], [r.text for r in responses if r.status_code not in (200, 202)]
    [job_id] = {response.json()["id"] for response in responses}
    assert {response.headers["location"] for response in responses} == {f"/jobs/{job_id}"}
    [created] = [response for response in responses if response.status_code == 202]
    assert created.headers["cache-status"] == "jobsvc; fwd=miss"
    assert all(r.headers["cache-status"].startswith("jobsvc; hit") for r in responses if r.status_code == 200)
    assert job_hashes(rclient) == [f"rq:job:{job_id}".encode()]
    assert rclient.zcard("jobsvc:index:all") == 1
    with httpx.Client(base_url=urls[0], timeout=15) as api:
        assert ended(api, job_id)["status"] == "finished"


def test_a_finished_job_is_reused_within_cache_ttl_and_replaced_after(urls: list[str]) -> None:
    cache_ttl = 3
    payload = {"type": "demo.steps", "args": {"steps": 1, "delay": 0}, "cache_ttl": cache_ttl}
    with httpx.Client(base_url=urls[0], timeout=15) as first_web, httpx.Client(base_url=urls[1], timeout=15) as other:
        first = first_web.post("/jobs", json=payload)
        assert first.status_code == 202 and first.headers["cache-status"] == "jobsvc; fwd=miss"
        job_id = first.json()["id"]
        view = ended(first_web, job_id)
        assert view["status"] == "finished"
        finished_at = datetime.fromisoformat(view["ended_at"].replace("Z", "+00:00")).timestamp()

        again = other.post("/jobs", json=payload)  # the other web process: what it finds is in Redis
        if time.time() - finished_at < cache_ttl - 0.5:  # still fresh when asked (a slow machine may be late)
            assert again.status_code == 200, again.text
            assert again.json()["id"] == job_id and again.json()["result"] == {"steps": 1, "attempt": 1}
            assert again.headers["cache-status"].startswith("jobsvc; hit; ttl=")
            assert again.headers["location"] == f"/jobs/{job_id}"
        wait_for(lambda: time.time() > finished_at + cache_ttl + 0.2, cache_ttl + 5, what="the result to go stale")
        later = first_web.post("/jobs", json=payload)
        assert later.status_code == 202 and later.headers["cache-status"] == "jobsvc; fwd=miss"
        assert later.json()["id"] != job_id


def test_a_finished_job_is_reused_with_a_long_cache_ttl(urls: list[str]) -> None:
    payload = {"type": "demo.steps", "args": {"steps": 1, "delay": 0}, "cache_ttl": 600}
    with httpx.Client(base_url=urls[0], timeout=15) as api:
        job_id = api.post("/jobs", json=payload).json()["id"]
        assert ended(api, job_id)["status"] == "finished"
        again = api.post("/jobs", json=payload)
        assert again.status_code == 200 and again.json()["id"] == job_id
        ttl = int(again.headers["cache-status"].rsplit("ttl=", 1)[1])
        assert 590 <= ttl <= 600


def test_a_failed_job_is_never_reused(urls: list[str], rclient: redis.Redis) -> None:
    payload = {"type": "demo.steps", "args": {"steps": 1, "delay": 0, "fail_at": 1}, "cache_ttl": 600}
    with httpx.Client(base_url=urls[1], timeout=15) as api:
        job_id = api.post("/jobs", json=payload).json()["id"]
        assert ended(api, job_id)["status"] == "failed"
        again = api.post("/jobs", json=payload)
        assert again.status_code == 202 and again.headers["cache-status"] == "jobsvc; fwd=miss"
        assert again.json()["id"] != job_id
    assert len(job_hashes(rclient)) == 2


def test_jobsvc_submit_with_cache_ttl_says_it_reused_the_job(urls: list[str]) -> None:
    args = ("submit", "demo.steps", "--arg", "steps=1", "--arg", "delay=0", "--cache-ttl", "600")
    client_path = str(ROOT / "client")  # this checkout's client, whatever the venv has installed
    first = jobsvc(*args, url=urls[0], PYTHONPATH=client_path)
    assert first.returncode == 0, first.stderr
    job_id = first.stdout.strip()
    assert "reused" not in first.stderr
    second = jobsvc(*args, "--wait", url=urls[1], PYTHONPATH=client_path)
    assert second.returncode == 0, second.stderr
    assert f"reused job {job_id}" in second.stderr
    assert '"attempt": 1' in second.stdout  # --wait followed the reused job to its result
