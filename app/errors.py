"""Problem documents (RFC 9457) for every error, and the handlers that produce them.

ProblemError                    -> its own status
  BadRequestError               -> 400  malformed JSON, body not an object
  NotFoundError                 -> 404  no such job (or it expired)
  ConflictError                 -> 409  the job's state forbids the action
  PayloadTooLargeError          -> 413
  UnsupportedMediaTypeError     -> 415
  ValidationFailedError         -> 422  field problems in `errors`
  TooManyRequestsError          -> 429  rate or active-jobs quota exceeded, with Retry-After
401 (missing/invalid API key) is answered by the auth middleware (app/auth.py) with WWW-Authenticate
redis ConnectionError/TimeoutError -> 503  Redis unreachable (no primary known to the Sentinels included)
redis ReadOnlyError/MasterDownError -> 503  reached a replica, not the primary: a failover under way
redis NOREPLICAS reply            -> 503  the primary's min-replicas-to-write is not met: nothing written
redis OutOfMemoryError            -> 503  Redis full (maxmemory reached under noeviction): nothing written
any other exception             -> 500  logged, never echoed
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MasterDownError as RedisMasterDownError
from redis.exceptions import OutOfMemoryError as RedisOutOfMemoryError
from redis.exceptions import ReadOnlyError as RedisReadOnlyError
from redis.exceptions import ResponseError as RedisResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger("app.errors")


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        # ASCII-escaped: a detail quoting client input (a lone surrogate, say) can never fail to encode.
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


class ProblemError(Exception):
    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = dict(headers) if headers else None


class BadRequestError(ProblemError):
    status, slug, title = 400, "malformed-request", "Malformed request"


class NotFoundError(ProblemError):
    status, slug, title = 404, "not-found", "Not found"


class ConflictError(ProblemError):
    status, slug, title = 409, "conflict", "Conflict with the job's state"


class PayloadTooLargeError(ProblemError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class UnsupportedMediaTypeError(ProblemError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class ValidationFailedError(ProblemError):
    status, slug, title = 422, "validation-error", "Invalid request"

    @classmethod
    def field(cls, loc: Sequence[str | int], msg: str) -> ValidationFailedError:
        where = ".".join(str(part) for part in loc)
        return cls(f"{where}: {msg}" if where else msg, errors=[{"loc": list(loc), "msg": msg}])


class TooManyRequestsError(ProblemError):
    status, slug, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProblemResponse:
    body: dict[str, Any] = {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = list(errors)
    return ProblemResponse(body, status_code=status, headers=headers)


async def handle_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem(exc.status, exc.slug, exc.title, exc.detail, exc.errors, exc.headers)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # Starlette names only the first route's methods when a path has several routes
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem(exc.status_code, slug, str(exc.detail), str(exc.detail), headers=headers)


def allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return sorted(methods)


def _redis_unavailable(why: str) -> Response:
    """503 `redis-unavailable` with `Retry-After`: nothing was changed, the client may try again."""
    detail = f"The job store (Redis) is {why}; nothing was changed. Try again shortly."
    return problem(503, "redis-unavailable", "Service unavailable", detail, headers={"Retry-After": "5"})


async def handle_redis_down(request: Request, exc: Exception) -> Response:
    logger.warning("redis unavailable: %s: %s", type(exc).__name__, exc)
    return _redis_unavailable("unreachable")


async def handle_redis_not_primary(request: Request, exc: Exception) -> Response:
    # A demoted primary refuses a script or a MULTI whole (READONLY) before anything of it is applied.
    logger.warning("redis is not the primary (failover under way?): %s: %s", type(exc).__name__, exc)
    return _redis_unavailable("changing primaries")


async def handle_redis_reply(request: Request, exc: Exception) -> Response:
    """A Redis error reply: `NOREPLICAS` (the primary's `min-replicas-to-write` is not met, the write is
    refused whole) is a 503 like a failover; any other is unexpected."""
    if str(exc).startswith("NOREPLICAS"):
        return await handle_redis_not_primary(request, exc)
    return await handle_unexpected(request, exc)


async def handle_redis_full(request: Request, exc: Exception) -> Response:
    # Redis refuses a write that could grow memory before anything of it is applied: a script's first
    # write, or a MULTI whose queued commands are then discarded (EXECABORT).
    logger.error("redis is full, a write was refused: %s", exc)
    return problem(
        503,
        "redis-full",
        "Service unavailable",
        "The job store (Redis) is full (its maxmemory is reached); nothing was changed. Try again later.",
        headers={"Retry-After": "30"},
    )


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal-error", "Internal server error", "An unexpected error occurred; it has been logged.")


EXCEPTION_HANDLERS = {
    ProblemError: handle_problem,
    HTTPException: handle_http_exception,
    RedisConnectionError: handle_redis_down,
    RedisTimeoutError: handle_redis_down,
    RedisOutOfMemoryError: handle_redis_full,
    RedisReadOnlyError: handle_redis_not_primary,
    RedisMasterDownError: handle_redis_not_primary,
    RedisResponseError: handle_redis_reply,
    Exception: handle_unexpected,
}
