"""Redis clients built from settings: bounded timeouts, TLS options, Sentinel, one place for all.

With `REDIS_SENTINELS` set, every client finds the primary through the Sentinels and follows a
failover on its own: redis-py's Sentinel pools ask them for the primary's address at each new
connection, drop the connections to a primary that moved, and turn a `READONLY` reply (a demoted
primary still reachable) into a `ConnectionError` that closes the connection. `REDIS_URL` then
gives only what the data nodes share: user, password, database and TLS (`rediss://`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel
from redis.maint_notifications import MaintNotificationsConfig

from core.rqadapter.redis_private import hiredis_packing
from core.settings import Settings, sentinel_addresses

#: Redis errors that mean "cannot use Redis right now" (retry later), not "bad command": unreachable (no
#: primary known to the Sentinels included: `MasterNotFoundError` is a `ConnectionError`), full (maxmemory
#: reached under `noeviction`: writes are refused whole until memory is freed), or no longer the primary
#: (`READONLY` from a demoted primary, `MASTERDOWN` from a replica cut from its primary: both refuse a
#: script or a MULTI whole, before anything is written). The web answers them 503, workers back off and
#: keep what they hold.
REDIS_DOWN = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
)


def uses_sentinel(settings: Settings) -> bool:
    return bool(settings.redis_sentinels)


def _client_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
        "health_check_interval": 30,
    }
    if settings.redis_url.startswith("rediss://"):
        options["ssl_cert_reqs"] = settings.redis_ssl_cert_reqs
    return options


def _data_node_options(settings: Settings) -> dict[str, Any]:
    """What REDIS_URL says of the data nodes besides their address (the Sentinels give that)."""
    url = urlsplit(settings.redis_url)
    options: dict[str, Any] = {"db": int(unquote(url.path).strip("/") or 0)}
    if url.username:
        options["username"] = unquote(url.username)
    if url.password:
        options["password"] = unquote(url.password)
    if url.scheme == "rediss":
        options["ssl"] = True
    return options


def _sentinel_options(settings: Settings) -> dict[str, Any]:
    """How the Sentinels themselves are reached: the same timeouts and TLS, their own password."""
    options = {key: value for key, value in _client_options(settings).items() if key != "health_check_interval"}
    if settings.redis_url.startswith("rediss://"):
        options["ssl"] = True
    if password := settings.redis_sentinel_password.get_secret_value():
        options["password"] = password
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


def rq_cli_connection(settings: Settings) -> dict[str, Any]:
    """The names RQ's CLI builds its own connection from (`rq worker -c workers.settings`): `REDIS_URL`,
    or, with Sentinels, `SENTINEL` (RQ's `get_redis_from_config`) and a `REDIS_URL` of None, which RQ
    would otherwise prefer."""
    if not uses_sentinel(settings):
        return {"REDIS_URL": url_with_tls_options(settings), "SENTINEL": None}
    node = _data_node_options(settings)
    connection_kwargs = {key: value for key, value in _client_options(settings).items() if key != "socket_timeout"}
    return {
        "REDIS_URL": None,
        "SENTINEL": {
            "INSTANCES": sentinel_addresses(settings.redis_sentinels),
            "MASTER_NAME": settings.redis_sentinel_master,
            "DB": node["db"],
            "USERNAME": node.get("username"),
            "PASSWORD": node.get("password"),
            "SOCKET_TIMEOUT": settings.redis_socket_timeout,
            "SSL": node.get("ssl", False),
            "CONNECTION_KWARGS": connection_kwargs,
            "SENTINEL_KWARGS": _sentinel_options(settings),
        },
    }


def display_address(settings: Settings) -> str:
    """Where the data lives, as a page may show it: no user, password or query."""
    if uses_sentinel(settings):
        sentinels = ",".join(f"{host}:{port}" for host, port in sentinel_addresses(settings.redis_sentinels))
        return f"sentinel://{sentinels}/{settings.redis_sentinel_master}/{_data_node_options(settings)['db']}"
    url = urlsplit(settings.redis_url)
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.hostname or ''}{port}{url.path}"


def sync_redis(settings: Settings, **overrides: Any) -> redis.Redis:
    """A blocking client (RQ, workers, scripts). Commands never hang past the socket timeout."""
    options = {**_client_options(settings), **overrides}
    if not uses_sentinel(settings):
        return redis.Redis.from_url(settings.redis_url, **options)
    sentinels = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        sentinel_addresses(settings.redis_sentinels), sentinel_kwargs=_sentinel_options(settings)
    )
    client: redis.Redis = sentinels.master_for(  # type: ignore[no-untyped-call]
        settings.redis_sentinel_master, **{**_data_node_options(settings), **options}
    )
    return client


def async_redis(settings: Settings, **overrides: Any) -> aioredis.Redis:
    """An asyncio client for the web process: Redis I/O without a thread hop, commands packed by hiredis.

    Maintenance notifications (a Redis Cloud/Enterprise push feature this service does not use)
    are off: with them on (redis-py 8.1.0's default, "auto") the pool hands out connections the
    server already closed, so after a Redis restart or an idle timeout each pooled connection
    failed one request with a 503 (redis-py#4252, fixed upstream by #4260, not yet released).
    """
    options = {
        **_client_options(settings),
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
        **overrides,
    }
    if uses_sentinel(settings):
        sentinels = aiosentinel.Sentinel(  # type: ignore[no-untyped-call]
            sentinel_addresses(settings.redis_sentinels), sentinel_kwargs=_sentinel_options(settings)
        )
        client: aioredis.Redis = sentinels.master_for(
            settings.redis_sentinel_master, **{**_data_node_options(settings), **options}
        )
    else:
        client = aioredis.Redis.from_url(settings.redis_url, **options)
    pool = client.connection_pool
    pool.connection_class = hiredis_packing(pool.connection_class)
    return client
