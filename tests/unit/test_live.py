"""The event hub: one subscription, one shared read per announcement, fan-out to every listener of a job;
and the route's replay from the job hash, while the job runs and after it ended."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import fakeredis
import pytest
import redis
from pydantic import ValidationError
from rq import Queue
from rq.job import Job, JobStatus
from starlette.testclient import TestClient

from app.live import Batch, EventHub, Listener, Snapshot, State, changes, status_key
from app.store import JobRecord, JobStore
from core import events, keys
from core.clock import iso_z
from core.flow.limits import Limits
from core.queues import SERIALIZER
from core.rqadapter.claims import Claims
from core.settings import Settings, get_settings
from jobs import progress
from tests.support.sse import SSE
from tests.support.sse import events as sse_events
from tests.unit.conftest import app_client
from tests.unit.test_flow_claims import queue_keys


def test_keep_alive_is_at_most_15_seconds() -> None:
    assert Settings(redis_url="redis://unused:6379/0").sse_keepalive <= 15
    with pytest.raises(ValidationError):
        Settings(redis_url="redis://unused:6379/0", sse_keepalive=16)


def report(connection: redis.Redis, job: Job, message: str | None, percent: float = 1) -> None:
    """What `progress.report()` does in the job's worker."""
    progress.append_message(job.meta, message, percent)
    with connection.pipeline(transaction=True) as pipe:
        pipe.hset(job.key, "meta", job._serialize_meta())
        events.announce(pipe, job.id)
        pipe.execute()


def set_status(connection: redis.Redis, job: Job, status: JobStatus) -> None:
    """A status change, saved and announced (what the worker and lifecycle do)."""
    if status == JobStatus.STARTED:
        job.started_at = job.started_at or job.enqueued_at
    if status.value in events.FINAL_STATUSES:
        job.ended_at = job.started_at
    with connection.pipeline(transaction=True) as pipe:
        job.set_status(status, pipeline=pipe)
        job.save(pipeline=pipe, include_meta=False)
        events.add_status(pipe, job, status)
        pipe.execute()


async def next_batch(queue: asyncio.Queue[Batch]) -> Batch:
    return await asyncio.wait_for(queue.get(), 5)


def kinds(batch: Batch) -> list[tuple[str, int, Any]]:
    return [(e.kind, e.id, e.data.get("message", e.data.get("status"))) for e in batch.events]


@contextlib.asynccontextmanager
async def listening(
    fake_server: fakeredis.FakeServer, settings: Settings, job_id: str
) -> AsyncIterator[tuple[Listener, Snapshot]]:
    """A hub with one listener of `job_id`, ready after its snapshot (what the route does)."""
    aio = fakeredis.FakeAsyncRedis(server=fake_server)
    hub = EventHub(JobStore(settings, fakeredis.FakeRedis(server=fake_server), aio), settings)
    await hub.start()
    listener = hub.join(job_id)
    snapshot = await hub.snapshot(job_id, None)
    assert snapshot is not None
    hub.ready(listener, snapshot.state)
    try:
        yield listener, snapshot
    finally:
        hub.leave(listener)
        await hub.aclose()
        await aio.aclose()


def test_listeners_of_a_job_share_one_read_per_announcement(
    fake_server: fakeredis.FakeServer, settings: Settings
) -> None:
    sync = fakeredis.FakeRedis(server=fake_server)
    job = Queue("default", connection=sync, serializer=SERIALIZER).enqueue_call("jobs.builtin.demo.noop")
    report(sync, job, "before anyone listened")

    async def scenario() -> None:
        aio = fakeredis.FakeAsyncRedis(server=fake_server)
        hub = EventHub(JobStore(settings, sync, aio), settings)
        reads: list[str] = []
        read = hub.read

        async def counted(job_id: str) -> JobRecord | None:
            reads.append(job_id)
            return await read(job_id)

        hub.read = counted  # type: ignore[method-assign]
        await hub.start()
        first, second = hub.join(job.id), hub.join(job.id)
        snapshot = await hub.snapshot(job.id, None)
        assert snapshot is not None and snapshot.record.job.id == job.id and snapshot.seq == 1
        assert snapshot.replay == []
        hub.ready(first, snapshot.state)
        hub.ready(second, snapshot.state)
        await asyncio.sleep(0.1)  # the catch-up read after `ready` finds nothing new
        assert first.queue.empty() and second.queue.empty()
        reads.clear()

        report(sync, job, "live")
        one, two = await next_batch(first.queue), await next_batch(second.queue)
        assert kinds(one) == [("progress", 2, "live")] == kinds(two)
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


