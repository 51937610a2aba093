"""The client's streamed output (`output` events, `output()`), id prefixes (`resolve()`), and the CLI's
`list` table at 80 columns, over an in-process transport (httpx.MockTransport) speaking API.md."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import uuid
from typing import Any

import httpx
import pytest
from jobs_client import AmbiguousJobId, AsyncJobsClient, Job, JobsClient, OutputChunk, UnknownJobId
from jobs_client._follow import OutputSink
from jobs_client.cli import UI, cmd_status, jobs_table
from rich.console import Console

JOB_ID = "5bce7bb6-f0c0-4145-bda2-0fd8131ef55d"


def view(job_id: str = JOB_ID, status: str = "started", **extra: Any) -> dict[str, Any]:
    return {"id": job_id, "type": "demo.tokens", "status": status, "progress": 0, "queue": "default", **extra}


def sse(*events: tuple[int, str, Any]) -> bytes:
    return "".join(f"id: {i}\nevent: {name}\ndata: {json.dumps(data)}\n\n" for i, name, data in events).encode()


STREAM = sse(
    (0, "status", view()),
    (1, "output", {"seq": 1, "text": "tok1 "}),
    (2, "progress", {"progress": 50, "message": "half", "time": "2026-12-03T10:00:00Z"}),
    (3, "output", {"seq": 2, "text": "tok2 "}),
    (3, "output", {"seq": 2, "text": "tok2 "}),  # a repeat (a resumed stream) is not shown twice
    (4, "output", {"seq": 3, "text": "tok3\n"}),
    (5, "status", view(status="finished", progress=100, result={"tokens": 3})),
)


def handler(ids: list[str], seen: list[httpx.Request] | None = None) -> Any:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        path = request.url.path
        if path.endswith("/events"):
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=STREAM)
        if path.endswith("/output"):
            return httpx.Response(200, headers={"content-type": "text/plain; charset=utf-8"}, text="tok1 tok2 tok3\n")
        if path == "/jobs":
            return httpx.Response(200, json={"jobs": [view(job_id) for job_id in ids], "next_cursor": None})
        job_id = path.rsplit("/", 1)[1]
        if job_id in ids:
            return httpx.Response(200, json=view(job_id))
        problem = {"type": "/problems/not-found", "title": "Not found", "status": 404, "detail": f"no job {job_id}"}
        return httpx.Response(404, headers={"content-type": "application/problem+json"}, json=problem)

    return handle


def test_wait_hands_each_output_chunk_once_in_order() -> None:
    chunks: list[OutputChunk] = []
    seen: list[httpx.Request] = []
    with JobsClient("http://svc", transport=httpx.MockTransport(handler([JOB_ID], seen))) as client:
        done = client.wait(JOB_ID, timeout=5, on_output=chunks.append)
        assert client.output(JOB_ID) == "tok1 tok2 tok3\n"
    assert done.ok and done.result == {"tokens": 3}
    assert seen[0].headers["last-event-id"] == "0", "output from the job's start, also for a late follower"
    assert seen[-1].headers["accept"] == "text/plain"
    assert [(c.seq, c.text) for c in chunks] == [(1, "tok1 "), (2, "tok2 "), (3, "tok3\n")]


def test_the_async_client_streams_output_too() -> None:
    async def run() -> tuple[list[str], str]:
        chunks: list[str] = []
        transport = httpx.MockTransport(handler([JOB_ID]))
        async with AsyncJobsClient("http://svc", transport=transport) as client:
            await client.wait(JOB_ID, timeout=5, on_output=lambda chunk: chunks.append(chunk.text))
            return chunks, await client.output(JOB_ID)

    chunks, whole = asyncio.run(run())
    assert "".join(chunks) == whole == "tok1 tok2 tok3\n"


def test_resolve_takes_a_full_id_or_a_unique_prefix() -> None:
    ids = [JOB_ID, "5bd00000-0000-4000-8000-000000000000", "77777777-0000-4000-8000-000000000000"]
    with JobsClient("http://svc", transport=httpx.MockTransport(handler(ids))) as client:
        assert client.resolve(JOB_ID) == JOB_ID
        assert client.resolve("5bc") == JOB_ID and client.resolve("7") == ids[2]
        with pytest.raises(AmbiguousJobId) as ambiguous:
            client.resolve("5b")
        assert ambiguous.value.candidates == ids[:2] and ids[1] in str(ambiguous.value)
        with pytest.raises(UnknownJobId, match="no job id starts with 'abc'"):
            client.resolve("abc")
        with pytest.raises(ValueError):
            client.resolve("a/b")


def test_the_async_client_resolves_prefixes() -> None:
    async def run() -> str:
        async with AsyncJobsClient("http://svc", transport=httpx.MockTransport(handler([JOB_ID]))) as client:
            return await client.resolve("5bce")

    assert asyncio.run(run()) == JOB_ID


def test_the_list_table_shows_whole_ids_in_80_columns() -> None:
    jobs = [
        Job.from_json(view(str(uuid.uuid4()), type="text.characters", created_at="2026-12-03T10:00:00.123Z"))
        for _ in range(3)
    ]
    out = Console(file=io.StringIO(), width=80, color_system=None)
    ui = UI(as_json=False)
    ui.err = Console(file=io.StringIO(), width=80, color_system=None)
    out.print(jobs_table(jobs, 80, ui))
    printed = out.file.getvalue()  # type: ignore[attr-defined]
    assert all(len(line) <= 80 for line in printed.splitlines())
    for job in jobs:
        assert job.id in printed, printed
    assert "left out to fit 80 columns" in ui.err.file.getvalue()  # type: ignore[attr-defined]
    wide = Console(file=io.StringIO(), width=200, color_system=None)
    wide.print(jobs_table(jobs, 200, ui))
    assert "created" in wide.file.getvalue() and "queue" in wide.file.getvalue()  # type: ignore[attr-defined]


def test_output_without_a_bar_is_written_as_it_comes_and_ends_its_line() -> None:
    stream = io.StringIO()
    sink = OutputSink(stream, None)
    sink(OutputChunk(1, "tok1 "))
    assert stream.getvalue() == "tok1 "
    sink(OutputChunk(2, "tok2"))
    sink.close()
    assert stream.getvalue() == "tok1 tok2\n"


def test_status_says_what_a_held_back_job_waits_for() -> None:
    held = view(status="queued", position=0, waiting="demo.sleep: 2 of 2 running")

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=held)

    ui = UI(as_json=False)
    printed = io.StringIO()
    ui.out = Console(file=printed, width=100, highlight=False)
    with JobsClient("http://svc", transport=httpx.MockTransport(handle)) as client:
        assert cmd_status(client, argparse.Namespace(id=JOB_ID), ui) == 0
    assert "waiting" in printed.getvalue() and "demo.sleep: 2 of 2 running" in printed.getvalue()
