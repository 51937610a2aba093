"""The client against a real loopback HTTP server that speaks API.md where this branch's service does not
yet: the SSE stream (section 8), DELETE (section 5), 429/503 with Retry-After. Switch these to the real
stack once those routes are merged (see tests/integration/test_client.py for what already runs there)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from jobs_client import (
    AsyncJobsClient,
    Conflict,
    JobsClient,
    NotFound,
    ProgressEvent,
    RateLimited,
    ServiceUnavailable,
    ValidationError,
    WaitTimeout,
)

from tests.support.contract_server import ContractServer, serve


@pytest.fixture
def server() -> Iterator[ContractServer]:
    with serve() as running:
        yield running


def test_wait_follows_the_event_stream_and_reports_progress_in_order(server: ContractServer) -> None:
    events: list[ProgressEvent] = []
    with JobsClient(server.url) as client:
        job = client.submit("demo.steps", {"steps": 6, "delay": 0.05}, queue="high")
        done = client.wait(job.id, timeout=30, on_progress=events.append)
    assert done.status == "finished" and done.result == {"steps": 6, "attempt": 1}
    assert [e.message for e in events] == [f"step {i}/6" for i in range(1, 7)]
    assert [round(e.progress) for e in events] == [17, 33, 50, 67, 83, 100]
    assert all(e.time is not None for e in events)
    assert server.paths("GET") == [f"/jobs/{job.id}/events"], "one stream, no polling"


def test_wait_polls_when_the_server_has_no_stream(server: ContractServer) -> None:
    server.sse = False
    events: list[ProgressEvent] = []
    with JobsClient(server.url) as client:
        job = client.submit("demo.steps", {"steps": 4, "delay": 0.1})
        done = client.wait(job.id, timeout=30, on_progress=events.append, poll_interval=0.02)
    assert done.ok and done.result == {"steps": 4, "attempt": 1}
    assert [e.message for e in events if e.message] == [f"step {i}/4" for i in range(1, 5)]
    gets = server.paths("GET")
    assert gets[0] == f"/jobs/{job.id}/events" and gets[1:] and set(gets[1:]) == {f"/jobs/{job.id}"}


def test_polling_honors_retry_after_on_429_and_503(server: ContractServer) -> None:
    with JobsClient(server.url) as client:
        job = client.submit("demo.steps", {"steps": 2, "delay": 0.05})
        server.inject = [(429, "1"), (503, "1")]
        started = time.monotonic()
        done = client.wait(job.id, timeout=30, poll_interval=0.02, stream=False)
    assert done.ok and server.paths("GET")[0] == f"/jobs/{job.id}", "stream=False: no /events request"
    times = [t for t, _, path in server.requests if path.startswith(f"/jobs/{job.id}") and t >= started]
    assert times[1] - times[0] >= 0.95 and times[2] - times[1] >= 0.95, "each Retry-After: 1 was waited out"


def test_typed_errors_carry_the_problem_document(server: ContractServer) -> None:
    with JobsClient(server.url) as client:
        with pytest.raises(ValidationError) as invalid:
            client.submit("no.such.type")
        assert invalid.value.status == 422 and invalid.value.errors[0]["loc"] == ["type"]
        assert invalid.value.fields == {"type": "unknown job type 'no.such.type'"}
        with pytest.raises(NotFound) as missing:
            client.get("nope")
        assert missing.value.problem["title"] == "Not found"
        server.inject = [(429, "7")]
        with pytest.raises(RateLimited) as limited:
            client.get("nope")
        assert limited.value.retry_after == 7 and limited.value.status == 429
        server.inject = [(503, "3")]
        with pytest.raises(ServiceUnavailable) as down:
            client.get("nope")
        assert down.value.retry_after == 3


def test_cancel_a_running_job_stops_it_and_a_second_cancel_conflicts(server: ContractServer) -> None:
    with JobsClient(server.url) as client:
        job = client.submit("demo.steps", {"steps": 100, "delay": 0.05})
        while client.get(job.id).status != "started":
            time.sleep(0.01)
        assert client.cancel(job.id).status == "stopped"
        assert client.wait(job.id, timeout=10).status == "stopped"
        with pytest.raises(Conflict):
            client.cancel(job.id)


def test_wait_timeout_names_the_last_status(server: ContractServer) -> None:
    with JobsClient(server.url) as client:
        job = client.submit("demo.steps", {"steps": 100, "delay": 0.1})
        with pytest.raises(WaitTimeout) as timed_out:
            client.wait(job.id, timeout=0.5)
        assert timed_out.value.last is not None and timed_out.value.last.status in {"queued", "started"}
        client.cancel(job.id)


def test_async_client_runs_jobs_concurrently_with_gather(server: ContractServer) -> None:
    async def main() -> list[tuple[str, list[str]]]:
        async with AsyncJobsClient(server.url) as client:

            async def run(steps: int) -> tuple[str, list[str]]:
                seen: list[str] = []
                job = await client.submit("demo.steps", {"steps": steps, "delay": 0.05})
                done = await client.wait(job.id, timeout=30, on_progress=lambda e: seen.append(e.message or ""))
                return done.status, seen

            return await asyncio.gather(*(run(n) for n in (3, 4, 5)))

    results = asyncio.run(main())
    assert [status for status, _ in results] == ["finished"] * 3
    assert [seen for _, seen in results] == [[f"step {i}/{n}" for i in range(1, n + 1)] for n in (3, 4, 5)]


def test_async_typed_errors_and_cancel(server: ContractServer) -> None:
    async def main() -> None:
        async with AsyncJobsClient(server.url) as client:
            server.inject = [(429, "2")]
            with pytest.raises(RateLimited) as limited:
                await client.submit("demo.steps")
            assert limited.value.retry_after == 2
            job = await client.submit("demo.steps", {"steps": 50, "delay": 0.05})
            while (await client.get(job.id)).status != "started":
                await asyncio.sleep(0.01)
            await client.cancel(job.id)
            assert (await client.wait(job.id, timeout=10)).status == "stopped"

    asyncio.run(main())


def test_stream_answering_429_is_retried_after_retry_after(server: ContractServer) -> None:
    events: list[ProgressEvent] = []
    with JobsClient(server.url) as client:
        job = client.submit("demo.steps", {"steps": 3, "delay": 0.05})
        server.inject = [(429, "1")]
        started = time.monotonic()
        done = client.wait(job.id, timeout=30, on_progress=events.append)
    assert done.ok and [e.message for e in events] == ["step 1/3", "step 2/3", "step 3/3"]
    streams = [t for t, _, path in server.requests if path.endswith("/events") and t >= started]
    assert len(streams) == 2 and streams[1] - streams[0] >= 0.95


def test_listing_follows_cursors_across_pages(server: ContractServer) -> None:
    with JobsClient(server.url) as client:
        submitted = {client.submit("demo.steps", {"steps": 1, "delay": 0}).id for _ in range(7)}
        pages = list(client.list(limit=3))
    assert [len(page) for page in pages] == [3, 3, 1]
    assert {job.id for page in pages for job in page} == submitted
    assert pages[-1].next_cursor is None
