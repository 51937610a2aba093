"""The Starlette application: `create_app()` for tests, `app` for uvicorn."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import redis
import redis.asyncio as aioredis
from starlette.applications import Starlette

from app.errors import EXCEPTION_HANDLERS
from app.routes import jobs, ops
from app.store import JobStore
from jobs import durability
from jobs.connection import async_redis, sync_redis
from jobs.settings import Settings, get_settings

logger = logging.getLogger("app")


def create_app(
    settings: Settings | None = None,
    connections: tuple[redis.Redis, aioredis.Redis] | None = None,
) -> Starlette:
    """The app; `connections` (sync, asyncio) replaces the clients built from settings (tests)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sync, aio = connections or (sync_redis(settings), async_redis(settings))
        store = JobStore(settings, sync, aio)
        app.state.store = store
        try:
            await store.warm_up()
            for warning in await durability.check_async(aio):
                logger.warning(warning)
        except Exception as exc:  # Redis may come up later; routes answer 503 until then.
            logger.warning("Redis not reachable at start-up (%s); serving 503 until it is", exc)
        try:
            yield
        finally:
            await store.aio.aclose()
            store.sync.close()

    app = Starlette(
        routes=[*jobs.routes, *ops.routes],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app


app = create_app()
