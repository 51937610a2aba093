"""`rediss://` against a real TLS-only server with a self-signed certificate, as on Heroku.

One setting, `REDIS_SSL_CERT_REQS`, decides for every client: the web's (sync and asyncio),
the worker's, the rq CLI's own connection and rq-dashboard's. Default: verify, which refuses
a self-signed certificate; `none` connects to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import redis_sentinel_url
import yaml

from core.connection import async_redis, sync_redis, url_with_tls_options
from core.settings import Settings
from stack.procfile import procfile_command
from stack.redis_server import free_port
from tests.factories import steps_job
from tests.integration.conftest import TEST_ENV
from tests.support.procs import ROOT, ProcessFactory, base_env, wait_for
from tests.support.system import require
from tests.support.tls import TlsRedis, self_signed_certificate


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    directory = tmp_path_factory.mktemp("redis-tls")
    cert, key = self_signed_certificate(require("openssl"), directory)
    server = TlsRedis(require("redis-server"), directory, cert, key)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tls_url(tls_server: TlsRedis) -> Iterator[str]:
    client = tls_server.client()
    client.flushdb()
    yield tls_server.url
    client.flushdb()
    client.close()


def test_server_speaks_tls_only_with_a_self_signed_certificate(tls_server: TlsRedis) -> None:
    plain = redis.Redis(
        host=tls_server.host,
        port=tls_server.port,
        socket_connect_timeout=1,
        socket_timeout=1,
        retry=None,  # type: ignore[arg-type]  # redis-py takes None (no retry policy) but types it as Retry
    )
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    assert tls_server.client().ping(), "a client trusting exactly this certificate gets through"


def test_default_verifies_and_refuses_the_self_signed_certificate(tls_url: str) -> None:
    settings = Settings(redis_url=tls_url)
    assert settings.redis_ssl_cert_reqs == "required"
    for client in (sync_redis(settings), redis.Redis.from_url(url_with_tls_options(settings))):
        with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            client.ping()

    async def aio_ping() -> None:
        client = async_redis(settings)
        try:
            await client.ping()
        finally:
            await client.aclose()

    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(aio_ping())


def test_verification_off_connects_every_kind_of_client(tls_url: str) -> None:
    settings = Settings(redis_url=tls_url, redis_ssl_cert_reqs="none")

    web_sync = sync_redis(settings)
    web_sync.set("tls:probe", "over tls")
    assert web_sync.get("tls:probe") == b"over tls"

    async def aio_roundtrip() -> bytes | str | None:
        client = async_redis(settings)
        try:
            await client.set("tls:aio", "asyncio over tls")
            return await client.get("tls:aio")
        finally:
            await client.aclose()

    assert asyncio.run(aio_roundtrip()) == b"asyncio over tls"

    url = url_with_tls_options(settings)
    assert url.endswith("?ssl_cert_reqs=none")
    rq_cli = redis.Redis.from_url(url)  # what `rq worker -c workers.settings` builds from REDIS_URL
    assert rq_cli.get("tls:probe") == b"over tls"
    _, dashboard = redis_sentinel_url.connect(url)  # what rq-dashboard builds from its URL
    assert dashboard.get("tls:aio") == b"asyncio over tls"
    for client in (web_sync, rq_cli, dashboard):
        client.close()


def test_web_worker_and_dashboard_run_over_tls(tls_url: str, tmp_path: Path) -> None:
    """The Procfile's processes and the stand-alone dashboard, REDIS_URL=rediss://, verification off."""
    env = {**TEST_ENV, "REDIS_SSL_CERT_REQS": "none"}
    check = Settings(redis_url=tls_url, redis_ssl_cert_reqs="none")
    client = sync_redis(check)
    factory = ProcessFactory(tls_url, tmp_path, env)
    try:
        web_port, dashboard_port = free_port(), free_port()
        web = factory.spawn("web", f"exec {procfile_command('web')}", base_env(tls_url, **env, PORT=str(web_port)))
        worker = factory.spawn("worker", f"exec {procfile_command('worker')}", base_env(tls_url, **env))
        wait_for(lambda: client.scard("rq:workers") == 1 or not worker.alive(), 30, what="worker over TLS")
        assert worker.alive(), worker.log()

        with httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=10) as api:
            wait_for(lambda: _answers(api, "/readyz") or not web.alive(), 30, what="web ready over TLS")
            assert web.alive(), web.log()
            job = api.post("/jobs", json=steps_job(steps=2, delay=0.05)).json()
            wait_for(lambda: api.get(f"/jobs/{job['id']}").json()["status"] == "finished", 30, what="job over TLS")
            assert api.get(f"/jobs/{job['id']}").json()["result"] == {"steps": 2, "attempt": 1}

        services = yaml.safe_load((ROOT / "render.yaml").read_text())["services"]
        (dashboard_command,) = [s["startCommand"] for s in services if s["name"] == "jobs-dashboard"]
        dashboard_env = base_env(tls_url, **env, PORT=str(dashboard_port))
        dashboard_env.update(DASHBOARD_USERNAME="admin", DASHBOARD_PASSWORD="s3cret")
        dashboard = factory.spawn("dashboard", f"exec {dashboard_command}", dashboard_env)
        with httpx.Client(base_url=f"http://127.0.0.1:{dashboard_port}", timeout=10) as ui:
            wait_for(lambda: _answers(ui, "/healthz") or not dashboard.alive(), 30, what="dashboard")
            assert ui.get("/dashboard/").status_code == 401, "basic auth is on"
            queues = ui.get("/dashboard/0/data/queues.json", auth=("admin", "s3cret"))
            assert queues.status_code == 200, dashboard.log()
            by_name = {queue["name"]: queue for queue in queues.json()["queues"]}
            assert "default" in by_name, queues.text  # read from the TLS server through the dashboard's client
            workers = ui.get("/dashboard/0/data/workers.json", auth=("admin", "s3cret")).json()["workers"]
            assert len(workers) == 1, workers
    finally:
        factory.stop_all()
        client.close()


def _answers(api: httpx.Client, path: str, auth: tuple[str, str] | None = None) -> bool:
    try:
        return api.get(path, auth=auth).status_code == 200
    except httpx.HTTPError:
        return False
