"""`GET /metrics` in Prometheus text format, and what the web process counts for it.

Counted by this web process (reset when it restarts; scrape each instance):
  jobsvc_submissions_total{type, outcome}                 POST /jobs by job type and outcome
  jobsvc_http_request_duration_seconds{method, route, status}   by route template, not raw path
Read from Redis at scrape time, the same from every instance (O(queues), never O(jobs)):
  jobsvc_redis_up                                         1, or 0 when Redis did not answer
  jobsvc_queue_depth{queue}                               jobs waiting in each queue
  jobsvc_jobs{queue, status}                              jobs per RQ status per queue
  jobsvc_workers{state}                                   live workers, busy / idle
  jobsvc_job_run_seconds{type, status}                    run times recorded by workers (core/runtimes.py)
  jobsvc_schedule_runs_total / jobsvc_schedule_skipped_total   runs fired and due times skipped, all schedules
  jobsvc_schedules{state}                                 schedules, enabled / disabled
  jobsvc_batches{status}                                  batches running now, and ended so far by status
  jobsvc_flow_running / _limit / _waiting{limit}          each flow-control limit: running (a rate: starts in its
                                                          window), its limit, queued jobs it applies to
  jobsvc_flow_held_back_total{limit}                      claims a limit refused (rate() = jobs held back per s)
With `METRICS_TOKEN` set the endpoint wants `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import ProblemError
from app.store import JobStore
from core import keys, runtimes
from core.connection import REDIS_DOWN
from core.flow.state import FlowState, read_state_async
from core.settings import Settings
from jobs.catalog import registry

PREFIX = "jobsvc"
disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series beside every counter and histogram
submissions_logger = logging.getLogger("app.submissions")


class UnauthorizedError(ProblemError):
    status, slug, title = 401, "unauthorized", "Authentication required"


class Metrics:
    """The web process's own metrics, in a registry of its own (one per app, so tests can build many)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.submissions = Counter(
            f"{PREFIX}_submissions",
            "Job submissions (POST /jobs) by job type and outcome",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP request duration by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


# -- HTTP request durations ------------------------------------------------------------------------


class RequestMetricsMiddleware:
    """Times every HTTP request until its response is complete, labelled by the matched route's template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.http_duration.labels(scope["method"], route, str(status)).observe(
                time.perf_counter() - started
            )


# -- submissions -----------------------------------------------------------------------------------


def submission_outcome(status: int, reused: bool = False) -> str:
    """The `outcome` label of a submission answered with `status`; `reused`: answered with an identical job."""
    if status in (200, 201, 202):
        if status == 202:
            return "accepted"
        return "reused" if reused else "existing"
    if status in (400, 413, 415, 422):
        return "invalid"
    if status == 503:
        return "unavailable"
    if 400 <= status < 500:
        return "rejected"
    return "error"


def _type_label(request: Request) -> str:
    name = getattr(request.state, "job_type", None)
    return name if isinstance(name, str) and name in registry else "unknown"


def track_submission(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Count every submission by type and outcome, and log each job submitted (id, type, queue; never args).

    The endpoint sets `request.state.job_type` (the `type` the client sent) once it has read the
    body, `request.state.job` (the RQ job) once it is enqueued or found, and `request.state.reused`
    when that job is an identical one reused rather than an Idempotency-Key's original.
    """

    @functools.wraps(endpoint)
    async def tracked(request: Request) -> Response:
        try:
            response = await endpoint(request)
        except ProblemError as exc:
            _metrics(request).submissions.labels(_type_label(request), submission_outcome(exc.status)).inc()
            raise
        except REDIS_DOWN:
            _metrics(request).submissions.labels(_type_label(request), "unavailable").inc()
            raise
        except Exception:
            _metrics(request).submissions.labels(_type_label(request), "error").inc()
            raise
        outcome = submission_outcome(response.status_code, reused=getattr(request.state, "reused", False))
        _metrics(request).submissions.labels(_type_label(request), outcome).inc()
        job = getattr(request.state, "job", None)
        if job is not None:
            submissions_logger.info(
                "job submitted" if outcome == "accepted" else "job submission answered with an existing job",
                extra={"job_id": job.id, "type": _type_label(request), "queue": job.origin, "outcome": outcome},
            )
        return response

    return tracked


