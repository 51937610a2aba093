"""Completion callbacks: a signed POST to the job's `callback_url` once it ends.

Delivery is a job of its own (`callbacks.deliver`, internal, on the `low` queue), enqueued
in the round trip that records the end, so the worker that ran the job never waits on a
receiver. Each attempt has `CALLBACK_TIMEOUT` seconds; a network error, a timeout or a
non-2xx answer fails the attempt and RQ retries it with exponential backoff
(`CALLBACK_BACKOFF_BASE`, doubling, capped) until `CALLBACK_MAX_ATTEMPTS` attempts were
made. An address the SSRF guard refuses is not retried. The body is built on the first
attempt and frozen, so every attempt sends (and signs) the same bytes. The job's view shows
the state in `meta["callback"]`: `{"attempts", "delivered", "last_error"}`.

Delivery is at least once: receivers should treat `X-Job-Id` + `status` as idempotent.

With tracing on, each delivery attempt runs in the job's trace (the delivery job carries the job's
trace context), its POST is a CLIENT span, and the POST sends `traceparent` to the receiver.
"""

from __future__ import annotations

import json
import math
import ssl
from typing import Any, Literal

import httpcore
import redis
from pydantic import BaseModel, ConfigDict, Field
from rq import Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.results import Result

from core import signature, tracing
from core.clock import iso_z
from core.meta import CALLBACK, CALLBACK_BODY, CALLBACK_TARGET, CALLBACK_URL, TRACE, TYPE
from core.netguard import GuardedBackend, RefusedAddressError, UnresolvableHostError
from core.outcome import error_line
from core.queues import SERIALIZER, QueueName, make_queue
from core.settings import Settings, get_settings
from jobs import progress
from jobs.registry import job_type

#: meta of the job that asked for a callback: where to POST, and how delivery went.
#: The statuses that call back (a canceled job never ran: no callback).
CALLBACK_STATUSES = frozenset(status.value for status in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED))
DELIVER = "callbacks.deliver"
QUEUE: QueueName = "low"
#: meta of the delivery job: the frozen body and target.
USER_AGENT = "jobsvc-callback/1"


class CallbackDeliveryError(RuntimeError):
    """One attempt failed (network error, timeout or a non-2xx answer); RQ retries it."""


class DeliverArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(min_length=1, max_length=200)
    status: Literal["finished", "failed", "stopped"]


def initial_state() -> dict[str, Any]:
    return {"attempts": 0, "delivered": False, "last_error": None}


def retry_intervals(settings: Settings) -> list[int]:
    """Seconds between attempts: base, 2*base, 4*base ... each capped."""
    base, cap = settings.callback_backoff_base, settings.callback_backoff_max
    return [min(cap, base * 2**retry) for retry in range(settings.callback_max_attempts - 1)]


def enqueue_delivery(
    job: Job, status: str, connection: redis.Redis, pipe: redis.client.Pipeline, settings: Settings | None = None
) -> Job:
    """Queue the delivery job for `job` ended with `status` onto `pipe` (the caller executes it)."""
    settings = settings or get_settings()
    intervals = retry_intervals(settings)
    queue = make_queue(QUEUE, connection)
    delivery = queue.create_job(
        f"{__name__}.{deliver.__name__}",
        kwargs={"job_id": job.id, "status": status},
        timeout=math.ceil(settings.callback_timeout) + 5,
        result_ttl=settings.result_ttl,
        failure_ttl=settings.failure_ttl,
        description=f"callback for job {job.id} ({status})",
        retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
        meta={TYPE: DELIVER, "target": job.id, **_trace_of(job)},
    )
    queue.enqueue_job(delivery, pipeline=pipe)
    return delivery


def _trace_of(job: Job) -> dict[str, Any]:
    """The job's trace context, for its delivery job: the delivery's runs join the job's trace."""
    carried = job.meta.get(TRACE)
    return {TRACE: carried} if carried else {}


def payload(target: Job, status: str, result: Result | None) -> dict[str, Any]:
    """`{"id", "type", "status", "result", "error", "ended_at"}` of API.md section 7."""
    finished = status == JobStatus.FINISHED.value
    return {
        "id": target.id,
        "type": target.meta.get(TYPE),
        "status": status,
        "result": result.return_value if finished and result is not None else None,
        "error": None if finished else error_line(target, result),
        "ended_at": iso_z(target.ended_at),
    }


