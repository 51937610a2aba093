"""The service's side of the workloads: its own submission path in-process (what `POST /jobs` runs once
the body is parsed), `POST /jobs` over HTTP, and a client that sees a job finish the way the web process
does (its announcement on the events channel, then the job's status)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rq.job import Job

from app.store import JobStore
from app.submission import parse_submission
from bench import data, load
from bench.common import Bench
from bench.peers.driver import SLEEP, WARM_UP
from core import keys
from core.connection import async_redis, sync_redis
from core.settings import Settings
from jobs.catalog import registry

BODIES: dict[str, dict[str, Any]] = {
    "noop": {"type": "demo.noop"},
    "sleep": {"type": "demo.sleep", "args": {"seconds": SLEEP, "mode": "async"}},
}
FINISHED = b"finished"


class ServiceClient:
    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.settings = Settings(redis_url=bench.url)

    def fill(self, kind: str, count: int) -> None:
        data.submit(self.bench, count, BODIES[kind])

    def submit_rate(self, count: int) -> float:
        """Jobs/s of sequential in-process submissions (parse, build, one EVALSHA), one at a time."""

        async def run() -> float:
            store = await self._store()
            submission = parse_submission(BODIES["noop"], registry, self.settings)
            for _ in range(WARM_UP):
                await data._enqueue(store, submission)
            started = time.perf_counter()
            for _ in range(count):
                await data._enqueue(store, submission)
            elapsed = time.perf_counter() - started
            await self._close(store)
            return count / elapsed

        return asyncio.run(run())

    def latencies(self, count: int) -> list[float]:
        """Milliseconds from submitting a no-op (in-process) to seeing it finished: the client listens on the
        events channel, as the web process does for `GET /jobs/{id}/events`, and reads the job's status on
        each announcement of it."""

        async def run() -> list[float]:
            store = await self._store()
            submission = parse_submission(BODIES["noop"], registry, self.settings)
            pubsub = store.aio.pubsub()
            await pubsub.subscribe(keys.EVENTS_CHANNEL)
            await pubsub.get_message(timeout=1)  # the subscription's confirmation
            samples = []
            for i in range(WARM_UP + count):
                started = time.perf_counter()
                job = await data._enqueue(store, submission)
                await _until_finished(store, pubsub, job)
                if i >= WARM_UP:
                    samples.append((time.perf_counter() - started) * 1000)
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await self._close(store)
            return samples

        return asyncio.run(run())

    async def _store(self) -> JobStore:
        store = JobStore(self.settings, sync_redis(self.settings), async_redis(self.settings))
        await store.warm_up()
        return store

    @staticmethod
    async def _close(store: JobStore) -> None:
        await store.aio.aclose()
        store.sync.close()


async def _until_finished(store: JobStore, pubsub: Any, job: Job) -> None:
    key = job.id.encode()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        if message and message["data"] == key and await store.aio.hget(job.key, "status") == FINISHED:
            return
    raise TimeoutError(f"job {job.id} not seen finished within 30 s")


def web_submit_rate(url: str, seconds: float) -> float:
    """Jobs/s of `POST /jobs` from one client on one keep-alive connection, one request at a time."""
    body = b'{"type": "demo.noop"}'
    return load.run(f"{url}/jobs", seconds=seconds, connections=1, method="POST", body=body).rps