# -- the scrape ------------------------------------------------------------------------------------


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def redis_families(stats: dict[str, Any], runs: dict[tuple[str, str], runtimes.RunTimes]) -> list[Metric]:
    depth = GaugeMetricFamily(f"{PREFIX}_queue_depth", "Jobs waiting in each queue", labels=["queue"])
    jobs = GaugeMetricFamily(f"{PREFIX}_jobs", "Jobs per RQ status per queue", labels=["queue", "status"])
    for queue, counts in stats["queues"].items():
        depth.add_metric([queue], counts["queued"])
        for status, count in counts.items():
            jobs.add_metric([queue, status], count)
    workers = GaugeMetricFamily(f"{PREFIX}_workers", "Live workers by state", labels=["state"])
    busy = stats["workers"]["busy"]
    workers.add_metric(["busy"], busy)
    workers.add_metric(["idle"], stats["workers"]["count"] - busy)
    run_seconds = HistogramMetricFamily(
        f"{PREFIX}_job_run_seconds",
        "Job run time by job type and outcome, recorded by workers",
        labels=["type", "status"],
    )
    for (job_type, status), series in sorted(runs.items()):
        run_seconds.add_metric([job_type, status], series.cumulative(), sum_value=series.total)
    return [depth, jobs, workers, run_seconds]


async def batch_family(store: JobStore) -> Metric:
    """Batches running now, and those ended so far by final status: two O(1) reads."""
    async with store.aio.pipeline(transaction=False) as pipe:
        pipe.scard(keys.BATCHES_RUNNING)
        pipe.hgetall(keys.BATCHES_ENDED)
        running, ended = await pipe.execute()
    family = GaugeMetricFamily(f"{PREFIX}_batches", "Batches running, and ended so far by status", labels=["status"])
    family.add_metric(["running"], running)
    for status in ("finished", "failed", "canceled"):
        family.add_metric([status], int(ended.get(status.encode(), 0)))
    return family


def flow_families(state: FlowState) -> list[Metric]:
    """Each flow-control limit's running, limit and waiting, and the claims each limit held back."""
    described = {
        "running": "Running jobs under each flow-control limit (a rate limit: starts in its current window)",
        "limit": "Each flow-control limit",
        "waiting": "Queued jobs each flow-control limit applies to",
    }
    gauges = {
        field: GaugeMetricFamily(f"{PREFIX}_flow_{field}", text, labels=["limit"]) for field, text in described.items()
    }
    for name, limit in state.limits.items():
        for field, value in limit.as_json().items():
            gauges[field].add_metric([name], value)
    held = CounterMetricFamily(
        f"{PREFIX}_flow_held_back", "Claims a flow-control limit refused (type:<name> or key:<owner>)", labels=["limit"]
    )
    for name, count in sorted(state.held_back.items()):
        held.add_metric([name], count)
    return [*gauges.values(), held]


async def schedule_families(store: JobStore) -> list[Metric]:
    """Schedule counters kept by the firing script, and how many schedules exist: O(1) reads."""
    async with store.aio.pipeline(transaction=False) as pipe:
        pipe.hmget(keys.SCHEDULE_METRICS, "runs", "skipped")
        pipe.zcard(keys.SCHEDULES_ALL)
        pipe.zcard(keys.SCHEDULES_DUE)
        (runs, skipped), total, enabled = await pipe.execute()
    fired = CounterMetricFamily(f"{PREFIX}_schedule_runs", "Runs fired by all schedules (one job each)")
    fired.add_metric([], int(runs or 0))
    missed = CounterMetricFamily(
        f"{PREFIX}_schedule_skipped", "Due times of all schedules that fired no run (overlap, misfire, quota)"
    )
    missed.add_metric([], int(skipped or 0))
    count = GaugeMetricFamily(f"{PREFIX}_schedules", "Schedules by state", labels=["state"])
    count.add_metric(["enabled"], enabled)
    count.add_metric(["disabled"], total - enabled)
    return [fired, missed, count]


def _check_token(request: Request, settings: Settings) -> None:
    expected = settings.metrics_token.get_secret_value()
    if not expected:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else ""
    if not secrets.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()):
        raise UnauthorizedError(
            "/metrics needs Authorization: Bearer <METRICS_TOKEN>", headers={"WWW-Authenticate": "Bearer"}
        )


async def metrics_endpoint(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    _check_token(request, settings)
    store: JobStore = request.app.state.store
    up = GaugeMetricFamily(f"{PREFIX}_redis_up", "1 when Redis answered this scrape, else 0")
    try:
        stats = await store.stats()
        runs = runtimes.parse(await store.aio.hgetall(keys.JOB_RUNTIME))
    except (RedisConnectionError, RedisTimeoutError):
        up.add_metric([], 0)
        families: list[Metric] = [up]
    else:
        up.add_metric([], 1)
        families = [up, *redis_families(stats, runs), *await schedule_families(store)]
        families.append(await batch_family(store))
        families += flow_families(await read_state_async(store.aio, request.app.state.flow_limits))
    body = generate_latest(_metrics(request).registry) + generate_latest(_Families(families))
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)


routes = [Route("/metrics", metrics_endpoint, methods=["GET"])]
