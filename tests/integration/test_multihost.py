"""Redis, the web process and two workers on four separate hosts, 200 jobs through the API.

The hosts are network namespaces on a private bridge (tests/support/netns.py); each process
runs the Procfile's line on its own host and reaches Redis over the veth link, as dynos or
Render instances reach a managed Redis. The test drives the API from a fifth host.
"""

from __future__ import annotations

import os
import secrets
import shlex
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from stack.procfile import procfile_command
from stack.redis_server import EmbeddedRedis
from tests.factories import steps_job
from tests.integration.conftest import TEST_ENV
from tests.support.netns import Host, Lan, NamespacesUnavailableError
from tests.support.procs import ProcessFactory, base_env, wait_for
from tests.support.system import require

JOBS = 200
WEB_PORT = 8000
REDIS_PORT = 6379


@pytest.fixture
def lan() -> Iterator[Lan]:
    ip = require("ip")
    try:
        network = Lan(ip)
    except NamespacesUnavailableError as exc:
        pytest.skip(f"network namespaces are not permitted here: {exc}")
    try:
        yield network
    finally:
        network.close()


@dataclass
class Outcome:
    views: list[dict[str, Any]]
    ran_on: Counter[str]
    worker_addresses: dict[str, str]
    redis_client_addresses: set[str]


def drive(web_url: str, redis_url: str) -> Outcome:
    """Runs on the client host: submit JOBS jobs, wait for them, collect who ran what from where."""
    with httpx.Client(base_url=web_url, timeout=10) as api, redis.Redis.from_url(redis_url) as rclient:
        ids = []
        for number in range(JOBS):
            response = api.post("/jobs", json=steps_job(steps=1, delay=0.02, description=f"multi-host {number}"))
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])

        def finished() -> int:
            count: int = api.get("/stats").json()["queues"]["default"]["finished"]
            return count

        wait_for(lambda: finished() == JOBS, 180, interval=0.25, what=f"{JOBS} jobs finished (at {finished()})")
        views = [api.get(f"/jobs/{job_id}").json() for job_id in ids]
        ran_on = Counter((rclient.hget(f"rq:job:{job_id}", "worker_name") or b"").decode() for job_id in ids)
        worker_addresses = {
            key.decode().removeprefix("rq:worker:"): (rclient.hget(key, "ip_address") or b"").decode()
            for key in rclient.smembers("rq:workers")
        }
        redis_client_addresses = {str(client["addr"]).rsplit(":", 1)[0] for client in rclient.client_list()}
    return Outcome(views, ran_on, worker_addresses, redis_client_addresses)


def test_two_workers_on_two_hosts_run_200_jobs(lan: Lan, tmp_path: Path) -> None:
    redis_host, web_host = lan.add_host("redis"), lan.add_host("web")
    worker_hosts = [lan.add_host("worker1"), lan.add_host("worker2")]
    client_host = lan.add_host("client")
    # A password, as managed Redis has (and Valkey refuses other hosts without one).
    password = secrets.token_urlsafe(16)
    redis_url = f"redis://:{password}@{redis_host.address}:{REDIS_PORT}/0"
    web_url = f"http://{web_host.address}:{WEB_PORT}"

    factory = ProcessFactory(redis_url, tmp_path, TEST_ENV)

    def run_on(host: Host, name: str, argv: list[str], env: dict[str, str]) -> None:
        factory.spawn(name, "exec " + shlex.join(host.command(argv, lan.ip)), env)

    try:
        server = EmbeddedRedis(
            tmp_path / "redis", port=REDIS_PORT, host=redis_host.address, extra_args=("--requirepass", password)
        )
        server.data_dir.mkdir(parents=True)
        run_on(redis_host, "redis", server.command(), {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        client_host.call(wait_for, lambda: _pings(redis_url), 30, 0.1, "Redis on its host")

        env = base_env(redis_url, **TEST_ENV, PORT=str(WEB_PORT))
        run_on(web_host, "web", ["sh", "-c", f"exec {procfile_command('web')}"], env)
        for host in worker_hosts:
            run_on(host, host.name, ["sh", "-c", f"exec {procfile_command('worker')}"], base_env(redis_url, **TEST_ENV))
        client_host.call(wait_for, lambda: _worker_count(redis_url) == 2, 60, 0.1, "both workers registered")
        client_host.call(wait_for, lambda: _answers(f"{web_url}/readyz"), 60, 0.1, "web ready on its host")

        outcome = client_host.call(drive, web_url, redis_url)
    finally:
        factory.stop_all()
    logs = "\n".join(f"--- {proc.name}\n{proc.log()[-2000:]}" for proc in factory.procs)

    assert len(outcome.views) == JOBS
    assert all(view["status"] == "finished" for view in outcome.views), logs
    assert all(view["result"] == {"steps": 1, "attempt": 1} for view in outcome.views)
    assert all(view["progress"] == 100 for view in outcome.views)

    # Both workers did work, and between them every job.
    assert len(outcome.ran_on) == 2 and min(outcome.ran_on.values()) > 0, outcome.ran_on
    assert sum(outcome.ran_on.values()) == JOBS
    assert set(outcome.ran_on) == set(outcome.worker_addresses)
    # ... each from its own host: Redis saw the workers (and the web) at their hosts' addresses.
    worker_ips = {address.rsplit(":", 1)[0] for address in outcome.worker_addresses.values()}
    assert worker_ips == {host.address for host in worker_hosts}, outcome.worker_addresses
    assert {web_host.address, *worker_ips} <= outcome.redis_client_addresses, outcome.redis_client_addresses


def _pings(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _worker_count(url: str) -> int:
    with redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1) as client:
        return int(client.scard("rq:workers"))


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
