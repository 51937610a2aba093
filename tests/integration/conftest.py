"""Integration fixtures: a real Redis-compatible server, real `rq worker` and uvicorn processes.

The server is the embedded valkey-server on a free port, or `TEST_REDIS_URL` when given
(then its database must not be 0: the suite flushes it before and after every test).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from stack.redis_server import EmbeddedRedis
from tests.support.procs import ProcessFactory, web_process

#: Settings every test process gets unless a test overrides them (fast retries).
TEST_ENV = {"RETRY_BACKOFF_BASE": "1", "LOG_LEVEL": "INFO"}


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("TEST_REDIS_URL")
    if given:
        if given.rstrip("/").endswith(("/0", ":6379")) or "/" not in given.split("://", 1)[1]:
            pytest.fail("TEST_REDIS_URL must name a database other than 0, e.g. redis://host:6379/15")
        yield given
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("valkey")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    try:
        yield redis_server_url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def procs(redis_url: str, tmp_path: Path) -> Iterator[ProcessFactory]:
    factory = ProcessFactory(redis_url, tmp_path, TEST_ENV)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def web_url(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One web process (the Procfile's line) for the session; it keeps no state of its own."""
    with web_process(redis_server_url, tmp_path_factory.mktemp("web"), TEST_ENV) as url:
        yield url


@pytest.fixture
def api(web_url: str, redis_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web_url, timeout=10) as client:
        yield client
