"""Operations and discovery: health, readiness, counters, job types."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.store import JobStore
from jobs.catalog import registry


def _store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


async def healthz(request: Request) -> Response:
    """Liveness: the process serves. Never touches Redis."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: Redis answers (a Redis error becomes a 503 problem)."""
    store = _store(request)
    await store.ping()
    workers = await store.workers()
    return JSONResponse({"status": "ready", "redis": "ok", "workers": workers["count"]})


async def stats(request: Request) -> Response:
    return JSONResponse(await _store(request).stats())


async def job_types(request: Request) -> Response:
    return JSONResponse(
        [
            {
                "type": spec.name,
                "description": spec.description,
                "queue": spec.queue,
                "timeout": spec.timeout,
                "retries": spec.retries,
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
