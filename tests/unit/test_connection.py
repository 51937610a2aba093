"""TLS options reach every client: the ones built here and the tools that take only a URL."""

from __future__ import annotations

import ssl

import pytest
import redis
import redis.asyncio as aioredis
from redis.typing import EncodableT
from rq.job import JobStatus

from core.connection import async_redis, sync_redis, url_with_tls_options
from core.rqadapter.redis_private import hiredis_packing
from core.settings import Settings


@pytest.mark.parametrize(
    ("url", "cert_reqs", "expected"),
    [
        ("redis://host:6379/0", "none", "redis://host:6379/0"),
        ("rediss://:pw@host:6380", "none", "rediss://:pw@host:6380?ssl_cert_reqs=none"),
        ("rediss://host:6380/0?health_check_interval=5", "optional", "rediss://host:6380/0?health_check_interval=5&ssl_cert_reqs=optional"),
        ("rediss://host:6380/0?ssl_cert_reqs=required", "none", "rediss://host:6380/0?ssl_cert_reqs=required"),
    ],
)  # fmt: skip
def test_url_with_tls_options(url: str, cert_reqs: str, expected: str) -> None:
    settings = Settings(redis_url=url, redis_ssl_cert_reqs=cert_reqs)
    assert url_with_tls_options(settings) == expected


@pytest.mark.parametrize(("cert_reqs", "mode"), [("required", ssl.CERT_REQUIRED), ("none", ssl.CERT_NONE)])
def test_clients_built_from_settings_carry_the_certificate_check(cert_reqs: str, mode: ssl.VerifyMode) -> None:
    settings = Settings(redis_url="rediss://host:6380/0", redis_ssl_cert_reqs=cert_reqs)
    for pool in (sync_redis(settings).connection_pool, async_redis(settings).connection_pool):
        connection = pool.connection_class(**pool.connection_kwargs)  # built, not connected
        assert isinstance(connection, redis.SSLConnection | aioredis.SSLConnection)
        assert connection.cert_reqs == mode


def test_default_is_to_verify() -> None:
    assert Settings(redis_url="rediss://host:6380/0").redis_ssl_cert_reqs == "required"


@pytest.mark.parametrize(
    "args",
    [
        ("EVALSHA", "abc", 0, "", b"\x00\x01\xff", 1.5, 1795423665174678.0, "(1794127665174678.0", -3, "ünïcode"),
        ("HSET", "rq:job:x", "status", JobStatus.QUEUED, "meta", b'{"a": 1}'),
        ("CLIENT SETNAME", "web"),  # a command name with a space: redis-py's packer splits it
        ("SET", "k", bytearray(b"v"), memoryview(b"w")),  # types hiredis refuses: redis-py's packer
    ],
)
def test_async_clients_pack_with_hiredis_the_same_bytes_as_redis_py(args: tuple[EncodableT, ...]) -> None:
    for url in ("redis://host:6379/0", "rediss://host:6380/0"):
        pool = async_redis(Settings(redis_url=url)).connection_pool
        ours = pool.connection_class(**pool.connection_kwargs)
        plain = aioredis.SSLConnection if url.startswith("rediss") else aioredis.Connection
        assert isinstance(ours, plain)
        reference = plain(**pool.connection_kwargs)
        assert b"".join(bytes(part) for part in ours.pack_command(*args)) == b"".join(
            bytes(part) for part in reference.pack_command(*args)
        )


def test_hiredis_packing_is_used_and_bad_arguments_still_raise_redis_errors() -> None:
    pool = async_redis(Settings(redis_url="redis://host:6379/0")).connection_pool
    connection = pool.connection_class(**pool.connection_kwargs)
    packed = connection.pack_command("EVALSHA", "abc", 0, *[str(n) for n in range(90)])
    assert len(packed) == 1  # one buffer from hiredis (redis-py's own packer yields its chunks)
    with pytest.raises(redis.DataError):
        connection.pack_command("SET", "k", None)  # type: ignore[arg-type]  # wrong on purpose: it must raise
    assert hiredis_packing(pool.connection_class) is pool.connection_class  # not wrapped twice
