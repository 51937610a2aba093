"""Redis clients built from settings: bounded timeouts, TLS options, one place for both."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.maint_notifications import MaintNotificationsConfig

from core.rqadapter.redis_private import hiredis_packing
from core.settings import Settings

#: Redis errors that mean "cannot use Redis right now" (retry later), not "bad command": unreachable, or
#: full (maxmemory reached under `noeviction`: writes are refused whole until memory is freed). The web
#: answers them 503, workers back off and keep what they hold.
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.OutOfMemoryError)


def _client_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
        "health_check_interval": 30,
    }
    if settings.redis_url.startswith("rediss://"):
        options["ssl_cert_reqs"] = settings.redis_ssl_cert_reqs
    return options


def url_with_tls_options(settings: Settings) -> str:
    """`REDIS_URL` with `ssl_cert_reqs` added for `rediss://`, for tools that take only a URL.

    RQ's CLI (`workers.settings`) and rq-dashboard build their own clients from a URL; the
    query parameter carries `REDIS_SSL_CERT_REQS` to them, so every process checks (or, on
    Heroku, skips checking) the server certificate the same way. A URL that already names
    `ssl_cert_reqs` is left as it is.
    """
    url = settings.redis_url
    if not url.startswith("rediss://") or "ssl_cert_reqs=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}ssl_cert_reqs={settings.redis_ssl_cert_reqs}"


def sync_redis(settings: Settings, **overrides: Any) -> redis.Redis:
    """A blocking client (RQ, workers, scripts). Commands never hang past the socket timeout."""
    return redis.Redis.from_url(settings.redis_url, **{**_client_options(settings), **overrides})


def async_redis(settings: Settings, **overrides: Any) -> aioredis.Redis:
    """An asyncio client for the web process: Redis I/O without a thread hop, commands packed by hiredis.

    Maintenance notifications (a Redis Cloud/Enterprise push feature this service does not use)
    are off: with them on (redis-py 8.1.0's default, "auto") the pool hands out connections the
    server already closed, so after a Redis restart or an idle timeout each pooled connection
    failed one request with a 503 (redis-py#4252, fixed upstream by #4260, not yet released).
    """
    options = {**_client_options(settings), "maint_notifications_config": MaintNotificationsConfig(enabled=False)}
    client = aioredis.Redis.from_url(settings.redis_url, **{**options, **overrides})
    pool = client.connection_pool
    pool.connection_class = hiredis_packing(pool.connection_class)
    return client
