"""Every rejection is a problem+json 4xx naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from core.settings import Settings
from tests.factories import steps_job

PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int, loc: list[Any] | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("/problems/")
    assert body["title"] and body["detail"]
    assert "Traceback" not in response.text
    if loc is not None:
        assert loc in [error["loc"] for error in body["errors"]], body
    return body


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"type": "no.such"}, ["type"]),
        ({"type": "os.system"}, ["type"]),
        ({}, ["type"]),
        ({"type": 5}, ["type"]),
        (steps_job(steps=0), ["args", "steps"]),
        (steps_job(steps=10001), ["args", "steps"]),
        (steps_job(args={"steps": "many"}), ["args", "steps"]),
        (steps_job(delay=-1), ["args", "delay"]),
        (steps_job(args={"unknown": 1}), ["args", "unknown"]),
        ({"type": "demo.steps", "args": [1, 2]}, ["args"]),
        (steps_job(queue="urgent"), ["queue"]),
        (steps_job(timeout=0), ["timeout"]),
        (steps_job(timeout=601), ["timeout"]),
        (steps_job(timeout="10"), ["timeout"]),
        (steps_job(timeout=1.5), ["timeout"]),
        (steps_job(retries=-1), ["retries"]),
        (steps_job(retries=6), ["retries"]),
        (steps_job(retries=True), ["retries"]),
        (steps_job(description="x" * 501), ["description"]),
        (steps_job(func="os.system"), ["func"]),
        ({"type": "demo.noop", "args": {"x": 1}}, ["args", "x"]),
    ],
)
def test_invalid_submissions_are_422_naming_the_field(client: TestClient, payload: Any, loc: list[Any]) -> None:
    assert_problem(client.post("/jobs", json=payload), 422, loc)


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"type": "demo.steps",', "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'"demo.steps"', "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"type=demo.steps", "application/x-www-form-urlencoded", 415),
        (b'{"type": "demo.steps"}', "text/plain", 415),
        (b'{"type": "demo.steps"}', "", 415),
    ],
)
def test_malformed_bodies(client: TestClient, content: bytes, content_type: str, status: int) -> None:
    headers = {"content-type": content_type} if content_type else {}
    assert_problem(client.post("/jobs", content=content, headers=headers), status)


def test_oversize_body_is_413(client: TestClient, settings: Settings) -> None:
    payload = steps_job(description="x" * settings.max_body_bytes)
    assert_problem(client.post("/jobs", json=payload), 413)


def test_unknown_job_is_404_problem(client: TestClient) -> None:
    body = assert_problem(client.get("/jobs/does-not-exist"), 404)
    assert "does-not-exist" in body["detail"]


def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    assert_problem(client.get("/nowhere"), 404)
    assert_problem(client.put("/jobs"), 405)


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": 0}, ["limit"]),
        ({"limit": 201}, ["limit"]),
        ({"status": "done"}, ["status"]),
        ({"queue": "urgent"}, ["queue"]),
        ({"type": "no.such"}, ["type"]),
        ({"cursor": "garbage!"}, ["cursor"]),
    ],
)
def test_bad_listing_queries_are_422(client: TestClient, params: dict[str, Any], loc: list[Any]) -> None:
    assert_problem(client.get("/jobs", params=params), 422, loc)


def test_valid_submission_is_accepted(client: TestClient) -> None:
    response = client.post("/jobs", json=steps_job(steps=2, queue="high", timeout=30, retries=2))
    assert response.status_code == 202
    body = response.json()
    assert response.headers["location"] == f"/jobs/{body['id']}"
    assert body["queue"] == "high" and body["timeout"] == 30 and body["retries_left"] == 2
    fetched = client.get(body["id"].join(["/jobs/", ""])).json()
    assert fetched["status"] == "queued" and fetched["position"] == 0
