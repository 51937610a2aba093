"""Submissions per API key and window (`RATE_LIMIT`, e.g. `60/minute`), counted in Redis.

The `limits` library's moving window runs as a Lua script on the same Redis as the jobs, so
every web process shares one count per key; one key's burst never touches another's.
"""

from __future__ import annotations

import math
import time

import redis.asyncio as aioredis
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.requests import Request

from app.errors import TooManyRequestsError
from core import keys
from core.settings import Settings

NAMESPACE = "submit"


class SubmissionRateLimit:
    def __init__(self, rate: str, aio: aioredis.Redis, redis_url: str) -> None:
        self.item: RateLimitItem = parse(rate)
        scheme = "async+rediss" if redis_url.startswith("rediss://") else "async+redis"
        # Share the web process's asyncio pool: same server, TLS options and timeouts as the job store.
        storage = RedisStorage(
            f"{scheme}://", implementation="redispy", key_prefix=keys.RATE_LIMIT_PREFIX,
            connection_pool=aio.connection_pool,  # type: ignore[arg-type]  # passed through to redis.asyncio
        )  # fmt: skip
        self.limiter = MovingWindowRateLimiter(storage)

    async def hit(self, key_name: str) -> None:
        """Count one submission by `key_name`; 429 with Retry-After when its window is full."""
        if await self.limiter.hit(self.item, NAMESPACE, key_name):
            return
        stats = await self.limiter.get_window_stats(self.item, NAMESPACE, key_name)
        retry_after = math.ceil(stats.reset_time - time.time())
        raise TooManyRequestsError(
            f"rate limit of {self.item} submissions reached for this API key; retry after {max(1, retry_after)} s",
            retry_after,
        )


async def count_submission(request: Request, key_name: str) -> None:
    """Apply RATE_LIMIT (if set) to one submission by `key_name`."""
    settings: Settings = request.app.state.settings
    if not settings.rate_limit:
        return
    limiter: SubmissionRateLimit | None = getattr(request.app.state, "submission_rate_limit", None)
    if limiter is None:
        limiter = SubmissionRateLimit(settings.rate_limit, request.app.state.store.aio, settings.redis_url)
        request.app.state.submission_rate_limit = limiter
    await limiter.hit(key_name)
