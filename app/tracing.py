"""The request's server span, when tracing is configured (`core.tracing`): mounted outermost, so that it
covers the whole request, and continuing an incoming W3C `traceparent`/`tracestate`.

Every request is traced but the probes and scrapes (`UNTRACED`), which would bury the rest. A job
built while the span is current carries its context (`core.submitting.initial_meta`).
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import tracing

#: Paths polled by platforms and scrapers: never traced.
UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})


def tracing_middleware() -> list[Middleware]:
    """The middleware to mount outermost: none when tracing is off (nothing is imported, nothing runs)."""
    if not tracing.enabled():
        return []
    tracing.prepare("jobsvc-web")
    return [Middleware(ServerSpanMiddleware)]


class ServerSpanMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        from core.tracing import sdk  # loaded only when tracing is on

        self.app = app
        self.sdk = sdk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        status_code = 500  # unless a response starts

        async def send_and_note(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        with self.sdk.http_server(method, scope.get("scheme", "http"), scope["path"], headers) as span:
            try:
                await self.app(scope, receive, send_and_note)
            finally:
                route = scope.get("route")
                self.sdk.server_answered(span, method, getattr(route, "path", None), status_code)
