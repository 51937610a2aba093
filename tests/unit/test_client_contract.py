"""The client against a real loopback HTTP server (tests/support/contract_server.py) for the cases the real
service cannot be made to produce on demand. Everything else (SSE wait, typed errors, cancel, listing,
asyncio.gather, auth) runs against the real stack in tests/integration/test_client.py and test_cli.py."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from jobs_client import JobsClient, ProgressEvent, TransportError
from jobs_client._core import Waiter

from stack.redis_server import free_port
from tests.support.contract_server import ContractServer, serve


@pytest.fixture
def server() -> Iterator[ContractServer]:
    with serve() as running:
        yield running


def test_wait_polls_when_the_server_has_no_stream(server: ContractServer) -> None:
    """Contract server: the real service always has /events; a deployment without it (older version, a proxy
    that strips the route) is simulated by `sse=False`."""
    server.sse = False
    events: list[ProgressEvent] = []
    with JobsClient(server.url) as client:
        job = client.submit("demo.steps", {"steps": 4, "delay": 0.1})
        done = client.wait(job.id, timeout=30, on_progress=events.append, poll_interval=0.02)
    assert done.ok and done.result == {"steps": 4, "attempt": 1}
    assert [e.message for e in events if e.message] == [f"step {i}/4" for i in range(1, 5)]
    gets = server.paths("GET")
    assert gets[0] == f"/jobs/{job.id}/events" and gets[1:] and set(gets[1:]) == {f"/jobs/{job.id}"}


def test_a_dropped_stream_resumes_from_the_last_event_id(server: ContractServer) -> None:
    """Contract server: the real service never closes a stream mid-job on demand (the real-stack test kills
    the web process instead and cannot see event ids); here each stream drops after 3 events and the
    client must resume with exactly the id of the last event it got, so nothing is repeated or lost."""
    server.drop_after = [3, 3, 3]
    events: list[ProgressEvent] = []
    with JobsClient(server.url) as client:
        job = client.submit("demo.steps", {"steps": 8, "delay": 0.05})
        done = client.wait(job.id, timeout=30, on_progress=events.append, poll_interval=0.02)
    assert done.ok and [e.message for e in events] == [f"step {i}/8" for i in range(1, 9)]
    assert server.paths("GET") == [f"/jobs/{job.id}/events"] * 4, "three drops, four streams, no polling"
    first, *resumed = server.last_event_ids
    assert first is None and len(resumed) == 3
    assert [int(i or 0) for i in resumed] == sorted({int(i or 0) for i in resumed}), "ids only move forward"
    assert int(resumed[1] or 0) - int(resumed[0] or 0) == 3, "three events per stream, none skipped or replayed"


def test_polling_honors_retry_after_on_429_and_503(server: ContractServer) -> None:
    """Contract server: the real service rate-limits submissions only, never `GET /jobs/{id}`, and its 503
    needs Redis down and back again; injected answers show each Retry-After is waited out."""
    with JobsClient(server.url) as client:
        job = client.submit("demo.steps", {"steps": 2, "delay": 0.05})
        server.inject = [(429, "1"), (503, "1")]
        started = time.monotonic()
        done = client.wait(job.id, timeout=30, poll_interval=0.02, stream=False)
    assert done.ok and server.paths("GET")[0] == f"/jobs/{job.id}", "stream=False: no /events request"
    times = [t for t, _, path in server.requests if path.startswith(f"/jobs/{job.id}") and t >= started]
    assert times[1] - times[0] >= 0.95 and times[2] - times[1] >= 0.95, "each Retry-After: 1 was waited out"


def test_stream_answering_429_is_retried_after_retry_after(server: ContractServer) -> None:
    """Contract server: the real /events route is not rate-limited; an injected 429 shows the stream is
    retried after Retry-After rather than abandoned for polling."""
    events: list[ProgressEvent] = []
    with JobsClient(server.url) as client:
        job = client.submit("demo.steps", {"steps": 3, "delay": 0.05})
        server.inject = [(429, "1")]
        started = time.monotonic()
        done = client.wait(job.id, timeout=30, on_progress=events.append)
    assert done.ok and [e.message for e in events] == ["step 1/3", "step 2/3", "step 3/3"]
    streams = [t for t, _, path in server.requests if path.endswith("/events") and t >= started]
    assert len(streams) == 2 and streams[1] - streams[0] >= 0.95


def test_wait_gives_up_once_the_service_stays_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """No server at all (a refused port): reconnecting goes on for OUTAGE_TOLERANCE, then TransportError,
    well before the caller's own timeout. (The real-stack test covers an outage that ends in time.)"""
    monkeypatch.setattr(Waiter, "OUTAGE_TOLERANCE", 0.5)
    with JobsClient(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(TransportError, match="unreachable for"):  # not WaitTimeout
            client.wait("0123456789abcdef", timeout=60, poll_interval=0.05)
