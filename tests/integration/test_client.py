"""The Python client and the text jobs against the real stack: uvicorn (Procfile web line), real `rq worker`
processes, a real valkey-server. The branch's server has no /events yet, so `wait()` here takes the
polling fallback (the SSE path is covered against the contract server in tests/unit/test_client_contract.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from jobs_client import AsyncJobsClient, JobsClient, NotFound, ProgressEvent, ServiceUnavailable, ValidationError

from stack.redis_server import EmbeddedRedis
from tests.integration.conftest import TEST_ENV
from tests.support.procs import ProcessFactory
from tests.support.texts import CAST, conversation, generated_novel, lighthouse


def test_sync_submit_wait_progress_in_order(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    procs.worker()
    events: list[ProgressEvent] = []
    with JobsClient(web_url) as client:
        job = client.submit("demo.steps", {"steps": 5, "delay": 0.2}, queue="high", description="client test")
        assert job.status == "queued" and job.queue == "high"
        done = client.wait(job.id, timeout=60, on_progress=events.append)
    assert done.status == "finished" and done.result == {"steps": 5, "attempt": 1}
    assert [e.message for e in events] == [f"step {i}/5" for i in range(1, 6)]
    assert [e.progress for e in events] == [20, 40, 60, 80, 100]
    assert done.description == "client test" and done.ended_at is not None


def test_async_gather_runs_jobs_concurrently(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    procs.worker()
    procs.worker()

    async def main() -> list[tuple[str, list[str]]]:
        async with AsyncJobsClient(web_url) as client:

            async def run(steps: int) -> tuple[str, list[str]]:
                seen: list[str] = []
                job = await client.submit("demo.steps", {"steps": steps, "delay": 0.1})
                done = await client.wait(job.id, timeout=60, on_progress=lambda e: seen.append(e.message or ""))
                return done.status, seen

            return await asyncio.gather(*(run(n) for n in (2, 3, 4)))

    results = asyncio.run(main())
    assert results == [("finished", [f"step {i}/{n}" for i in range(1, n + 1)]) for n in (2, 3, 4)]


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
    finally:
        factory.stop_all()
        server.stop()


def test_listing_across_pages(web_url: str, redis_url: str) -> None:
    with JobsClient(web_url) as client:
        submitted = [client.submit("demo.noop").id for _ in range(7)]
        pages = list(client.list(limit=3))
        assert [len(page) for page in pages] == [3, 3, 1]
        assert [job.id for page in pages for job in page] == submitted[::-1], "newest first, no repeats"
        assert [len(p) for p in client.list(type="demo.noop", status="queued", limit=5)] == [5, 2]
        assert {t.type for t in client.types()} >= {"demo.steps", "demo.noop", "text.characters", "text.summarize"}


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
