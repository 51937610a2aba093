"""`/schedules`: create, list, read, change, pause, delete, owner scoping and validation errors."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
from starlette.testclient import TestClient

from core import keys
from tests.unit.conftest import bearer

EVERY = {"type": "demo.noop", "every": 60}


def create(client: TestClient, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = client.post("/schedules", json=body, headers=headers or None)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/schedules/{response.json()['id']}"
    view: dict[str, Any] = response.json()
    return view


def test_create_read_and_list(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    view = create(client, {"type": "demo.steps", "args": {"steps": 2}, "cron": "0 3 * * *", "timezone": "Europe/Paris"})
    assert view["cron"] == "0 3 * * *" and view["every"] is None and view["timezone"] == "Europe/Paris"
    assert view["args"] == {"steps": 2, "delay": 0.5, "fail_at": None, "fail_attempts": None}  # defaults filled
    assert view["enabled"] is True and view["overlap"] is False and view["runs"] == 0 and view["skipped"] == 0
    assert view["next_run_at"].endswith(("01:00:00.000Z", "02:00:00.000Z"))  # 03:00 Paris, winter or summer
    assert view["owner"] == "anonymous" and view["last_job_id"] is None and view["queue"] == "default"
    assert client.get(f"/schedules/{view['id']}").json() == view
    listed = client.get("/schedules").json()
    assert listed == {"schedules": [view], "next_cursor": None}
    assert fake_redis.zscore(keys.SCHEDULES_DUE, view["id"]) is not None


def test_listing_pages_with_a_cursor(client: TestClient) -> None:
    ids = [create(client, EVERY)["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/schedules", params=params).json()
        seen += [schedule["id"] for schedule in page["schedules"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids  # oldest first, each once
    assert client.get("/schedules", params={"cursor": "nonsense"}).status_code == 422


def test_patch_revalidates_and_recomputes_next_run(client: TestClient) -> None:
    view = create(client, EVERY)
    changed = client.patch(f"/schedules/{view['id']}", json={"cron": "*/5 * * * *"}).json()
    assert changed["cron"] == "*/5 * * * *" and changed["every"] is None
    assert changed["next_run_at"] != view["next_run_at"] and changed["next_run_at"][14:16] in {
        f"{m:02d}" for m in range(0, 60, 5)
    }
    bad = client.patch(f"/schedules/{view['id']}", json={"args": {"nope": 1}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"][0] == "args"
    assert client.get(f"/schedules/{view['id']}").json()["cron"] == "*/5 * * * *"  # unchanged by the refusal


def test_pause_and_resume(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    view = create(client, EVERY)
    paused = client.patch(f"/schedules/{view['id']}", json={"enabled": False}).json()
    assert paused["enabled"] is False and paused["next_run_at"] is None
    assert fake_redis.zscore(keys.SCHEDULES_DUE, view["id"]) is None
    resumed = client.patch(f"/schedules/{view['id']}", json={"enabled": True}).json()
    assert resumed["enabled"] is True and resumed["next_run_at"] is not None
    assert fake_redis.zscore(keys.SCHEDULES_DUE, view["id"]) is not None


def test_delete(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    view = create(client, EVERY)
    assert client.delete(f"/schedules/{view['id']}").status_code == 204
    assert client.get(f"/schedules/{view['id']}").status_code == 404
    assert client.delete(f"/schedules/{view['id']}").status_code == 404
    assert fake_redis.zcard(keys.SCHEDULES_DUE) == 0 and fake_redis.zcard(keys.SCHEDULES_ALL) == 0


def test_another_keys_schedule_is_not_found(keyed: TestClient) -> None:
    alice = bearer("alice")
    view = create(keyed, EVERY, **alice)
    assert view["owner"] == "alice"
    for method in ("GET", "PATCH", "DELETE"):
        response = keyed.request(method, f"/schedules/{view['id']}", json={} if method == "PATCH" else None,
                                 headers=bearer("bob"))  # fmt: skip
        assert response.status_code == 404, method
    assert keyed.get("/schedules", headers=bearer("bob")).json()["schedules"] == []
    assert [s["id"] for s in keyed.get("/schedules", headers=bearer("ops")).json()["schedules"]] == [view["id"]]
    assert keyed.get(f"/schedules/{view['id']}", headers=bearer("ops")).status_code == 200


@pytest.mark.parametrize(
    ("body", "loc", "says"),
    [
        ({"type": "demo.noop"}, "cron", "exactly one"),
        ({"type": "demo.noop", "cron": "* * * * *", "every": 5}, "every", "exactly one"),
        ({"type": "demo.noop", "every": 0}, "every", "greater than or equal to 1"),
        ({"type": "demo.noop", "every": "5"}, "every", "integer"),
        ({"type": "demo.noop", "cron": "0 25 * * *"}, "cron", "hour"),
        ({"type": "demo.noop", "cron": "0 0 * * FUNDAY"}, "cron", "day-of-week"),
        ({"type": "demo.noop", "cron": "0 0 * *"}, "cron", "5"),
        ({"type": "demo.noop", "every": 5, "timezone": "Mars/Base"}, "timezone", "IANA"),
        ({"type": "nope.unknown", "every": 5}, "type", "unknown job type"),
        ({"type": "demo.steps", "args": {"steps": 0}, "every": 5}, "args", "greater than"),
        ({"type": "demo.noop", "every": 5, "timeout": 100000}, "timeout", "between"),
        ({"type": "demo.noop", "every": 5, "retries": 99}, "retries", "between"),
        ({"type": "demo.noop", "every": 5, "queue": "urgent"}, "queue", "high"),
        ({"type": "demo.noop", "every": 5, "delay": 3.0}, "delay", "not permitted"),
        ({"type": "demo.noop", "every": 5, "enabled": "yes"}, "enabled", "boolean"),
    ],
)
def test_validation_errors_name_the_field(client: TestClient, body: dict[str, Any], loc: str, says: str) -> None:
    response = client.post("/schedules", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["errors"][0]["loc"][0] == loc
    assert says.lower() in problem["errors"][0]["msg"].lower()
    assert client.get("/schedules").json()["schedules"] == []  # nothing written


def test_cron_errors_carry_the_expression_field(client: TestClient) -> None:
    problem = client.post("/schedules", json={"type": "demo.noop", "cron": "99 * * * *"}).json()
    assert problem["errors"] == [{"loc": ["cron"], "msg": problem["errors"][0]["msg"], "field": "minute"}]
    assert "minute" in problem["detail"]


def test_metrics_count_schedules(client: TestClient) -> None:
    create(client, EVERY)
    paused = create(client, {**EVERY, "enabled": False})
    assert paused["next_run_at"] is None
    text = client.get("/metrics").text
    assert 'jobsvc_schedules{state="enabled"} 1.0' in text and 'jobsvc_schedules{state="disabled"} 1.0' in text
    assert "jobsvc_schedule_runs_total 0.0" in text and "jobsvc_schedule_skipped_total 0.0" in text