def test_a_status_change_comes_with_the_job_read(fake_server: fakeredis.FakeServer, settings: Settings) -> None:
    sync = fakeredis.FakeRedis(server=fake_server)
    job = Queue("default", connection=sync, serializer=SERIALIZER).enqueue_call("jobs.builtin.demo.noop")

    async def scenario() -> None:
        async with listening(fake_server, settings, job.id) as (listener, snapshot):
            assert snapshot.seq == 0 and snapshot.record.position == 0
            set_status(sync, job, JobStatus.STARTED)
            batch = await next_batch(listener.queue)
            assert kinds(batch) == [("status", 0, "started")]
            assert batch.record.job.get_status(refresh=False) == "started"

    asyncio.run(scenario())


def test_a_job_that_ends_while_listened_to_sends_what_is_left_then_its_final_status(
    fake_server: fakeredis.FakeServer, settings: Settings
) -> None:
    sync = fakeredis.FakeRedis(server=fake_server)
    job = Queue("default", connection=sync, serializer=SERIALIZER).enqueue_call("jobs.builtin.demo.noop")
    set_status(sync, job, JobStatus.STARTED)
    report(sync, job, "step 1/3", 33)

    async def scenario() -> None:
        async with listening(fake_server, settings, job.id) as (listener, _):
            progress.append_message(job.meta, "step 2/3", 66)  # not announced on its own: comes with the end
            report(sync, job, "step 3/3", 100)
            set_status(sync, job, JobStatus.FINISHED)
            seen: list[tuple[str, int, Any]] = []
            while not seen or seen[-1][0] != "status":
                seen += kinds(await next_batch(listener.queue))
        assert seen == [("progress", 2, "step 2/3"), ("progress", 3, "step 3/3"), ("status", 3, "finished")]
        assert not list(sync.scan_iter("jobsvc:events:*"))

    asyncio.run(scenario())


def change(job: Job, state: State) -> tuple[list[tuple[str, int, Any]], State]:
    found = changes(JobRecord(job, None, None), state)
    assert found is not None
    return kinds(found[0]), found[1]


def test_a_status_change_is_placed_among_the_new_progress_events(fake_redis: fakeredis.FakeRedis) -> None:
    job = Queue("default", connection=fake_redis, serializer=SERIALIZER).enqueue_call("jobs.builtin.demo.noop")
    queued = State(0, status_key(job))
    progress.append_message(job.meta, "requeued: worker died")  # before this attempt started
    assert job.enqueued_at is not None
    started_at = job.enqueued_at + timedelta(seconds=1)
    job.started_at = started_at
    job.set_status(JobStatus.STARTED)
    progress.append_message(job.meta, "step 1/2", 50)
    job.meta["messages"][-1]["time"] = iso_z(started_at + timedelta(milliseconds=5))
    seen, started = change(job, queued)
    assert seen == [("progress", 1, "requeued: worker died"), ("status", 1, "started"), ("progress", 2, "step 1/2")]
    assert started.seq == 2 and changes(JobRecord(job, None, None), started) is None

    # a retry: what the attempt reported comes before the job is queued again
    progress.append_message(job.meta, "attempt 1 ended: boom")
    job.set_status(JobStatus.QUEUED)
    seen, _ = change(job, started)
    assert seen == [("progress", 3, "attempt 1 ended: boom"), ("status", 3, "queued")]

    # the same status again (a new attempt started) is still a change
    job.set_status(JobStatus.STARTED)
    started_at += timedelta(seconds=2)
    job.started_at = started_at
    seen, restarted = change(job, started)
    assert seen == [("progress", 3, "attempt 1 ended: boom"), ("status", 3, "started")]

    # the end: everything reported comes before the final status, whatever the clocks say
    progress.append_message(job.meta, "step 2/2", 100)
    job.meta["messages"][-1]["time"] = iso_z(started_at - timedelta(seconds=5))
    job.set_status(JobStatus.FINISHED)
    job.ended_at = started_at
    seen, _ = change(job, restarted)
    assert seen == [("progress", 4, "step 2/2"), ("status", 4, "finished")]


