"""The OpenTelemetry SDK side of `core.tracing`: imported only when tracing is on.

One `TracerProvider` per process, set as the global one (so a job's own instrumentation joins the
job's trace), exporting over OTLP/HTTP. Spans ended in the process that set it up are batched
(`BatchSpanProcessor`, created on the first span: a forking worker's main process, which ends none,
never starts its thread). A forked child (a work horse) has no batching thread and ends with
`os._exit`: its spans are held and exported at once when the job's run span ends, before the job's
outcome is recorded, so a job that ended has had its spans sent. That export waits at most
`HELD_EXPORT_TIMEOUT` (or the exporter's own timeout, if shorter): a collector that is down delays
each job's end by that much, not by the exporter's 10 s of retries.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from rq.job import Job

from core import meta

T = TypeVar("T")

#: The instrumentation scope of every span this service makes.
SCOPE = "jobsvc"
#: A job's carrier is always W3C trace context, whatever `OTEL_PROPAGATORS` picks for HTTP headers.
_W3C = TraceContextTextMapPropagator()
#: Seconds a work horse may spend sending its spans.
HELD_EXPORT_TIMEOUT = 1.0
_lock = threading.Lock()
_processor: ForkAwareProcessor | None = None


class ForkAwareProcessor(SpanProcessor):
    """Batches the spans of the process that created it; holds a forked child's until `export_held()`."""

    def __init__(self, exporter: Callable[[], SpanExporter], held_exporter: Callable[[], SpanExporter]) -> None:
        self._exporter = exporter
        self._held_exporter = held_exporter
        self._home = os.getpid()
        self._batch: BatchSpanProcessor | None = None
        self._held: list[ReadableSpan] = []
        self._held_by = self._home

    def on_end(self, span: ReadableSpan) -> None:
        pid = os.getpid()
        if pid == self._home:
            self._batching().on_end(span)
            return
        if self._held_by != pid:  # the first span of a new child: nothing of its parent's is kept
            self._held, self._held_by = [], pid
        self._held.append(span)

    def _batching(self) -> BatchSpanProcessor:
        if self._batch is None:
            with _lock:
                if self._batch is None:
                    self._batch = BatchSpanProcessor(self._exporter())
        return self._batch

    def export_held(self) -> None:
        """In a forked child: send the spans it ended, now, on a connection of its own."""
        if self._held_by != os.getpid() or not self._held:
            return
        spans, self._held = self._held, []
        exporter = self._held_exporter()
        try:
            exporter.export(spans)
        finally:
            exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if os.getpid() != self._home:
            self.export_held()
            return True
        return self._batch.force_flush(timeout_millis) if self._batch is not None else True

    def shutdown(self) -> None:
        if os.getpid() == self._home and self._batch is not None:
            self._batch.shutdown()  # type: ignore[no-untyped-call]  # (untyped in the SDK)


def setup(service: str) -> ForkAwareProcessor:
    """Set up this process's provider once; `service` is its name unless the environment names one."""
    global _processor
    with _lock:
        if _processor is None:
            resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
            if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
                resource = resource.merge(Resource({SERVICE_NAME: service}))
            provider = TracerProvider(resource=resource)  # OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG
            # OTEL_EXPORTER_OTLP_* read by the exporter. The horses' one is built here, unused here (it
            # never connects in this process), so each horse uses its own copy without building one.
            held = OTLPSpanExporter(timeout=held_export_timeout())
            _processor = ForkAwareProcessor(OTLPSpanExporter, lambda: held)
            provider.add_span_processor(_processor)
            trace.set_tracer_provider(provider)
        return _processor


def held_export_timeout() -> float:
    """The exporter's timeout (`OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, `OTEL_EXPORTER_OTLP_TIMEOUT`), at most
    `HELD_EXPORT_TIMEOUT`."""
    configured = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT")
    try:
        seconds = float(configured) if configured else HELD_EXPORT_TIMEOUT
    except ValueError:
        seconds = HELD_EXPORT_TIMEOUT
    return min(seconds, HELD_EXPORT_TIMEOUT) if seconds > 0 else HELD_EXPORT_TIMEOUT


