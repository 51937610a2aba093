"""A real OTLP/HTTP trace receiver on loopback: `POST /v1/traces`, protobuf (gzip or not), decoded with
the `opentelemetry-proto` package, the spans kept for tests to read."""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.support.procs import wait_for

#: `Span.SpanKind` numbers by name.
KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    error: bool
    attributes: dict[str, Any]
    links: tuple[tuple[str, str], ...]
    events: tuple[str, ...]


@dataclass
class Receiver:
    """Collects what exporters send; `requests` counts every POST, decodable or not."""

    url: str = ""
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    #: Spans received; with `count_only` (a bench, where this process shares the CPU with what it
    #: measures) they are only counted, not decoded into `spans`.
    count: int = 0
    count_only: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        if self.count_only:
            counted = sum(len(scope.spans) for spans in request.resource_spans for scope in spans.scope_spans)
            with self.lock:
                self.count += counted
            return
        found = [
            decode(span, service_name(resource_spans.resource.attributes))
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self.lock:
            self.spans.extend(found)
            self.count += len(found)

    def snapshot(self) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.spans)

    def of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [span for span in self.snapshot() if span.trace_id == trace_id]

    def wait(self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = 20, what: str = "spans") -> None:
        wait_for(lambda: predicate(self.snapshot()), timeout, what=what)


def value(any_value: AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def service_name(attributes: Any) -> str:
    return next((str(value(a.value)) for a in attributes if a.key == "service.name"), "")


def decode(span: Span, service: str) -> ReceivedSpan:
    return ReceivedSpan(
        service=service,
        name=span.name,
        kind=KINDS.get(span.kind, "unspecified"),
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex(),
        error=span.status.code == Status.STATUS_CODE_ERROR,
        attributes={a.key: value(a.value) for a in span.attributes},
        links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
        events=tuple(event.name for event in span.events),
    )


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a collector answers
        disable_nagle_algorithm = True  # headers and body of an answer leave at once (no delayed-ACK stall)

        def do_POST(self) -> None:  # noqa: N802  (the http.server name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            encoding = self.headers.get("Content-Encoding", "")
            with receiver.lock:
                receiver.requests += 1
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            receiver.add(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def serve(count_only: bool = False) -> Generator[Receiver, None, None]:
    """A receiver on a free loopback port for as long as the generator is open (a fixture's body)."""
    receiver = Receiver(count_only=count_only)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
