"""Operations and discovery: health, readiness, counters, job types."""

from __future__ import annotations

import asyncio
import time

from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.flow import limits_view
from app.store import JobStore
from core.settings import Settings
from jobs.catalog import registry


def _store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


async def healthz(request: Request) -> Response:
    """Liveness: the process serves. Never touches Redis."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: Redis answers within READYZ_TIMEOUT, with the live worker count; else a 503 problem.

    Zero workers is still ready: the web accepts jobs, they wait in their queues.
    """
    store = _store(request)
    settings: Settings = request.app.state.settings
    started = time.perf_counter()
    try:
        async with asyncio.timeout(settings.readyz_timeout):
            await store.ping()
            ping_ms = (time.perf_counter() - started) * 1000
            workers = await store.workers()
    except TimeoutError:
        raise RedisTimeoutError(f"Redis did not answer within {settings.readyz_timeout} s") from None
    return JSONResponse(
        {
            "status": "ready",
            "redis": "ok",
            "redis_ping_ms": round(ping_ms, 2),
            "workers": workers["count"],
            "workers_busy": workers["busy"],
        }
    )


async def stats(request: Request) -> Response:
    return JSONResponse({**await _store(request).stats(), "limits": await limits_view(request)})


async def job_types(request: Request) -> Response:
    return JSONResponse(
        [
            {
                "type": spec.name,
                "description": spec.description,
                "queue": spec.queue,
                "timeout": spec.timeout,
                "retries": spec.retries,
                "cache_ttl": spec.cache_ttl,
                "args_schema": spec.args_schema(),
            }
            for spec in registry
        ]
    )


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/stats", stats, methods=["GET"]),
    Route("/job-types", job_types, methods=["GET"]),
]
