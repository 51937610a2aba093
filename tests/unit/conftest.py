"""Unit fixtures: one in-memory FakeRedis server per test, shared by sync and asyncio clients."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
from starlette.testclient import TestClient

from app.main import create_app
from core.settings import Settings


@pytest.fixture
def fake_server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def fake_redis(fake_server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fake_server)


@pytest.fixture
def settings() -> Settings:
    return Settings(redis_url="redis://unused:6379/0", job_max_timeout=600, job_max_retries=5)


@pytest.fixture
def client(settings: Settings, fake_server: fakeredis.FakeServer) -> Iterator[TestClient]:
    connections = (fakeredis.FakeRedis(server=fake_server), fakeredis.FakeAsyncRedis(server=fake_server))
    with TestClient(create_app(settings, connections), raise_server_exceptions=False) as test_client:
        yield test_client


#: API keys the security tests configure: two ordinary keys and an admin, one given as its sha256.
KEYS = {"alice": "alice-key-0123456789", "bob": "bob-key-0123456789", "ops": "ops-key-0123456789"}


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def app_client(fake_server: fakeredis.FakeServer, **overrides: Any) -> TestClient:
    """A client (not yet entered) for an app built with these settings overrides on this FakeRedis server."""
    values: dict[str, Any] = {"redis_url": "redis://unused:6379/0", "job_max_timeout": 600, **overrides}
    connections = (fakeredis.FakeRedis(server=fake_server), fakeredis.FakeAsyncRedis(server=fake_server))
    return TestClient(create_app(Settings(**values), connections), raise_server_exceptions=False)


def keyed_overrides() -> dict[str, str]:
    """Keys alice, bob (plain) and ops (admin, configured as sha256:<hex>)."""
    ops_digest = hashlib.sha256(KEYS["ops"].encode()).hexdigest()
    return {"api_keys": f"alice={KEYS['alice']}, bob={KEYS['bob']}, ops=sha256:{ops_digest}", "admin_keys": "ops"}


@pytest.fixture
def make_client(fake_server: fakeredis.FakeServer) -> Iterator[Callable[..., TestClient]]:
    """A client for an app built with these settings overrides (API_KEYS etc.) on the test's FakeRedis."""
    opened: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        test_client = app_client(fake_server, **overrides)
        opened.append(test_client.__enter__())
        return test_client

    yield make
    for test_client in reversed(opened):
        test_client.__exit__(None, None, None)


@pytest.fixture
def keyed(make_client: Callable[..., TestClient]) -> TestClient:
    """Keys alice, bob (plain) and ops (admin, configured as sha256:<hex>)."""
    return make_client(**keyed_overrides())