_tracer: trace.Tracer | None = None


def tracer() -> trace.Tracer:
    global _tracer
    if _tracer is None:
        if _processor is None:
            setup("jobsvc")
        _tracer = trace.get_tracer(SCOPE)
    return _tracer


def current_carrier() -> dict[str, str] | None:
    carried: dict[str, str] = {}
    _W3C.inject(carried)
    return carried or None


def job_context(job: Job) -> otel_context.Context:
    """The context a job's run continues: the one its meta carries, or none (a trace of its own)."""
    carried = job.meta.get(meta.TRACE)
    return _W3C.extract(carried) if isinstance(carried, dict) else otel_context.Context()


def job_attributes(job: Job) -> dict[str, Any]:
    job_meta = job.meta
    attributes: dict[str, Any] = {
        "messaging.system": "rq",
        "messaging.operation.type": "process",
        "messaging.destination.name": job.origin,
        "messaging.message.id": job.id,
        "job.type": str(job_meta.get(meta.TYPE, "")),
        "job.attempt": int(job_meta.get(meta.ATTEMPT, 0) or 1),
    }
    for key in (meta.BATCH_ID, meta.COMPLETES_BATCH, meta.SCHEDULE_ID, meta.SCHEDULED_FOR):
        if job_meta.get(key):
            attributes[f"job.{key}"] = str(job_meta[key])
    return attributes


@contextlib.contextmanager
def job_run(job: Job) -> Iterator[trace.Span]:
    """A CONSUMER span for one run of `job`, the child of the span its meta carries; error if it raises."""
    attributes = job_attributes(job)
    name = f"run {attributes['job.type'] or job.id}"
    try:
        with tracer().start_as_current_span(
            name, context=job_context(job), kind=SpanKind.CONSUMER, attributes=attributes
        ) as span:
            yield span
    finally:
        if _processor is not None:
            _processor.export_held()  # a work horse: before RQ records the outcome and the horse exits


def in_context(call: Callable[[], T]) -> Callable[[], T]:
    context = contextvars.copy_context()
    return lambda: context.run(call)


class HttpClientSpan:
    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self.headers: dict[str, str] = {}
        propagate.inject(self.headers)  # OTEL_PROPAGATORS: W3C trace context and baggage by default

    def answered(self, status_code: int) -> None:
        self.span.set_attribute("http.response.status_code", status_code)
        if status_code >= 400:
            self.span.set_status(Status(StatusCode.ERROR, f"HTTP {status_code}"))


@contextlib.contextmanager
def http_client(method: str, url: str, name: str) -> Iterator[HttpClientSpan]:
    attributes = {
        "http.request.method": method,
        "url.full": _shown_url(url),
        "server.address": urlsplit(url).hostname or "",
    }
    with tracer().start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes) as span:
        yield HttpClientSpan(span)


def _shown_url(url: str) -> str:
    """`url` without user info, query or fragment (where a callback URL may carry a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc, query="", fragment="").geturl()


@contextlib.contextmanager
def http_server(method: str, scheme: str, path: str, headers: dict[str, str]) -> Iterator[trace.Span]:
    """A SERVER span for one request, continuing the caller's trace when its headers carry one."""
    attributes = {"http.request.method": method, "url.scheme": scheme, "url.path": path}
    with tracer().start_as_current_span(
        method, context=propagate.extract(headers), kind=SpanKind.SERVER, attributes=attributes
    ) as span:
        yield span


def server_answered(span: trace.Span, method: str, route: str | None, status_code: int) -> None:
    """Name the request's span after its route and record its answer (a 5xx is an error)."""
    if route:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status_code)
    if status_code >= 500:
        span.set_status(Status(StatusCode.ERROR, f"HTTP {status_code}"))


class TraceIdFilter(logging.Filter):
    """Adds `trace_id` to a log record made while a sampled span is current."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid and getattr(record, "trace_id", None) is None:
            record.trace_id = format(context.trace_id, "032x")
        return True
