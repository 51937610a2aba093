"""rq-dashboard at /dashboard: basic auth on every path and method, the JSON serializer, the service's Redis client.

The settings name an unreachable Redis host (`redis://unused:6379/0`): every dashboard page below
works only because the dashboard reads through the app's own client (here FakeRedis), never a
connection of its own built from the URL.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import zlib
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from rq import Queue
from rq.job import Job
from rq.worker import Worker
from starlette.testclient import TestClient

from app.dashboard import Access, access, build_flask_app
from app.dashboard_service import create_dashboard_service
from app.main import create_app
from core.queues import SERIALIZER
from core.settings import Settings
from tests.factories import steps_job
from tests.support.inprocess import run_jobs

USER, PASSWORD = "ops", "s3cret-pässword"


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


AUTH = basic(USER, PASSWORD)


def settings_with(**overrides: Any) -> Settings:
    return Settings(redis_url="redis://unused:6379/0", **overrides)


@pytest.fixture
def dashboard(fake_server: fakeredis.FakeServer) -> Iterator[TestClient]:
    settings = settings_with(dashboard_username=USER, dashboard_password=PASSWORD, api_keys="app=k1")
    connections = (fakeredis.FakeRedis(server=fake_server), fakeredis.FakeAsyncRedis(server=fake_server))
    with TestClient(create_app(settings, connections), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = "Bearer k1"  # the API's key; dashboard paths send basic auth
        yield client


def failed_job(client: TestClient, fake_redis: fakeredis.FakeRedis) -> str:
    """A demo.steps job that failed once (it would succeed on a second attempt)."""
    response = client.post("/jobs", json=steps_job(steps=2, args={"fail_at": 1, "fail_attempts": 1}))
    assert response.status_code == 202, response.text
    run_jobs(fake_redis)
    job_id: str = response.json()["id"]
    assert client.get(f"/jobs/{job_id}").json()["status"] == "failed"
    return job_id


def every_dashboard_request(job_id: str) -> list[tuple[str, str]]:
    """(method, path) for every URL rule and method rq-dashboard's Flask app serves."""
    values = {
        "instance_number": "0",
        "queue_name": "default",
        "registry_name": "failed",
        "per_page": "8",
        "order": "asc",
        "page": "1",
        "job_id": job_id,
        "filename": "js/jquery-3.5.1.min.js",
    }
    requests = []
    for rule, methods in dashboard_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda match: values[match.group(1)], rule)
        for method in methods:
            requests.append((method, "/dashboard" + path))
    return requests


@functools.cache
def dashboard_rules() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Every URL rule of rq-dashboard's Flask app with its methods, sorted (the app is built once)."""
    flask_app = build_flask_app(lambda: fakeredis.FakeRedis(), settings_with())
    return tuple((rule.rule, tuple(sorted(rule.methods or ()))) for rule in flask_app.url_map.iter_rules())


def snapshot(connection: fakeredis.FakeRedis) -> dict[bytes | str, Any]:
    out: dict[bytes | str, Any] = {}
    for key in sorted(connection.keys("*")):
        kind = connection.type(key)
        out[key] = (
            connection.hgetall(key)
            if kind == b"hash"
            else connection.zrange(key, 0, -1)
            if kind == b"zset"
            else connection.lrange(key, 0, -1)
            if kind == b"list"
            else kind
        )
    return out


def test_every_dashboard_path_and_method_needs_basic_auth(
    dashboard: TestClient, fake_redis: fakeredis.FakeRedis
) -> None:
    job_id = failed_job(dashboard, fake_redis)
    requests = every_dashboard_request(job_id)
    assert len(requests) >= 40, requests  # every rule x method, the state-changing POSTs among them
    assert ("POST", f"/dashboard/job/{job_id}/delete") in requests
    assert ("POST", "/dashboard/queue/default/failed/empty") in requests

    for method, path in requests:
        before = snapshot(fake_redis)
        for headers in ({}, basic(USER, "wrong"), basic("wrong", PASSWORD), {"Authorization": "Bearer x"}):
            response = dashboard.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.status_code)
            assert response.headers["www-authenticate"].startswith("Basic realm=")
            assert response.headers["content-type"] == "application/problem+json"
        assert snapshot(fake_redis) == before, f"{method} {path} changed Redis without credentials"

    for index in range(len(requests)):
        # a fresh failed job each time, so that deleting or requeueing one leaves the next request its own
        method, path = every_dashboard_request(failed_job(dashboard, fake_redis))[index]
        dashboard.post("/jobs", json=steps_job())  # a queued job too (RQ cannot compact an empty queue)
        response = dashboard.request(method, path, headers=AUTH)
        assert response.status_code == 200, (method, path, response.status_code, response.text[:300])


def test_state_changing_dashboard_action_runs_only_with_credentials(
    dashboard: TestClient, fake_redis: fakeredis.FakeRedis
) -> None:
    job_id = failed_job(dashboard, fake_redis)
    assert dashboard.post(f"/dashboard/job/{job_id}/delete").status_code == 401
    assert Job.exists(job_id, connection=fake_redis)
    response = dashboard.post(f"/dashboard/job/{job_id}/delete", headers=AUTH)
    assert response.status_code == 200 and response.json() == {"status": "OK"}
    assert not Job.exists(job_id, connection=fake_redis)


