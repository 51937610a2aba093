"""Unit fixtures: one in-memory FakeRedis server per test, shared by sync and asyncio clients."""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest
from starlette.testclient import TestClient

from app.main import create_app
from jobs.settings import Settings


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
