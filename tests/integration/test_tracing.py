"""Tracing end to end: a real web process and real `rq worker`s exporting over OTLP/HTTP to a real
receiver (`tests.support.otlp`), and the proof that nothing of OpenTelemetry loads when it is off."""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.factories import steps_job
from tests.integration.test_spine import view, wait_status
from tests.support.otlp import ReceivedSpan, Receiver, serve
from tests.support.procs import ROOT, ProcessFactory, base_env

pytestmark = pytest.mark.integration

#: Forking (one horse per job) and concurrent (threads and tasks in one process): different run hooks.
WORKERS = {"forking": "1", "concurrent": "4"}


@pytest.fixture
def otlp() -> Iterator[Receiver]:
    yield from serve()


def tracing_env(receiver: Receiver) -> dict[str, str]:
    """Export to `receiver`, in batches sent after 100 ms (the SDK's default waits 5 s)."""
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}


def traceparent() -> tuple[str, str, str]:
    """A caller's W3C header, its trace id and its span id."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def post_job(client: httpx.Client, payload: dict[str, Any], header: str) -> dict[str, Any]:
    response = client.post("/jobs", json=payload, headers={"traceparent": header, "tracestate": "caller=1"})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def one(spans: list[ReceivedSpan], **match: Any) -> ReceivedSpan:
    found = [span for span in spans if all(getattr(span, key) == value for key, value in match.items())]
    assert len(found) == 1, (match, spans)
    return found[0]


def runs_of(spans: list[ReceivedSpan], job_id: str) -> list[ReceivedSpan]:
    runs = [s for s in spans if s.kind == "consumer" and s.attributes.get("messaging.message.id") == job_id]
    return sorted(runs, key=lambda span: int(span.attributes["job.attempt"]))


@pytest.mark.parametrize("worker", WORKERS)
def test_a_job_runs_in_the_trace_of_the_request_that_submitted_it(
    procs: ProcessFactory, otlp: Receiver, worker: str
) -> None:
    procs.env.update(tracing_env(otlp))
    web, url = procs.web()
    procs.worker(WORKER_CONCURRENCY=WORKERS[worker])
    header, trace_id, caller_span = traceparent()
    with httpx.Client(base_url=url, timeout=10) as client:
        job = post_job(client, steps_job(steps=2), header)
        assert job["trace_id"] == trace_id
        ended = wait_status(client, job["id"], {"finished"})
    assert ended["trace_id"] == trace_id

    otlp.wait(lambda spans: len(runs_of(spans, job["id"])) == 1 and any(s.kind == "server" for s in spans))
    spans = otlp.of_trace(trace_id)
    request = one(spans, kind="server")
    assert (request.service, request.name, request.parent_id) == ("jobsvc-web", "POST /jobs", caller_span)
    assert request.attributes["http.response.status_code"] == 202
    (run,) = runs_of(spans, job["id"])
    assert (run.service, run.name, run.parent_id, run.error) == (
        "jobsvc-worker",
        "run demo.steps",
        request.span_id,
        False,
    )
    assert run.attributes["job.attempt"] == 1 and run.attributes["job.type"] == "demo.steps"
    assert f"trace_id={trace_id}" in next(line for line in web.log().splitlines() if "job submitted" in line)


@pytest.mark.parametrize("worker", WORKERS)
def test_each_attempt_of_a_retried_job_is_a_span_of_its_own(procs: ProcessFactory, otlp: Receiver, worker: str) -> None:
    procs.env.update(tracing_env(otlp))
    _, url = procs.web()
    procs.worker(WORKER_CONCURRENCY=WORKERS[worker])
    header, trace_id, _ = traceparent()
    payload = steps_job(steps=1, retries=2, args={"fail_at": 1, "fail_attempts": 2})
    with httpx.Client(base_url=url, timeout=10) as client:
        job = post_job(client, payload, header)
        wait_status(client, job["id"], {"finished"}, timeout=30)

    otlp.wait(lambda spans: len(runs_of(spans, job["id"])) == 3, what="three attempts")
    request = one(otlp.of_trace(trace_id), kind="server")
    runs = runs_of(otlp.of_trace(trace_id), job["id"])
    assert [run.attributes["job.attempt"] for run in runs] == [1, 2, 3]
    assert [run.error for run in runs] == [True, True, False]
    assert all(run.parent_id == request.span_id for run in runs)
    assert "exception" in runs[0].events and "exception" not in runs[2].events


class CallbackReceiver(BaseHTTPRequestHandler):
    traceparents: list[str] = []

    def do_POST(self) -> None:  # noqa: N802  (the http.server name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        CallbackReceiver.traceparents.append(self.headers.get("traceparent", ""))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_completion_callback_is_delivered_in_the_jobs_trace(procs: ProcessFactory, otlp: Receiver) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), CallbackReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    CallbackReceiver.traceparents = []
    procs.env.update(tracing_env(otlp), CALLBACK_SECRET="s3cret", CALLBACK_ALLOW_PRIVATE="true")
    _, url = procs.web()
    procs.worker()
    header, trace_id, _ = traceparent()
    payload = steps_job(steps=1, callback_url=f"http://127.0.0.1:{server.server_address[1]}/hook")
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            job = post_job(client, payload, header)
            wait_status(client, job["id"], {"finished"})
            otlp.wait(lambda spans: any(s.kind == "client" for s in spans), what="the callback's span")
            assert view(client, job["id"])["callback"]["delivered"] is True
    finally:
        server.shutdown()
        server.server_close()

    spans = otlp.of_trace(trace_id)
    request = one(spans, kind="server")
    delivery = one(spans, kind="consumer", name="run callbacks.deliver")
    post = one(spans, kind="client")
    assert delivery.parent_id == request.span_id and delivery.attributes["job.attempt"] == 1
    assert (post.name, post.parent_id, post.error) == ("POST callback", delivery.span_id, False)
    assert post.attributes["http.response.status_code"] == 204
    assert CallbackReceiver.traceparents == [f"00-{trace_id}-{post.span_id}-01"]


def test_a_collector_that_is_down_delays_a_forked_jobs_end_by_at_most_a_second(procs: ProcessFactory) -> None:
    """A work horse sends its spans before its job's end is recorded, for at most a second (not the
    exporter's 10 s of retries): jobs still finish, and the web still answers."""
    from stack.redis_server import free_port

    procs.env.update(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}", OTEL_BSP_SCHEDULE_DELAY="100")
    _, url = procs.web()
    procs.worker(WORKER_CONCURRENCY="1")
    header, trace_id, _ = traceparent()
    with httpx.Client(base_url=url, timeout=10) as client:
        jobs = [post_job(client, steps_job(steps=1), header) for _ in range(4)]
        ended = [wait_status(client, job["id"], {"finished"}, timeout=15) for job in jobs]
    assert [job["trace_id"] for job in ended] == [trace_id] * 4
    runs = [(parse_time(job["ended_at"]) - parse_time(job["started_at"])) for job in ended]
    assert all(run < 2.5 for run in runs), runs


def parse_time(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_disabled_tracing_exports_nothing_and_carries_no_context(procs: ProcessFactory, otlp: Receiver) -> None:
    """`OTEL_SDK_DISABLED=true` wins over a configured endpoint: the receiver hears nothing at all."""
    procs.env.update(tracing_env(otlp), OTEL_SDK_DISABLED="true")
    web, url = procs.web()
    procs.worker()
    header, trace_id, _ = traceparent()
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post("/jobs", json=steps_job(steps=1), headers={"traceparent": header})
        assert response.status_code == 202, response.text
        ended = wait_status(client, response.json()["id"], {"finished"})
    assert "trace_id" not in ended and "trace_id" not in response.json()
    assert trace_id not in web.log()
    assert otlp.requests == 0


def test_without_otel_variables_no_opentelemetry_module_is_ever_imported(redis_url: str) -> None:
    """Web and both worker classes in one process without `OTEL_*` (`tests/support/untraced_run.py`): an
    import audit hook, inherited by the forked horse, sees no OpenTelemetry module loaded anywhere."""
    env = {key: value for key, value in base_env(redis_url).items() if not key.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.untraced_run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "finished: 2 of 2; OpenTelemetry modules imported: none", done.stdout