def post(url: str, body: bytes, headers: dict[str, str], settings: Settings) -> int:
    """POST `body` through the SSRF guard; the receiver's status code. Redirects are not followed."""
    timeout = settings.callback_timeout
    backend = GuardedBackend(allow_private=settings.callback_allow_private)
    with httpcore.ConnectionPool(
        ssl_context=ssl.create_default_context(), network_backend=backend, max_connections=1
    ) as pool:
        with pool.stream(
            "POST",
            url,
            headers=list(headers.items()),
            content=body,
            extensions={"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}},
        ) as response:
            return response.status


@job_type(
    DELIVER,
    args=DeliverArgs,
    description="Deliver a completion callback (internal: enqueued by the service when a job ends)",
    queue=QUEUE,
    internal=True,
)
def deliver(job_id: str, status: str) -> dict[str, Any]:
    settings = get_settings()
    current = progress.current_job()
    if current is None:
        raise RuntimeError("callbacks.deliver runs in a worker")
    connection = current.connection
    attempt = progress.attempt()
    body, url = current.meta.get(CALLBACK_BODY), current.meta.get(CALLBACK_TARGET)
    if body is None or url is None:
        try:
            target = Job.fetch(job_id, connection=connection, serializer=SERIALIZER)
        except NoSuchJobError:
            return {"delivered": False, "attempts": attempt, "error": "the job expired before its callback"}
        url = target.meta.get(CALLBACK_URL)
        if not url:
            return {"delivered": False, "attempts": attempt, "error": "the job has no callback_url"}
        body = json.dumps(payload(target, status, target.latest_result()), separators=(",", ":"))
        current.meta.update({CALLBACK_BODY: body, CALLBACK_TARGET: url})
        current.save_meta()

    secret = settings.callback_secret.get_secret_value()
    if not secret:
        record(connection, job_id, attempt, False, "CALLBACK_SECRET is not set on the worker")
        raise CallbackDeliveryError("CALLBACK_SECRET is not set on the worker")
    raw = body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Job-Id": job_id,
        signature.HEADER: signature.sign(raw, secret),
        "X-Callback-Attempt": str(attempt),
    }
    try:
        with tracing.http_client("POST", url, "POST callback") as span:
            code = post(url, raw, headers | span.headers, settings)  # the receiver may continue the trace
            span.answered(code)
    except RefusedAddressError as exc:  # not retried: the address will not become acceptable
        record(connection, job_id, attempt, False, f"refused: {exc}")
        return {"delivered": False, "attempts": attempt, "error": f"refused: {exc}"}
    except httpcore.TimeoutException as exc:
        error = f"timed out after {settings.callback_timeout:g} s ({type(exc).__name__})"
        record(connection, job_id, attempt, False, error)
        raise CallbackDeliveryError(error) from None
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, UnresolvableHostError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
        record(connection, job_id, attempt, False, error)
        raise CallbackDeliveryError(error) from None
    if not 200 <= code < 300:
        error = f"receiver answered HTTP {code}"
        record(connection, job_id, attempt, False, error)
        raise CallbackDeliveryError(error)
    record(connection, job_id, attempt, True, None)
    return {"delivered": True, "attempts": attempt, "status_code": code}


def record(connection: redis.Redis, job_id: str, attempts: int, delivered: bool, last_error: str | None) -> None:
    """Write `meta["callback"]` of the job that asked for it, without clobbering other meta writes."""
    key = Job.key_for(job_id)
    state = {"attempts": attempts, "delivered": delivered, "last_error": last_error}
    with connection.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)  # type: ignore[no-untyped-call]
                raw = pipe.hget(key, "meta")
                if raw is None:
                    return  # the job expired meanwhile
                meta = SERIALIZER.loads(raw)
                meta[CALLBACK] = state
                pipe.multi()
                pipe.hset(key, "meta", SERIALIZER.dumps(meta))
                pipe.execute()
                return
            except redis.WatchError:
                continue
