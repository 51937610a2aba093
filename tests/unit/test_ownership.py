"""Ownership: a key sees only its own jobs (another key's job is a 404, like a missing one); admin sees all."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from app.openapi import OPERATIONS
from app.operations import Operation
from tests.factories import noop_job, steps_job
from tests.unit.conftest import bearer
from tests.unit.test_api_validation import assert_problem


def submit(client: TestClient, who: str, payload: dict[str, object] | None = None) -> str:
    response = client.post("/jobs", json=payload or noop_job(), headers=bearer(who))
    assert response.status_code == 202, response.text
    assert response.json()["owner"] == who
    job_id: str = response.json()["id"]
    return job_id


def test_another_keys_job_is_404_exactly_like_a_missing_one(keyed: TestClient) -> None:
    job_id = submit(keyed, "alice")
    assert keyed.get(f"/jobs/{job_id}", headers=bearer("alice")).json()["owner"] == "alice"
    theirs = assert_problem(keyed.get(f"/jobs/{job_id}", headers=bearer("bob")), 404)
    missing = assert_problem(keyed.get("/jobs/no-such-job", headers=bearer("bob")), 404)
    assert theirs["type"] == missing["type"] and theirs["title"] == missing["title"]
    assert theirs["detail"] == missing["detail"].replace("no-such-job", job_id)
    assert "alice" not in keyed.get(f"/jobs/{job_id}", headers=bearer("bob")).text


def test_admin_sees_every_job(keyed: TestClient) -> None:
    job_id = submit(keyed, "alice")
    view = keyed.get(f"/jobs/{job_id}", headers=bearer("ops"))
    assert view.status_code == 200 and view.json()["owner"] == "alice"


def test_listing_shows_a_key_only_its_own_jobs_and_admin_all(keyed: TestClient) -> None:
    alice = {submit(keyed, "alice") for _ in range(3)} | {submit(keyed, "alice", steps_job(queue="high"))}
    bob = {submit(keyed, "bob") for _ in range(2)}

    def listed(who: str, **params: str) -> set[str]:
        response = keyed.get("/jobs", params=params, headers=bearer(who))
        assert response.status_code == 200, response.text
        return {job["id"] for job in response.json()["jobs"]}

    assert listed("alice") == alice
    assert listed("bob") == bob
    assert listed("ops") == alice | bob
    assert len(listed("alice", type="demo.steps")) == 1 and listed("bob", type="demo.steps") == set()
    assert len(listed("alice", queue="high")) == 1 and len(listed("alice", queue="default")) == 3
    assert listed("alice", status="queued") == alice
    assert listed("ops", type="demo.noop") == (alice | bob) - listed("alice", type="demo.steps")


def test_listing_pages_through_own_jobs_only(keyed: TestClient) -> None:
    mine = [submit(keyed, "alice") for _ in range(5)]
    for _ in range(5):
        submit(keyed, "bob")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = keyed.get("/jobs", params=params, headers=bearer("alice")).json()
        seen.extend(job["id"] for job in page["jobs"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(mine))


JOB_ROUTES = [op for op in OPERATIONS if "{job_id}" in op.path]


@pytest.mark.parametrize("op", JOB_ROUTES, ids=[f"{op.method} {op.path}" for op in JOB_ROUTES])
def test_no_job_route_lets_another_key_touch_a_job(keyed: TestClient, op: Operation) -> None:
    """Every documented route on one job (status, cancel, retry, events … as they are added) is a 404 for
    another key and leaves the job as it was."""
    job_id = submit(keyed, "alice")
    before = keyed.get(f"/jobs/{job_id}", headers=bearer("alice")).json()
    path = op.path.replace("{job_id}", job_id)
    kwargs: dict[str, Any] = {"json": {}} if op.body is not None else {}
    assert_problem(keyed.request(op.method, path, headers=bearer("bob"), **kwargs), 404)
    after = keyed.get(f"/jobs/{job_id}", headers=bearer("alice")).json()
    assert after["status"] == before["status"] and after["owner"] == "alice"
