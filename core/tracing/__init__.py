"""OpenTelemetry tracing, loaded only when it is configured.

Tracing is on when an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), unless `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
Everything else (the endpoint's path, headers, timeout, compression, sampler, service name, resource
attributes, batch sizes) the SDK reads from its own `OTEL_*` variables. Those are read here and not in
`core.settings`: they belong to the SDK, and this module only decides whether to load it.

Off, this module is all there is: no OpenTelemetry module is imported, no exporter exists, and each
hook below costs one test of a cached flag. On, `core.tracing.sdk` is imported on first use (before
a worker forks its first horse, so horses inherit it).

A job's trace context travels in its meta (`core.meta.TRACE`) as W3C `traceparent`/`tracestate`,
written when the job is built inside a traced request (`core.submitting.initial_meta`), so it survives retries
and requeues; each run of the job is a span of that trace.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from rq.job import Job

T = TypeVar("T")

#: The W3C header (and carrier key) that names a trace and its parent span.
TRACEPARENT = "traceparent"
_OFF = contextlib.nullcontext()


@functools.cache
def enabled() -> bool:
    """Whether this process exports traces (read once from the environment)."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def prepare(service: str) -> None:
    """Load the SDK and set up the exporter now (`service` names this process unless `OTEL_SERVICE_NAME`
    does); a forking worker calls it before its first fork so that no horse imports it."""
    if enabled():
        from core.tracing import sdk

        sdk.setup(service)


def carrier() -> dict[str, str] | None:
    """The current span's context as W3C headers (for a new job's meta); None when tracing is off or no
    span is current."""
    if not enabled():
        return None
    from core.tracing import sdk

    return sdk.current_carrier()


def trace_id(carried: object) -> str | None:
    """The trace id (32 hex digits) in a carrier from a job's meta, or None."""
    if not isinstance(carried, Mapping):
        return None
    parts = str(carried.get(TRACEPARENT, "")).split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or parts[1] == "0" * 32:
        return None
    return parts[1]


def job_run(job: Job) -> contextlib.AbstractContextManager[Any]:
    """The span of one run (attempt) of `job`, current while it runs; a no-op when tracing is off."""
    if not enabled():
        return _OFF
    from core.tracing import sdk

    return sdk.job_run(job)


def in_context(call: Callable[[], T]) -> Callable[[], T]:
    """`call`, to run in another thread with the current span still current (no change when tracing is off)."""
    if not enabled():
        return call
    from core.tracing import sdk

    return sdk.in_context(call)


class ClientSpan(Protocol):
    """An outgoing HTTP request's span: the headers that carry its context, and its answer."""

    headers: dict[str, str]

    def answered(self, status_code: int) -> None: ...


class _NoClientSpan:
    def __init__(self) -> None:
        self.headers: dict[str, str] = {}

    def answered(self, status_code: int) -> None:
        pass


@contextlib.contextmanager
def http_client(method: str, url: str, name: str) -> Iterator[ClientSpan]:
    """A CLIENT span around one outgoing request, named `name`; a no-op when tracing is off."""
    if not enabled():
        yield _NoClientSpan()
        return
    from core.tracing import sdk

    with sdk.http_client(method, url, name) as span:
        yield span
