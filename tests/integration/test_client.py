"""The Python client (sync and asyncio) against the real stack: the Procfile's uvicorn web line, real
`rq worker` processes, a real valkey-server. `wait()` follows the real SSE stream (GET /jobs/{id}/events);
a recording transport proves it never fell back to polling. Typed errors come from the real server:
422/404 from validation and lookups, 401 and 429 from a web process with API_KEYS and RATE_LIMIT set,
409 from a second cancel, 503 with Redis stopped; a killed and restarted web process drops the stream.
What the real server cannot produce on demand (no /events route, a stream dropped after exactly N events
to check the Last-Event-ID sent, 429/503 on reads) stays on the contract server in
tests/unit/test_client_contract.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jobs_client import (
    AsyncJobsClient,
    Conflict,
    JobsClient,
    NotFound,
    OutputChunk,
    ProgressEvent,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    ValidationError,
    WaitTimeout,
)

from stack.redis_server import EmbeddedRedis, free_port
from tests.integration.conftest import TEST_ENV
from tests.support.procs import ProcessFactory, wait_for
from tests.support.recording import AsyncRecordingTransport, Recorder, RecordingTransport
from tests.support.texts import CAST, conversation, generated_novel, lighthouse

#: Keys of the secured web process; RATE_LIMIT counts submissions per key (Redis is flushed per test).
KEYS = {"alice": "alice-key-0123456789", "bob": "bob-key-0123456789"}
RATE = 3


@pytest.fixture(scope="module")
def secured_url(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One web process for this module with API keys and a submission rate limit."""
    factory = ProcessFactory(redis_server_url, tmp_path_factory.mktemp("secured-web"), TEST_ENV)
    try:
        _, url = factory.web(
            API_KEYS=",".join(f"{name}={key}" for name, key in KEYS.items()), RATE_LIMIT=f"{RATE}/minute"
        )
        yield url
    finally:
        factory.stop_all()


def test_sync_wait_follows_the_real_stream_with_progress_in_order(
    web_url: str, redis_url: str, procs: ProcessFactory
) -> None:
    procs.worker()
    events: list[ProgressEvent] = []
    recorder = Recorder()
    with JobsClient(web_url, transport=RecordingTransport(recorder)) as client:
        job = client.submit("demo.steps", {"steps": 5, "delay": 0.2}, queue="high", description="client test")
        assert job.status == "queued" and job.queue == "high"
        done = client.wait(job.id, timeout=60, on_progress=events.append)
    assert done.status == "finished" and done.result == {"steps": 5, "attempt": 1}
    assert [e.message for e in events] == [f"step {i}/5" for i in range(1, 6)]
    assert [e.progress for e in events] == [20, 40, 60, 80, 100]
    assert all(e.time is not None for e in events)
    assert done.description == "client test" and done.ended_at is not None
    assert recorder.job_gets(job.id) == [f"/jobs/{job.id}/events"], "one stream, no polling"
    (stream,) = [r for r in recorder.requests if r.url.path.endswith("/events")]
    assert stream.headers["accept"] == "text/event-stream"


def test_wait_resumes_the_stream_across_a_web_restart(redis_url: str, procs: ProcessFactory) -> None:
    """The web process dies mid-job (SIGKILL: the stream drops) and comes back on the same port after
    5 s: `wait()` keeps reconnecting to /events with Last-Event-ID, never falls back to polling, and
    reports every step exactly once, in order."""
    procs.worker()
    port = free_port()
    web, url = procs.web(port)
    events: list[ProgressEvent] = []
    recorder = Recorder()
    down = threading.Event()

    def restart() -> None:
        wait_for(lambda: len(events) >= 3, 30, what="three progress reports")
        web.kill_group()
        down.set()
        time.sleep(5)
        procs.web(port)

    with JobsClient(url, transport=RecordingTransport(recorder)) as client:
        job = client.submit("demo.steps", {"steps": 50, "delay": 0.15})
        restarter = threading.Thread(target=restart)
        restarter.start()
        try:
            done = client.wait(job.id, timeout=90, on_progress=events.append)
        finally:
            restarter.join()
    assert down.is_set() and done.status == "finished"
    assert [e.message for e in events] == [f"step {i}/50" for i in range(1, 51)]
    streams = [r for r in recorder.requests if r.url.path == f"/jobs/{job.id}/events"]
    assert recorder.job_gets(job.id) == [f"/jobs/{job.id}/events"] * len(streams), "no polling"
    assert len(streams) >= 3 and all("last-event-id" in r.headers for r in streams[1:])


