"""`JobStore` reads that the routes share."""

from __future__ import annotations

import asyncio

import fakeredis
from rq.worker_registration import REDIS_WORKER_KEYS

from app.store import JobStore
from core.settings import Settings


def test_a_worker_counts_from_its_registration_before_it_sets_a_state() -> None:
    """RQ registers a worker (hash with `birth`, set membership) before its first `state` write."""
    server = fakeredis.FakeServer()
    sync = fakeredis.FakeRedis(server=server)
    store = JobStore(Settings(redis_url="redis://unused:6379/0"), sync, fakeredis.FakeAsyncRedis(server=server))
    sync.hset("rq:worker:new", "birth", "2026-11-23T08:00:00.000000Z")
    sync.hset("rq:worker:busy", mapping={"birth": "2026-11-23T08:00:00.000000Z", "state": "busy"})
    sync.sadd(REDIS_WORKER_KEYS, "rq:worker:new", "rq:worker:busy", "rq:worker:gone")  # `gone`: hash expired
    assert asyncio.run(store.workers()) == {"count": 2, "busy": 1}
