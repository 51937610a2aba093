"""The Starlette application: `create_app()` for tests, `app` for uvicorn."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator

import redis
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware

from app import console, metrics
from app.dashboard import mount_dashboard
from app.errors import EXCEPTION_HANDLERS
from app.flow import app_limits
from app.live import EventHub
from app.middleware import middleware
from app.routes import batches, control, docs, events, jobs, ops, schedules
from app.schedules import declare_schedules
from app.store import JobStore
from app.tracing import tracing_middleware
from core import durability
from core.connection import async_redis, sync_redis
from core.logs import configure_logging
from core.rqadapter.version import check_rq_version
from core.settings import Settings, get_settings

logger = logging.getLogger("app")


def create_app(
    settings: Settings | None = None,
    connections: tuple[redis.Redis, aioredis.Redis] | None = None,
) -> Starlette:
    """The app; `connections` (sync, asyncio) replaces the clients built from settings (tests)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        check_rq_version(settings)
        sync, aio = connections or (sync_redis(settings), async_redis(settings))
        store = JobStore(settings, sync, aio)
        app.state.store = store
        app.state.events = EventHub(store, settings)
        try:
            await store.warm_up()
            await run_in_threadpool(declare_schedules, sync)
            for warning in await durability.check_async(aio):
                logger.warning(warning)
        except Exception as exc:  # Redis may come up later; routes answer 503 until then.
            logger.warning("Redis not reachable at start-up (%s); serving 503 until it is", exc)
        gc.collect()
        gc.freeze()  # start-up objects (modules, app, schemas) leave the collector's scans
        try:
            yield
        finally:
            await app.state.events.aclose()
            await store.scripts.pipeline.aclose()
            await store.aio.aclose()
            store.sync.close()

    app_metrics = metrics.Metrics()
    app = Starlette(
        routes=[
            *jobs.routes,
            *control.routes,
            *events.routes,
            *ops.routes,
            *metrics.routes,
            *docs.routes,
            *schedules.routes,
            *console.routes,
        ],
        middleware=[
            *tracing_middleware(),
            Middleware(metrics.RequestMetricsMiddleware, metrics=app_metrics),
            *middleware(settings),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.router.routes.extend(batches.routes)
    app.state.settings = settings
    app.state.flow_limits = app_limits(settings)  # a malformed flow-control setting stops the process here
    app.state.metrics = app_metrics
    mount_dashboard(app, settings)
    return app


configure_logging(get_settings())
app = create_app()
