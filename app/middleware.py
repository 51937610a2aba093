"""The middleware stack, outermost first: CORS, API keys, body size."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from app.auth import auth_middleware
from app.replication import ReplicaAckMiddleware
from app.sizelimit import BodySizeLimitMiddleware
from core.settings import Settings


def cors_origins(settings: Settings) -> list[str]:
    return [origin.strip().rstrip("/") for origin in settings.cors_origins.split(",") if origin.strip()]


def middleware(settings: Settings) -> list[Middleware]:
    """CORS sits outside auth so preflights (which carry no key) are answered and 401s carry CORS headers."""
    stack: list[Middleware] = []
    if origins := cors_origins(settings):
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "Idempotency-Key",
                    "Last-Event-ID",
                    "Cache-Control",
                    "traceparent",
                    "tracestate",
                ],
                expose_headers=["Location", "Retry-After", "WWW-Authenticate", "Cache-Status"],
                max_age=600,
            )
        )
    stack.append(auth_middleware(settings))
    stack.append(Middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes))
    if settings.redis_min_replicas_ack:
        stack.append(
            Middleware(
                ReplicaAckMiddleware,
                replicas=settings.redis_min_replicas_ack,
                timeout=settings.redis_replicas_ack_timeout,
            )
        )
    return stack