# -- the route ----------------------------------------------------------------------------------


def ended_job(client: TestClient, connection: fakeredis.FakeRedis, reports: int) -> Job:
    job_id = client.post("/jobs", json={"type": "demo.noop"}).json()["id"]
    job = Job.fetch(job_id, connection=connection, serializer=SERIALIZER)
    set_status(connection, job, JobStatus.STARTED)
    for i in range(1, reports + 1):
        report(connection, job, f"step {i}/{reports}" if i != 2 else None, i * 100 / reports)
    set_status(connection, job, JobStatus.FAILED)
    return job


def stream(client: TestClient, job_id: str, **headers: str) -> list[SSE]:
    with client.stream("GET", f"/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        return list(sse_events(response))


def test_an_ended_job_streams_its_state_and_closes(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    job_id = client.post("/jobs", json={"type": "demo.noop"}).json()["id"]
    job = Job.fetch(job_id, connection=fake_redis, serializer=SERIALIZER)
    set_status(fake_redis, job, JobStatus.CANCELED)
    received = stream(client, job_id)
    assert [(e.event, e.data["status"]) for e in received] == [("status", "canceled")]
    assert received[0].id == "0"
    assert client.get("/jobs/nope/events").status_code == 404


def test_last_event_id_after_the_end_replays_from_the_job_hash(
    client: TestClient, fake_redis: fakeredis.FakeRedis
) -> None:
    job = ended_job(client, fake_redis, 5)
    [status] = stream(client, job.id)
    assert status.event == "status" and status.id == "5" and status.data["status"] == "failed"
    assert [m["message"] for m in status.data["messages"]] == ["step 1/5", "step 3/5", "step 4/5", "step 5/5"]

    resumed = stream(client, job.id, **{"Last-Event-ID": "1"})
    assert [(e.event, e.id) for e in resumed] == [("progress", "2"), ("progress", "3"), ("progress", "4"),
                                                  ("progress", "5"), ("status", "5")]  # fmt: skip
    assert [e.data["message"] for e in resumed[:-1]] == [None, "step 3/5", "step 4/5", "step 5/5"]
    assert [e.data["progress"] for e in resumed[:-1]] == [40, 60, 80, 100]
    assert resumed[-1].data == status.data == client.get(f"/jobs/{job.id}").json()

    assert [e.event for e in stream(client, job.id, **{"Last-Event-ID": "5"})] == ["status"]
    by_query = client.stream("GET", f"/jobs/{job.id}/events?last_event_id=3")
    with by_query as response:
        assert [e.id for e in sse_events(response)] == ["4", "5", "5"]
    # a stream id from before events were numbered: the current state only, no replay
    assert [e.event for e in stream(client, job.id, **{"Last-Event-ID": "1795423504172-0"})] == ["status"]
    bad = client.get(f"/jobs/{job.id}/events", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 422


def test_replay_after_the_end_is_capped_like_the_messages(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    cap = get_settings().progress_max_messages
    job = ended_job(client, fake_redis, cap + 10)
    resumed = stream(client, job.id, **{"Last-Event-ID": "2"})
    # events 3..10 fell off the cap: the replay is everything kept, none repeated, then the final status
    assert [e.id for e in resumed] == [*(str(i) for i in range(11, cap + 11)), str(cap + 10)]
    assert resumed[-1].event == "status" and resumed[-1].data["status"] == "failed"


def test_a_client_connected_when_the_job_ends_gets_the_rest_then_the_stream_closes(
    client: TestClient, fake_redis: fakeredis.FakeRedis
) -> None:
    job_id = client.post("/jobs", json={"type": "demo.noop"}).json()["id"]
    job = Job.fetch(job_id, connection=fake_redis, serializer=SERIALIZER)
    set_status(fake_redis, job, JobStatus.STARTED)
    report(fake_redis, job, "step 1/3", 33)
    received: list[SSE] = []
    with client.stream("GET", f"/jobs/{job_id}/events") as response:
        for event in sse_events(response):
            received.append(event)
            if len(received) == 1:  # connected: the job reports twice more and ends
                report(fake_redis, job, "step 2/3", 66)
                report(fake_redis, job, "step 3/3", 100)
                set_status(fake_redis, job, JobStatus.FINISHED)
    assert [(e.event, e.id) for e in received] == [("status", "1"), ("progress", "2"), ("progress", "3"),
                                                   ("status", "3")]  # fmt: skip
    assert received[0].data["status"] == "started" and received[-1].data["status"] == "finished"
    assert [e.data["message"] for e in received[1:3]] == ["step 2/3", "step 3/3"]


def test_a_status_event_of_a_queued_job_says_why_a_limit_holds_it_back(fake_server: fakeredis.FakeServer) -> None:
    sync = fakeredis.FakeRedis(server=fake_server)
    with app_client(fake_server, type_concurrency="demo.sleep=1") as client:
        body = {"type": "demo.sleep", "args": {"seconds": 1}}
        _, held = (client.post("/jobs", json=body).json()["id"] for _ in range(2))
        Claims(sync, Limits(concurrency={"demo.sleep": 1})).claim_many(queue_keys(), "w1", 10)  # takes the first
        waiting = client.get(f"/jobs/{held}").json()["waiting"]
        assert waiting == "demo.sleep: 1 of 1 running"
        job = Job.fetch(held, connection=sync, serializer=SERIALIZER)
        received: list[SSE] = []
        with client.stream("GET", f"/jobs/{held}/events") as response:
            for event in sse_events(response):
                received.append(event)
                # one change per event received, so that no read sees two of them at once
                next_status = {1: JobStatus.SCHEDULED, 2: JobStatus.QUEUED, 3: JobStatus.CANCELED}
                if len(received) in next_status:
                    set_status(sync, job, next_status[len(received)])
        assert [(e.data["status"], e.data["waiting"]) for e in received] == [
            ("queued", waiting),  # the snapshot's status event
            ("scheduled", None),
            ("queued", waiting),  # a live one
            ("canceled", None),
        ]


def test_the_web_can_announce_on_its_asyncio_pipeline(fake_server: fakeredis.FakeServer) -> None:
    """What a web-side status change (e.g. a cancel) does: the same command, on redis.asyncio."""
    sync = fakeredis.FakeRedis(server=fake_server)
    job = Queue("default", connection=sync, serializer=SERIALIZER).enqueue_call("jobs.builtin.demo.noop")
    pubsub = sync.pubsub()  # type: ignore[no-untyped-call]  # unannotated in redis-py
    pubsub.subscribe(keys.EVENTS_CHANNEL)

    async def scenario() -> None:
        aio = fakeredis.FakeAsyncRedis(server=fake_server)
        async with aio.pipeline(transaction=True) as pipe:
            events.add_status(pipe, job, "canceled")
            await pipe.execute()
        await aio.aclose()

    asyncio.run(scenario())
    published = [m["data"] for m in iter(pubsub.get_message, None) if m["type"] == "message"]
    assert published == [job.id.encode()]
