"""Redis unreachable: the web answers 503 problems quickly, writes nothing, and recovers on its own."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import redis

from stack.redis_server import EmbeddedRedis
from tests.factories import steps_job
from tests.integration.conftest import TEST_ENV
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