def test_dashboard_opens_json_jobs_and_requeues_them_as_json(
    dashboard: TestClient, fake_redis: fakeredis.FakeRedis
) -> None:
    job_id = failed_job(dashboard, fake_redis)

    info = dashboard.get(f"/dashboard/0/data/job/{job_id}.json", headers=AUTH).json()
    assert info["status"] == "failed" and info["origin"] == "default"
    assert "DemoFailure: failing at step 1" in info["exc_info"]
    assert json.loads(info["metadata"])["type"] == "demo.steps"  # meta decoded, not 'unserialized'
    page = dashboard.get(f"/dashboard/0/view/job/{job_id}", headers=AUTH)
    assert page.status_code == 200 and job_id in page.text

    listed = dashboard.get("/dashboard/0/data/jobs/default/failed/8/asc/1.json", headers=AUTH).json()
    assert [job["id"] for job in listed["jobs"]] == [job_id]

    assert dashboard.post(f"/dashboard/job/{job_id}/requeue", headers=AUTH).json() == {"status": "OK"}
    raw = fake_redis.hget(Job.key_for(job_id), "data")
    assert isinstance(raw, bytes) and json.loads(zlib.decompress(raw))  # still JSON after the dashboard wrote it back
    run_jobs(fake_redis)
    done = dashboard.get(f"/jobs/{job_id}").json()
    assert done["status"] == "finished" and done["result"] == {"steps": 2, "attempt": 2}

    finished = dashboard.get(f"/dashboard/0/data/job/{job_id}.json", headers=AUTH).json()
    assert finished["result"] == {"steps": 2, "attempt": 2}


def test_dashboard_shows_a_busy_workers_current_json_job(
    dashboard: TestClient, fake_redis: fakeredis.FakeRedis
) -> None:
    job_id = dashboard.post("/jobs", json=steps_job()).json()["id"]
    queue = Queue("default", connection=fake_redis, serializer=SERIALIZER)
    worker = Worker([queue], connection=fake_redis, serializer=SERIALIZER)
    worker.register_birth()
    worker.set_state("busy")
    worker.prepare_execution(Job.fetch(job_id, connection=fake_redis, serializer=SERIALIZER))
    workers = dashboard.get("/dashboard/0/data/workers.json", headers=AUTH).json()["workers"]
    assert [(w["name"], w["state"], w["current_job"]["job_id"]) for w in workers] == [(worker.name, "busy", job_id)]


def test_other_instance_numbers_are_not_served(dashboard: TestClient) -> None:
    assert dashboard.get("/dashboard/1/data/queues.json", headers=AUTH).status_code == 404
    assert dashboard.get("/dashboard/0/data/queues.json", headers=AUTH).status_code == 200


def test_dashboard_without_trailing_slash_redirects(dashboard: TestClient) -> None:
    response = dashboard.get("/dashboard", follow_redirects=False)
    assert response.status_code in (307, 308) and response.headers["location"].endswith("/dashboard/")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, Access.OPEN),
        ({"dashboard_username": USER, "dashboard_password": PASSWORD}, Access.PROTECTED),
        ({"dashboard_username": USER, "dashboard_password": PASSWORD, "api_keys": "a=k"}, Access.PROTECTED),
        ({"api_keys": "a=k"}, Access.DISABLED),
        ({"dashboard_username": USER}, Access.DISABLED),
        ({"dashboard_password": PASSWORD}, Access.DISABLED),
    ],
)
def test_access_mode(overrides: dict[str, str], expected: Access) -> None:
    assert access(settings_with(**overrides)) is expected


def test_api_keys_without_dashboard_credentials_disable_it(fake_server: fakeredis.FakeServer) -> None:
    connections = (fakeredis.FakeRedis(server=fake_server), fakeredis.FakeAsyncRedis(server=fake_server))
    with TestClient(create_app(settings_with(api_keys="app=k1"), connections)) as client:
        for method, path in every_dashboard_request("some-job"):
            for headers in ({}, AUTH):
                response = client.request(method, path, headers=headers)
                assert response.status_code == 404, (method, path)
                assert response.headers["content-type"] == "application/problem+json"
        assert client.get("/dashboard/").json()["title"] == "Dashboard disabled"


def test_dashboard_is_open_without_api_keys_or_credentials_and_lists_every_queue(client: TestClient) -> None:
    response = client.get("/dashboard/0/data/queues.json")
    assert response.status_code == 200
    queues = {queue["name"]: queue["count"] for queue in response.json()["queues"]}
    assert queues == {"high": 0, "default": 0, "low": 0}  # listed before any job was submitted
    client.post("/jobs", json=steps_job())
    queues = {queue["name"]: queue["count"] for queue in client.get("/dashboard/0/data/queues.json").json()["queues"]}
    assert queues == {"high": 0, "default": 1, "low": 0}


def test_standalone_dashboard_service_needs_credentials(fake_redis: fakeredis.FakeRedis) -> None:
    with TestClient(create_dashboard_service(settings_with(), fake_redis)) as unconfigured:
        assert unconfigured.get("/healthz").json() == {"status": "ok"}
        assert unconfigured.get("/dashboard/0/data/queues.json").status_code == 404  # never open on its own

    protected = settings_with(dashboard_username=USER, dashboard_password=PASSWORD)
    with TestClient(create_dashboard_service(protected, fake_redis)) as service:
        assert service.get("/", follow_redirects=False).headers["location"] == "/dashboard/"
        assert service.get("/dashboard/0/data/queues.json").status_code == 401
        queues = service.get("/dashboard/0/data/queues.json", headers=AUTH).json()["queues"]
        assert sorted(queue["name"] for queue in queues) == ["default", "high", "low"]
