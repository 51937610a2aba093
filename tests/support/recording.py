"""httpx transports that record every request a client sends, so a test can tell which paths
`wait()` took (one SSE stream, or polls) and which headers went out."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx


@dataclass
class Recorder:
    requests: list[httpx.Request] = field(default_factory=list)

    def paths(self, method: str = "GET", prefix: str = "") -> list[str]:
        return [r.url.path for r in self.requests if r.method == method and r.url.path.startswith(prefix)]

    def job_gets(self, job_id: str) -> list[str]:
        """The GETs about one job, in order: `/jobs/{id}/events` for a stream, `/jobs/{id}` for a poll."""
        return self.paths("GET", f"/jobs/{job_id}")


class RecordingTransport(httpx.HTTPTransport):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.recorder.requests.append(request)
        return super().handle_request(request)


class AsyncRecordingTransport(httpx.AsyncHTTPTransport):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.recorder.requests.append(request)
        return await super().handle_async_request(request)
