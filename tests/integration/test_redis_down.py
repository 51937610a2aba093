"""Redis unreachable: the web answers 503 problems quickly, writes nothing, and recovers on its own."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import redis

from core import keys
from stack.redis_server import EmbeddedRedis
from tests.factories import steps_job
from tests.integration.conftest import TEST_ENV
from tests.integration.test_security import KEYED, post
from tests.support.procs import ProcessFactory


def test_redis_down_is_a_fast_503_and_nothing_half_written(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "valkey").start()
    factory = ProcessFactory(server.url, tmp_path, TEST_ENV)
    try:
        _, url = factory.web()
        with httpx.Client(base_url=url, timeout=10) as api:
            assert api.post("/jobs", json=steps_job()).status_code == 202
            server.stop()

            for method, path in (("POST", "/jobs"), ("GET", "/jobs/abc"), ("GET", "/stats"), ("GET", "/readyz")):
                started = time.monotonic()
                response = api.request(method, path, json=steps_job() if method == "POST" else None)
                elapsed = time.monotonic() - started
                assert response.status_code == 503, (path, response.text)
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["title"] == "Service unavailable"
                assert "Traceback" not in response.text
                assert elapsed < 3, (path, elapsed)
            assert api.get("/healthz").status_code == 200

            server.start()
            client = redis.Redis.from_url(server.url)
            assert len(client.keys("rq:job:*")) == 1, "only the job accepted before the outage exists"
            assert client.zcard("jobsvc:index:all") == 1
            response = api.post("/jobs", json=steps_job())
            assert response.status_code == 202, response.text
            assert client.llen("rq:queue:default") == 2
            client.close()
    finally:
        factory.stop_all()
        server.stop()


def test_redis_full_refuses_submissions_with_a_503_that_changes_nothing_and_reads_still_work(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "valkey").start()
    factory = ProcessFactory(server.url, tmp_path, TEST_ENV)
    client = redis.Redis.from_url(server.url)
    try:
        _, url = factory.web()
        with httpx.Client(base_url=url, timeout=10) as api:
            queued = api.post("/jobs", json=steps_job())
            assert queued.status_code == 202, queued.text
            job_id = queued.json()["id"]
            client.config_set("maxmemory-policy", "noeviction")  # what the service asks of a server
            client.config_set("maxmemory", 1)
            before = {key: client.type(key) for key in client.keys("*")}

            response = api.post("/jobs", json=steps_job())
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert int(response.headers["retry-after"]) > 0
            problem = response.json()
            assert problem["type"] == "/problems/redis-full" and "maxmemory" in problem["detail"], problem
            assert {key: client.type(key) for key in client.keys("*")} == before, "nothing was written"

            status = api.get(f"/jobs/{job_id}")
            assert status.status_code == 200 and status.json()["status"] == "queued" and status.json()["position"] == 0
            assert api.get("/stats").json()["queues"]["default"]["queued"] == 1
            # Redis lets a script whose first write frees memory go on (the cancel script removes the job from its queue
            # first): a full server still takes cancels.
            canceled = api.delete(f"/jobs/{job_id}")
            assert canceled.status_code == 200 and canceled.json()["status"] == "canceled", canceled.text

            client.config_set("maxmemory", 0)
            assert api.post("/jobs", json=steps_job()).status_code == 202
            assert client.llen("rq:queue:default") == 1
    finally:
        client.close()
        factory.stop_all()
        server.stop()


def test_redis_full_refuses_a_submission_whole_even_when_its_quota_check_prunes_ended_jobs(tmp_path: Path) -> None:
    """The quota's pruning frees memory, which a full Redis allows as a script's first write, and then lets
    the rest of the script through: the submission script grows memory first, so it is refused whole."""
    server = EmbeddedRedis(tmp_path / "valkey").start()
    factory = ProcessFactory(server.url, tmp_path, TEST_ENV)
    client = redis.Redis.from_url(server.url)
    try:
        _, url = factory.web(**KEYED, MAX_ACTIVE_JOBS="5")
        ended = post(url, "alice")
        assert ended.status_code == 202, ended.text
        client.hset(f"rq:job:{ended.json()['id']}", "status", "finished")  # still in alice's active set
        assert client.scard(keys.active_for_owner("alice")) == 1
        client.config_set("maxmemory", 1)  # the embedded server runs with noeviction
        before = {key: client.type(key) for key in client.keys("*")}

        refused = post(url, "alice")
        assert refused.status_code == 503 and refused.json()["type"] == "/problems/redis-full", refused.text
        assert {key: client.type(key) for key in client.keys("*")} == before
        assert client.scard(keys.active_for_owner("alice")) == 1, "not even the pruning was applied"

        client.config_set("maxmemory", 0)
        assert post(url, "alice").status_code == 202
        assert client.scard(keys.active_for_owner("alice")) == 1  # the new job; the ended one pruned
    finally:
        client.close()
        factory.stop_all()
        server.stop()
