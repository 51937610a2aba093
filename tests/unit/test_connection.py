"""TLS options reach every client: the ones built here and the tools that take only a URL."""

from __future__ import annotations

import ssl

import pytest

from jobs.connection import async_redis, sync_redis, url_with_tls_options
from jobs.settings import Settings


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
    settings = Settings(redis_url=url, redis_ssl_cert_reqs=cert_reqs)  # type: ignore[arg-type]
    assert url_with_tls_options(settings) == expected


@pytest.mark.parametrize(("cert_reqs", "mode"), [("required", ssl.CERT_REQUIRED), ("none", ssl.CERT_NONE)])
def test_clients_built_from_settings_carry_the_certificate_check(cert_reqs: str, mode: ssl.VerifyMode) -> None:
    settings = Settings(redis_url="rediss://host:6380/0", redis_ssl_cert_reqs=cert_reqs)  # type: ignore[arg-type]
    for pool in (sync_redis(settings).connection_pool, async_redis(settings).connection_pool):
        connection = pool.connection_class(**pool.connection_kwargs)  # built, not connected
        assert connection.cert_reqs == mode


def test_default_is_to_verify() -> None:
    assert Settings(redis_url="rediss://host:6380/0").redis_ssl_cert_reqs == "required"
