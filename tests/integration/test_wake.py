"""Idle `rq worker` processes, in both modes, wait on the wake-up channel and run what the service pushes."""

from __future__ import annotations

import httpx
import pytest
import redis

from core import keys
from tests.support.procs import ProcessFactory, wait_for


def listeners(client: redis.Redis) -> int:
    return int(dict(client.pubsub_numsub(keys.WAKE_CHANNEL)).get(keys.WAKE_CHANNEL.encode(), 0))


def wait_finished(api: httpx.Client, url: str) -> None:
    wait_for(lambda: api.get(url).json()["status"] == "finished", 15, what=f"{url} finished")


@pytest.mark.parametrize("concurrency", ["1", "20"], ids=["forking", "concurrent"])
def test_an_idle_worker_listens_for_pushes_and_runs_what_is_pushed(
    procs: ProcessFactory, rclient: redis.Redis, api: httpx.Client, concurrency: str
) -> None:
    worker = procs.worker(WORKER_CONCURRENCY=concurrency)
    wait_for(lambda: listeners(rclient) == 1, 15, what="the idle worker's subscription to the wake-up channel")

    for _ in range(3):
        response = api.post("/jobs", json={"type": "demo.noop"})
        assert response.status_code == 202, response.text
        wait_finished(api, response.headers["Location"])

    wait_for(lambda: listeners(rclient) == 1, 15, what="the worker, idle again, listening again")
    worker.stop()
    wait_for(lambda: listeners(rclient) == 0, 15, what="the stopped worker's subscription to close")
