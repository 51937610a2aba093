"""`core.tracing`'s cheap half: when tracing is on, what a job's carrier says, and the hooks when off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core import tracing
from core.meta import TRACE
from core.submitting import initial_meta as initial

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(autouse=True)
def fresh_flag() -> Iterator[None]:
    tracing.enabled.cache_clear()
    yield
    tracing.enabled.cache_clear()


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "false"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_tracing_is_on_only_with_an_endpoint_and_not_disabled(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], on: bool
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracing.enabled() is on


@pytest.mark.parametrize(
    ("carried", "trace_id"),
    [
        ({"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}, TRACE_ID),
        ({"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-00", "tracestate": "a=1"}, TRACE_ID),
        ({"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"}, None),
        ({"traceparent": "garbage"}, None),
        ({}, None),
        ("00-not-a-dict", None),
        (None, None),
    ],
)
def test_the_trace_id_is_read_from_a_jobs_carrier(carried: object, trace_id: str | None) -> None:
    assert tracing.trace_id(carried) == trace_id


def test_off_the_hooks_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert tracing.carrier() is None
    assert TRACE not in initial("demo.noop", "key")

    def call() -> int:
        return 7

    assert tracing.in_context(call) is call
    with tracing.job_run(None) as span, tracing.http_client("POST", "http://h/x", "POST x") as client:  # type: ignore[arg-type]
        assert span is None
        assert client.headers == {}