def test_async_gather_follows_one_stream_per_job(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    procs.worker()
    procs.worker()
    recorder = Recorder()
    sizes = (2, 3, 4, 2, 3, 4)

    async def main() -> list[tuple[str, str, list[str]]]:
        async with AsyncJobsClient(web_url, transport=AsyncRecordingTransport(recorder)) as client:

            async def run(steps: int) -> tuple[str, str, list[str]]:
                seen: list[str] = []
                job = await client.submit("demo.steps", {"steps": steps, "delay": 0.1})
                done = await client.wait(job.id, timeout=60, on_progress=lambda e: seen.append(e.message or ""))
                return job.id, done.status, seen

            return await asyncio.gather(*(run(n) for n in sizes))

    results = asyncio.run(main())
    assert [(status, seen) for _, status, seen in results] == [
        ("finished", [f"step {i}/{n}" for i in range(1, n + 1)]) for n in sizes
    ]
    for job_id, _, _ in results:
        assert recorder.job_gets(job_id) == [f"/jobs/{job_id}/events"], "one stream per job, no polling"


def test_typed_errors_422_and_404(web_url: str, redis_url: str) -> None:
    with JobsClient(web_url) as client:
        with pytest.raises(ValidationError) as invalid:
            client.submit("demo.steps", {"steps": 0})
        assert invalid.value.status == 422 and list(invalid.value.fields) == ["args.steps"]
        assert invalid.value.problem["errors"][0]["loc"] == ["args", "steps"]
        with pytest.raises(ValidationError) as unknown:
            client.submit("no.such.type")
        assert list(unknown.value.fields) == ["type"]
        with pytest.raises(NotFound) as missing:
            client.get("0123456789abcdef")
        assert missing.value.status == 404 and missing.value.title == "Not found"
        for call in (client.cancel, lambda i: client.wait(i, timeout=10)):
            with pytest.raises(NotFound):
                call("0123456789abcdef")


def test_async_typed_errors_422_and_404(web_url: str, redis_url: str) -> None:
    async def main() -> None:
        async with AsyncJobsClient(web_url) as client:
            with pytest.raises(ValidationError) as invalid:
                await client.submit("demo.steps", {"steps": "many"})
            assert list(invalid.value.fields) == ["args.steps"]
            with pytest.raises(NotFound):
                await client.get("0123456789abcdef")
            with pytest.raises(NotFound):
                await client.wait("0123456789abcdef", timeout=10)

    asyncio.run(main())


def test_typed_error_503_when_redis_is_down(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "valkey").start()
    factory = ProcessFactory(server.url, tmp_path, TEST_ENV)
    try:
        _, url = factory.web()
        server.stop()
        with JobsClient(url) as client:
            with pytest.raises(ServiceUnavailable) as down:
                client.submit("demo.steps")
            assert down.value.status == 503 and down.value.retry_after == 5
            with pytest.raises(ServiceUnavailable):
                client.get("anything")
            with pytest.raises(WaitTimeout):  # wait() waits 503s out (Retry-After) until its deadline
                client.wait("0123456789abcdef", timeout=1)

        async def async_client() -> None:
            async with AsyncJobsClient(url) as aclient:
                with pytest.raises(ServiceUnavailable) as adown:
                    await aclient.submit("demo.steps")
                assert adown.value.retry_after == 5

        asyncio.run(async_client())
    finally:
        factory.stop_all()
        server.stop()


def test_401_without_a_key_and_bearer_key_through_submit_and_stream(
    secured_url: str, redis_url: str, procs: ProcessFactory
) -> None:
    for key in (None, "wrong-key"):
        with JobsClient(secured_url, api_key=key) as anonymous:
            with pytest.raises(Unauthorized) as denied:
                anonymous.submit("demo.noop")
            assert denied.value.status == 401 and denied.value.response is not None
            assert denied.value.response.headers["www-authenticate"].startswith("Bearer")
    procs.worker()
    recorder = Recorder()
    events: list[ProgressEvent] = []
    with JobsClient(secured_url, api_key=KEYS["bob"], transport=RecordingTransport(recorder)) as bob:
        job = bob.submit("demo.steps", {"steps": 3, "delay": 0.05})
        done = bob.wait(job.id, timeout=60, on_progress=events.append)
    assert done.ok and [e.message for e in events] == ["step 1/3", "step 2/3", "step 3/3"]
    assert recorder.job_gets(job.id) == [f"/jobs/{job.id}/events"]
    assert {r.headers["authorization"] for r in recorder.requests} == {f"Bearer {KEYS['bob']}"}
    with JobsClient(secured_url, api_key=KEYS["alice"]) as alice, pytest.raises(NotFound):
        alice.get(job.id)  # another key's job is a 404


def test_429_with_retry_after_past_the_rate_limit(secured_url: str, redis_url: str) -> None:
    with JobsClient(secured_url, api_key=KEYS["alice"]) as alice:
        for _ in range(RATE):
            alice.submit("demo.noop")
        with pytest.raises(RateLimited) as limited:
            alice.submit("demo.noop")
    assert limited.value.status == 429 and limited.value.retry_after is not None
    assert 1 <= limited.value.retry_after <= 60

    async def other_clients() -> None:
        async with AsyncJobsClient(secured_url, api_key=KEYS["alice"]) as same_key:
            with pytest.raises(RateLimited) as again:
                await same_key.submit("demo.noop")
            assert again.value.retry_after is not None and again.value.retry_after <= 60
        async with AsyncJobsClient(secured_url, api_key=KEYS["bob"]) as other_key:
            assert (await other_key.submit("demo.noop")).status == "queued", "one key's limit spares the others"

    asyncio.run(other_clients())


def test_cancel_stops_a_running_job_and_a_second_cancel_conflicts(
    web_url: str, redis_url: str, procs: ProcessFactory
) -> None:
    procs.worker()
    recorder = Recorder()
    with JobsClient(web_url) as watcher, JobsClient(web_url, transport=RecordingTransport(recorder)) as client:
        job = client.submit("demo.steps", {"steps": 300, "delay": 0.1})
        wait_for(lambda: watcher.get(job.id).status == "started", 30, what="the job to start")
        asked = client.cancel(job.id)
        assert asked.id == job.id and asked.status in {"started", "stopped"}
        stopped = client.wait(job.id, timeout=30)
        assert stopped.status == "stopped" and stopped.progress < 100
        assert recorder.job_gets(job.id) == [f"/jobs/{job.id}/events"], "the stop arrived on the stream"
        assert recorder.paths("DELETE") == [f"/jobs/{job.id}"]
        assert client.get(job.id).status == "stopped"
        with pytest.raises(Conflict) as again:
            client.cancel(job.id)
        assert again.value.status == 409


def test_wait_timeout_then_cancel_a_waiting_job(web_url: str, redis_url: str) -> None:
    with JobsClient(web_url) as client:
        job = client.submit("demo.steps", {"steps": 2}, delay=600)
        with pytest.raises(WaitTimeout) as timed_out:
            client.wait(job.id, timeout=0.5)
        assert timed_out.value.last is not None and timed_out.value.last.status == "scheduled"
        assert client.cancel(job.id).status == "canceled"
        with pytest.raises(Conflict):
            client.cancel(job.id)


def test_a_waiter_sees_another_client_cancel_a_queued_job(web_url: str, redis_url: str) -> None:
    recorder = Recorder()

    async def main() -> str:
        async with AsyncJobsClient(web_url, transport=AsyncRecordingTransport(recorder)) as waiter:
            job = await waiter.submit("demo.steps", {"steps": 2}, queue="low")  # no worker: it stays queued
            waiting = asyncio.create_task(waiter.wait(job.id, timeout=30))
            await asyncio.to_thread(wait_for, lambda: len(recorder.job_gets(job.id)) == 1, 10, what="the stream")
            with JobsClient(web_url) as other:
                assert other.cancel(job.id).status == "canceled"
            return (await waiting).status

    assert asyncio.run(main()) == "canceled"
    assert len(recorder.paths("GET")) == 1, "the cancel arrived on the open stream"


def test_submit_options_take_python_values(web_url: str, redis_url: str) -> None:
    with JobsClient(web_url) as client:
        at = client.submit("demo.noop", run_at=datetime.now(UTC) + timedelta(minutes=5))
        later = client.submit("demo.noop", delay=timedelta(minutes=5))
        assert (at.status, later.status) == ("scheduled", "scheduled")
        child = client.submit("demo.noop", depends_on=[at, later.id])
        assert child.status == "deferred"
        assert client.submit("demo.noop", depends_on=child).status == "deferred"
        with pytest.raises(ValidationError) as naive:
            client.submit("demo.noop", run_at=datetime.now() + timedelta(minutes=5))  # naive: no UTC offset
        assert list(naive.value.fields) == ["run_at"]
        first = client.submit("demo.noop", idempotency_key="once")
        assert client.submit("demo.noop", idempotency_key="once").id == first.id


def test_async_cancel_of_a_running_job(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    procs.worker()

    async def main() -> tuple[str, str]:
        async with AsyncJobsClient(web_url) as client:
            job = await client.submit("demo.steps", {"steps": 300, "delay": 0.1})
            seen: list[ProgressEvent] = []
            waiting = asyncio.create_task(client.wait(job.id, timeout=30, on_progress=seen.append))
            while not seen:
                await asyncio.sleep(0.05)
            await client.cancel(job.id)
            stopped = await waiting
            with pytest.raises(Conflict):
                await client.cancel(job.id)
            return stopped.status, (await client.get(job.id)).status

    assert asyncio.run(main()) == ("stopped", "stopped")


def test_listing_across_pages(web_url: str, redis_url: str) -> None:
    with JobsClient(web_url) as client:
        submitted = [client.submit("demo.noop").id for _ in range(7)]
        pages = list(client.list(limit=3))
        assert [len(page) for page in pages] == [3, 3, 1]
        assert [job.id for page in pages for job in page] == submitted[::-1], "newest first, no repeats"
        assert pages[-1].next_cursor is None
        assert [len(p) for p in client.list(type="demo.noop", status="queued", limit=5)] == [5, 2]
        assert {t.type for t in client.types()} >= {"demo.steps", "demo.noop", "text.characters", "text.summarize"}

    async def listed() -> list[list[str]]:
        async with AsyncJobsClient(web_url) as aclient:
            return [[job.id for job in page] async for page in aclient.list(limit=4)]

    assert asyncio.run(listed()) == [submitted[::-1][:4], submitted[::-1][4:]]


def test_text_characters_through_the_api(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    procs.worker()
    events: list[ProgressEvent] = []
    with JobsClient(web_url) as client:
        job = client.submit("text.characters", {"text": lighthouse() * 4, "chunk_chars": 2000})
        done = client.wait(job.id, timeout=60, on_progress=events.append)
    assert done.ok, done.error
    names = [c["name"] for c in done.result["characters"]]
    assert names == ["Tobias Crane", "Eleanor Voss", "Captain Marlowe", "Mrs. Abernathy"]
    assert [c["speaks"] for c in done.result["characters"]] == [12, 12, 8, 4]
    chunks = done.result["stats"]["chunks"]
    assert [e.message.split(":")[0] for e in events[:-1] if e.message] == [
        f"chunk {i}/{chunks}" for i in range(1, chunks + 1)
    ]


def test_text_characters_one_megabyte_through_the_api(procs: ProcessFactory) -> None:
    procs.worker()
    _, url = procs.web(MAX_BODY_BYTES=str(4 * 1024 * 1024), MAX_STRING_CHARS=str(4 * 1024 * 1024))
    novel = generated_novel(1_000_000)
    with JobsClient(url, timeout=30) as client:
        job = client.submit("text.characters", {"text": novel.text})
        done = client.wait(job.id, timeout=120)
    assert done.ok, done.error
    assert done.started_at and done.ended_at
    assert done.ended_at - done.started_at < timedelta(seconds=10), "the issue's bound for 1 MB"
    found = {c["name"]: c for c in done.result["characters"]}
    assert {name: found[name]["speaks"] for name in CAST} == dict(novel.speaks)
    assert len([m for m in done.messages if m.message and m.message.startswith("chunk ")]) == 21


def test_text_summarize_through_the_api(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    procs.worker()
    with JobsClient(web_url) as client:
        with pytest.raises(ValidationError) as invalid:
            client.submit("text.summarize", {"turns": [{"role": "user"}]})
        assert list(invalid.value.fields) == ["args.turns.0.content"]
        done = client.wait(client.submit("text.summarize", {"turns": conversation(), "max_sentences": 3}).id, 60)
    assert done.ok, done.error
    assert done.result["sentences"][0]["text"] == "I am moving to Lisbon in March for a new job at a design studio."
    assert len(done.result["sentences"]) == 3 and done.result["keywords"][0]["keyword"] == "portuguese"
    assert done.messages[-1].message == "kept 3 of 25 sentences"


def test_a_book_with_the_default_limits(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    """The session's web process runs with the default MAX_BODY_BYTES and MAX_STRING_CHARS: a book of over a
    megabyte goes through, and `/job-types` advertises exactly the length the service accepts."""
    procs.worker()
    novel = generated_novel(1_200_000)
    with JobsClient(web_url, timeout=30) as client:
        limit = next(t for t in client.types() if t.type == "text.characters").args_schema["properties"]["text"]
        assert limit["maxLength"] >= len(novel.text) > 1_000_000
        with pytest.raises(ValidationError) as refused:
            client.submit("text.characters", {"text": "a" * (limit["maxLength"] + 1)})
        assert list(refused.value.fields) == ["args.text"] and "MAX_STRING_CHARS" in refused.value.detail
        done = client.wait(client.submit("text.characters", {"text": novel.text}).id, timeout=120)
    assert done.ok, done.error
    assert done.result["stats"]["chars"] == len(novel.text)


def test_streamed_output_reaches_the_client_while_the_job_runs(
    web_url: str, redis_url: str, procs: ProcessFactory
) -> None:
    procs.worker()
    expected = "".join(f"tok{i} " for i in range(1, 31))
    with JobsClient(web_url) as client, JobsClient(web_url) as observer:
        job = client.submit("demo.tokens", {"count": 30, "delay": 0.05})
        texts: list[str] = []
        status_at_first_chunk: list[str] = []

        def on_output(chunk: OutputChunk) -> None:
            if not texts:
                status_at_first_chunk.append(observer.get(job.id).status)
            texts.append(chunk.text)

        done = client.wait(job.id, timeout=60, on_output=on_output)
        assert done.ok and done.result == {"tokens": 30}
        assert status_at_first_chunk == ["started"], "the first chunk came while the job ran"
        assert "".join(texts) == client.output(job.id) == expected

    async def run() -> tuple[str, str]:
        async with AsyncJobsClient(web_url) as aclient:
            ajob = await aclient.submit("demo.tokens", {"count": 10, "delay": 0.02})
            chunks: list[str] = []
            await aclient.wait(ajob.id, timeout=60, on_output=lambda chunk: chunks.append(chunk.text))
            return "".join(chunks), await aclient.output(ajob.id)

    streamed, whole = asyncio.run(run())
    assert streamed == whole == "".join(f"tok{i} " for i in range(1, 11))
