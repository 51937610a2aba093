"""Sentinel settings: validated at start-up; every client (ours, RQ's CLI, the dashboard's label) follows them."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel
from pydantic import ValidationError
from rq.cli.helpers import get_redis_from_config
from rq.connections import parse_connection
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from app.errors import EXCEPTION_HANDLERS
from app.replication import written_key
from core.connection import REDIS_DOWN, async_redis, display_address, rq_cli_connection, sync_redis
from core.settings import Settings, sentinel_addresses

SENTINELS: dict[str, Any] = {"redis_sentinels": "s1:26379, [::1]:26380", "redis_sentinel_master": "mymaster"}


def test_sentinel_addresses_parse_hosts_ports_and_ipv6() -> None:
    assert sentinel_addresses("s1:26379, [::1]:26380,") == [("s1", 26379), ("::1", 26380)]
    assert sentinel_addresses("") == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"redis_sentinels": "s1", "redis_sentinel_master": "m"}, "'s1' is not host:port"),
        ({"redis_sentinels": "s1:0", "redis_sentinel_master": "m"}, "'s1:0' is not host:port"),
        ({"redis_sentinels": "s1:26379,:26379", "redis_sentinel_master": "m"}, "':26379' is not host:port"),
        ({"redis_sentinels": " , ", "redis_sentinel_master": "m"}, "names no host:port"),
        ({"redis_sentinel_master": "m"}, "REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS is empty"),
        ({"redis_sentinels": "s1:26379"}, "REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is empty"),
        ({"redis_min_replicas_ack": 1, "redis_replicas_ack_timeout": 3}, "shorter than REDIS_SOCKET_TIMEOUT"),
        ({"redis_min_replicas_ack": -1}, "greater than or equal to 0"),
    ],
)
def test_malformed_sentinel_settings_are_refused_with_a_message_naming_the_fix(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(**fields)  # type: ignore[arg-type]
    assert message in str(raised.value)


def test_start_up_errors_never_echo_secrets() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(redis_url="redis://:hunter2@host/0", redis_sentinel_master="m")
    assert "hunter2" not in str(raised.value)


def test_clients_find_the_primary_through_the_sentinels_with_the_data_nodes_credentials() -> None:
    settings = Settings(redis_url="redis://app:secret@ignored:1/3", redis_sentinel_password="sentinel-pw", **SENTINELS)
    for client, pool_class in (
        (sync_redis(settings), redis.sentinel.SentinelConnectionPool),
        (async_redis(settings), aiosentinel.SentinelConnectionPool),
    ):
        pool = client.connection_pool
        assert isinstance(pool, pool_class)
        assert pool.service_name == "mymaster"
        kwargs = pool.connection_kwargs
        assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("app", "secret", 3)
        assert kwargs["socket_timeout"] == settings.redis_socket_timeout
        manager = pool.sentinel_manager
        assert [s.connection_pool.connection_kwargs["port"] for s in manager.sentinels] == [26379, 26380]
        assert all(s.connection_pool.connection_kwargs["password"] == "sentinel-pw" for s in manager.sentinels)


def test_tls_reaches_the_data_nodes_and_the_sentinels() -> None:
    settings = Settings(redis_url="rediss://ignored/0", redis_ssl_cert_reqs="none", **SENTINELS)
    pool = sync_redis(settings).connection_pool
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
    assert pool.connection_class is redis.sentinel.SentinelManagedSSLConnection
    assert pool.connection_kwargs["ssl_cert_reqs"] == "none"
    sentinel_pool = pool.sentinel_manager.sentinels[0].connection_pool
    assert sentinel_pool.connection_class is redis.SSLConnection


def test_rq_cli_builds_a_sentinel_client_from_the_worker_settings() -> None:
    settings = Settings(redis_url="redis://:secret@ignored/2", **SENTINELS)
    names = rq_cli_connection(settings)
    assert names["REDIS_URL"] is None  # RQ would prefer it to SENTINEL
    client = get_redis_from_config(names)  # what `rq worker -c workers.settings` runs
    pool = client.connection_pool
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
    assert (pool.service_name, pool.connection_kwargs["password"], pool.connection_kwargs["db"]) == (
        "mymaster",
        "secret",
        2,
    )
    plain = rq_cli_connection(Settings(redis_url="redis://host:6379/0"))
    assert plain == {"REDIS_URL": "redis://host:6379/0", "SENTINEL": None}


def test_dashboard_shows_where_the_data_is_without_secrets() -> None:
    assert display_address(Settings(redis_url="redis://:pw@ignored/4", **SENTINELS)) == (
        "sentinel://s1:26379,::1:26380/mymaster/4"
    )
    assert display_address(Settings(redis_url="rediss://u:pw@host:6380/1?x=y")) == "rediss://host:6380/1"


def test_a_demoted_primary_counts_as_redis_down() -> None:
    assert issubclass(redis.sentinel.MasterNotFoundError, REDIS_DOWN)
    assert issubclass(redis.exceptions.ReadOnlyError, REDIS_DOWN)


@pytest.mark.parametrize(
    ("method", "path", "status", "location", "key"),
    [
        ("POST", "/jobs", 202, "/jobs/abc", "rq:job:abc"),
        ("POST", "/jobs", 200, "/jobs/abc", "rq:job:abc"),  # an Idempotency-Key replay is confirmed too
        ("POST", "/batches", 202, "/batches/b1", "jobsvc:batch:b1"),
        ("POST", "/schedules", 201, "/schedules/s1", "jobsvc:schedule:s1"),
        ("PATCH", "/schedules/s1", 200, None, "jobsvc:schedule:s1"),
        ("POST", "/jobs", 422, None, None),
        ("POST", "/jobs", 202, "/batches/x", None),
        ("POST", "/jobs/abc/cancel", 200, None, None),
        ("PATCH", "/schedules/s1", 404, None, None),
    ],
)
def test_written_key_names_the_record_of_a_successful_submission(
    method: str, path: str, status: int, location: str | None, key: str | None
) -> None:
    headers = [(b"location", location.encode())] if location else []
    assert written_key(method, path, status, headers) == key


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (redis.exceptions.ReadOnlyError("You can't write against a read only replica."), 503, "redis-unavailable"),
        (redis.exceptions.MasterDownError("Link with MASTER is down"), 503, "redis-unavailable"),
        (redis.sentinel.MasterNotFoundError("No master found for 'jobs'"), 503, "redis-unavailable"),
        (redis.exceptions.ResponseError("NOREPLICAS Not enough good replicas to write."), 503, "redis-unavailable"),
        (redis.exceptions.ResponseError("ERR unknown command"), 500, "internal-error"),
    ],
)
def test_every_failover_error_is_a_503_with_retry_after(error: Exception, status: int, slug: str) -> None:
    def fail(request: Request) -> Response:
        raise error

    app = Starlette(routes=[Route("/", fail)], exception_handlers=EXCEPTION_HANDLERS)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/")
    assert response.status_code == status
    assert response.json()["type"] == f"/problems/{slug}"
    if status == 503:
        assert int(response.headers["retry-after"]) > 0


def test_rqs_scheduler_rebuilds_a_client_that_still_asks_the_sentinels() -> None:
    """RQ's scheduler (`rq worker --with-scheduler`) rebuilds its client from the worker's pool; the rebuilt
    connections keep the Sentinel pool that names the primary."""
    client = sync_redis(Settings(redis_url="redis://:pw@ignored/0", **SENTINELS))
    connection_class, pool_class, pool_kwargs = parse_connection(client)
    rebuilt = connection_class(connection_pool=redis.ConnectionPool(connection_class=pool_class, **pool_kwargs))
    connection = rebuilt.connection_pool.make_connection()
    assert isinstance(connection, redis.sentinel.SentinelManagedConnection)
    assert connection.connection_pool.service_name == "mymaster"
