"""A small real HTTP server (Starlette + uvicorn on loopback, in a thread) that speaks API.md where a test
needs what the real service never does on demand: no event stream at all (`sse=False`, an older or
proxied deployment), a stream dropped after N events (`drop_after`), 429/503 answers with Retry-After on
reads (`inject`). Everything else about the client runs against the real stack (tests/integration).
Jobs are `demo.steps` run by an asyncio task; events carry ids 1, 2, ... and `Last-Event-ID` resumes."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from core.clock import iso_z, utc_now
from stack.redis_server import free_port

ENDED = {"finished", "failed", "stopped", "canceled"}


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    body = {"type": f"/problems/{status}", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


@dataclass
class FakeJob:
    id: str
    args: dict[str, Any]
    queue: str
    status: str = "queued"
    progress: float = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    created_at: str | None = field(default_factory=lambda: iso_z(utc_now()))
    listeners: list[asyncio.Queue[tuple[int, str, Any]]] = field(default_factory=list)
    log: list[tuple[int, str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id, "type": "demo.steps", "description": "demo.steps", "queue": self.queue,
            "status": self.status, "progress": self.progress, "messages": list(self.messages),
            "result": self.result, "error": self.error, "created_at": self.created_at,
            "enqueued_at": self.created_at, "started_at": None, "ended_at": None, "timeout": 180,
            "retries_left": 0, "position": None,
        }  # fmt: skip

    def publish(self, event: str, data: Any) -> None:
        entry = (len(self.log) + 1, event, data)
        self.log.append(entry)
        for listener in self.listeners:
            listener.put_nowait(entry)


class ContractServer:
    def __init__(self, *, sse: bool = True) -> None:
        self.sse = sse
        self.jobs: dict[str, FakeJob] = {}
        self.requests: list[tuple[float, str, str]] = []
        self.inject: list[tuple[int, str]] = []  # (status, Retry-After) answered to the next requests
        self.drop_after: list[int] = []  # the next streams close after this many events each
        self.last_event_ids: list[str | None] = []  # the Last-Event-ID of each stream request
        self.url = ""
        self.app = Starlette(
            routes=[
                Route("/jobs", self.submit, methods=["POST"]),
                Route("/jobs/{job_id}", self.get, methods=["GET"]),
                Route("/jobs/{job_id}/events", self.events, methods=["GET"]),
            ],
            middleware=[Middleware(BaseHTTPMiddleware, dispatch=self._record)],
        )

    async def _record(self, request: Request, call_next: Any) -> Response:
        self.requests.append((time.monotonic(), request.method, request.url.path))
        if self.inject:
            status, retry_after = self.inject.pop(0)
            title = "Too many requests" if status == 429 else "Service unavailable"
            return problem(status, title, "injected by the test", headers={"Retry-After": retry_after})
        response: Response = await call_next(request)
        return response

    async def run_job(self, job: FakeJob) -> None:
        steps, delay = int(job.args.get("steps", 5)), float(job.args.get("delay", 0.05))
        job.status = "started"
        job.publish("status", job.view())
        for step in range(1, steps + 1):
            await asyncio.sleep(delay)
            if job.args.get("fail_at") == step:
                job.status, job.error = "failed", f"DemoFailure: failing at step {step} as asked (attempt 1)"
                job.publish("status", job.view())
                return
            job.progress = step * 100 / steps
            entry = {"time": iso_z(utc_now()), "message": f"step {step}/{steps}", "progress": job.progress}
            job.messages.append(entry)
            job.publish("progress", entry)
        job.status, job.progress, job.result = "finished", 100, {"steps": steps, "attempt": 1}
        job.publish("status", job.view())

    async def submit(self, request: Request) -> Response:
        body = await request.json()
        if body.get("type") != "demo.steps":
            msg = f"unknown job type {body.get('type')!r}"
            return problem(422, "Invalid request", f"type: {msg}", errors=[{"loc": ["type"], "msg": msg}])
        job = FakeJob(uuid.uuid4().hex, body.get("args") or {}, body.get("queue") or "default")
        self.jobs[job.id] = job
        job.task = asyncio.get_running_loop().create_task(self.run_job(job))
        return JSONResponse(job.view(), status_code=202, headers={"Location": f"/jobs/{job.id}"})

    def _job(self, request: Request) -> FakeJob | None:
        return self.jobs.get(request.path_params["job_id"])

    async def get(self, request: Request) -> Response:
        job = self._job(request)
        return JSONResponse(job.view()) if job else problem(404, "Not found", "no such job")

    async def events(self, request: Request) -> Response:
        job = self._job(request)
        if not self.sse or job is None:
            return problem(404, "Not found", "no such job" if job is None else "no event stream")
        last_id = request.headers.get("last-event-id")
        self.last_event_ids.append(last_id)
        queue: asyncio.Queue[tuple[int, str, Any]] = asyncio.Queue()
        job.listeners.append(queue)
        backlog = [entry for entry in job.log if last_id and entry[0] > int(last_id)]
        if not last_id:  # a first connection starts with the current state
            backlog = [(len(job.log), "status", job.view())]
        budget = self.drop_after.pop(0) if self.drop_after else None

        async def stream() -> AsyncIterator[str]:
            try:
                for sent in itertools.count(1):
                    event_id, event, data = backlog.pop(0) if backlog else await queue.get()
                    yield f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data)}\n\n"
                    if (event == "status" and data["status"] in ENDED) or sent == budget:
                        return
            finally:
                job.listeners.remove(queue)

        return StreamingResponse(stream(), media_type="text/event-stream")

    def paths(self, method: str | None = None) -> list[str]:
        return [path for _, m, path in self.requests if method in (None, m)]


@contextmanager
def serve(*, sse: bool = True) -> Iterator[ContractServer]:
    """The contract server on a free loopback port for the duration of the block."""
    server = ContractServer(sse=sse)
    port = free_port()
    config = uvicorn.Config(server.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not runner.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("contract server did not start")
        time.sleep(0.01)
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        runner.should_exit = True
        thread.join(10)
