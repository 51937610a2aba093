"""The event hub: one subscription, one shared read per announcement, fan-out to every listener of a job."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest
import redis
from pydantic import ValidationError
from rq import Queue
from rq.job import Job
from starlette.testclient import TestClient

from app.live import Batch, EventHub
from app.store import JobStore
from jobs import events
from jobs.queues import SERIALIZER
from jobs.settings import Settings
from tests.support.sse import SSE
from tests.support.sse import events as sse_events


def test_keep_alive_is_at_most_15_seconds() -> None:
    assert Settings(redis_url="redis://unused:6379/0").sse_keepalive <= 15
    with pytest.raises(ValidationError):
        Settings(redis_url="redis://unused:6379/0", sse_keepalive=16)


def progress(connection: redis.Redis, job: Job, message: str) -> None:
    with connection.pipeline(transaction=True) as pipe:
        events.add_progress(pipe, job, {"progress": 1, "message": message, "time": "t"})
        pipe.execute()


async def next_batch(queue: asyncio.Queue[Batch]) -> Batch:
    return await asyncio.wait_for(queue.get(), 5)


def test_listeners_of_a_job_share_one_read_per_announcement(
    fake_server: fakeredis.FakeServer, settings: Settings
) -> None:
    sync = fakeredis.FakeRedis(server=fake_server)
    job = Queue("default", connection=sync, serializer=SERIALIZER).enqueue_call("jobs.demo.noop")
    progress(sync, job, "before anyone listened")

    async def scenario() -> None:
        aio = fakeredis.FakeAsyncRedis(server=fake_server)
        hub = EventHub(JobStore(settings, sync, aio), settings)
        reads: list[str] = []
        xrange = aio.xrange

        async def counted(*args: Any, **kwargs: Any) -> Any:
            reads.append(args[0])
            return await xrange(*args, **kwargs)

        aio.xrange = counted  # type: ignore[method-assign]
        await hub.start()
        first, second = hub.join(job.id), hub.join(job.id)
        snapshot = await hub.snapshot(job.id, None)
        assert snapshot is not None and snapshot.record.job.id == job.id and snapshot.last_id is not None
        hub.ready(first, snapshot.cursor)
        hub.ready(second, snapshot.cursor)
        await asyncio.sleep(0.1)  # the catch-up read after `ready` finds nothing new
        assert first.queue.empty() and second.queue.empty()
        reads.clear()

        progress(sync, job, "live")
        one, two = await next_batch(first.queue), await next_batch(second.queue)
        assert [e.data["message"] for e in one.events] == ["live"] == [e.data["message"] for e in two.events]
        assert one.record is None  # progress only: the job itself is not read
        assert len(reads) == 1, reads

        other = hub.join("another-job")
        assert hub.listener_count == 3
        hub.leave(first)
        hub.leave(second)
        hub.leave(other)
        assert hub.listener_count == 0
        await hub.aclose()
        await aio.aclose()

    asyncio.run(scenario())


def test_a_status_change_comes_with_the_job_read_in_the_same_transaction(
    fake_server: fakeredis.FakeServer, settings: Settings
) -> None:
    sync = fakeredis.FakeRedis(server=fake_server)
    job = Queue("default", connection=sync, serializer=SERIALIZER).enqueue_call("jobs.demo.noop")

    async def scenario() -> None:
        aio = fakeredis.FakeAsyncRedis(server=fake_server)
        hub = EventHub(JobStore(settings, sync, aio), settings)
        await hub.start()
        listener = hub.join(job.id)
        snapshot = await hub.snapshot(job.id, None)
        assert snapshot is not None and snapshot.last_id is None and snapshot.record.position == 0
        hub.ready(listener, snapshot.cursor)
        job.set_status("started")
        with sync.pipeline(transaction=True) as pipe:
            events.add_status(pipe, job, "started")
            pipe.execute()
        batch = await next_batch(listener.queue)
        assert [e.data for e in batch.events] == [{"status": "started"}]
        assert batch.record is not None and batch.record.job.get_status(refresh=False) == "started"
        hub.leave(listener)
        await hub.aclose()
        await aio.aclose()

    asyncio.run(scenario())


def test_an_ended_job_streams_its_state_and_closes(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    job_id = client.post("/jobs", json={"type": "demo.noop"}).json()["id"]
    job = Job.fetch(job_id, connection=fake_redis, serializer=SERIALIZER)
    job.set_status("canceled")
    with fake_redis.pipeline(transaction=True) as pipe:
        events.add_status(pipe, job, "canceled")
        pipe.execute()
    with client.stream("GET", f"/jobs/{job_id}/events") as response:
        assert response.status_code == 200
        received: list[SSE] = list(sse_events(response))
    assert [(e.event, e.data["status"]) for e in received] == [("status", "canceled")]
    assert received[0].id is not None
    assert client.get("/jobs/nope/events").status_code == 404


def test_the_web_can_announce_on_its_asyncio_pipeline(fake_server: fakeredis.FakeServer) -> None:
    """What a web-side status change (e.g. a cancel) does: the same commands, on redis.asyncio."""
    sync = fakeredis.FakeRedis(server=fake_server)
    job = Queue("default", connection=sync, serializer=SERIALIZER).enqueue_call("jobs.demo.noop")

    async def scenario() -> None:
        aio = fakeredis.FakeAsyncRedis(server=fake_server)
        async with aio.pipeline(transaction=True) as pipe:
            events.add_status(pipe, job, "canceled")
            await pipe.execute()
        await aio.aclose()

    asyncio.run(scenario())
    [event] = events.decode(sync.xrange(f"jobsvc:events:{job.id}"))
    assert event.kind == "status" and event.data == {"status": "canceled"}
