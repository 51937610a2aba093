"""rq-dashboard as a web service of its own (e.g. a second Render service):

    uvicorn app.dashboard_service:app --host 0.0.0.0 --port $PORT

The same dashboard as `/dashboard` in the API (JSON serializer, the settings' Redis client with
its timeouts and TLS options, constant-time basic auth), at `/dashboard/`. Alone on the internet
it has nothing but its credentials to protect it, so without both DASHBOARD_USERNAME and
DASHBOARD_PASSWORD it serves nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from app.dashboard import PATH, dashboard_app
from app.errors import EXCEPTION_HANDLERS
from core.connection import sync_redis
from core.logs import configure_logging
from core.settings import Settings, get_settings


def create_dashboard_service(settings: Settings | None = None, connection: redis.Redis | None = None) -> Starlette:
    """The standalone dashboard; `connection` replaces the client built from settings (tests)."""
    settings = settings or get_settings()
    client = connection or sync_redis(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            client.close()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def home(request: Request) -> Response:
        return RedirectResponse(f"{PATH}/")

    return Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Mount(PATH, dashboard_app(lambda: client, settings, require_credentials=True)),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )


configure_logging(get_settings())
app = create_dashboard_service()
