"""Result reuse (`cache_ttl`): which submissions are identical, when a job is reused, the 422s, a job
type's default, the `Cache-Status` header, and how it meets Idempotency-Key and MAX_ACTIVE_JOBS."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import pytest
from rq.job import Job, JobStatus
from rq.utils import utcformat
from starlette.testclient import TestClient

from app.result_reuse import hit
from core.queues import SERIALIZER
from core.reuse import canonical_json, reuse_key
from core.settings import Settings
from jobs.catalog import registry
from tests.support.inprocess import run_jobs
from tests.unit.conftest import bearer, keyed_overrides

NOOP = {"type": "demo.noop", "args": {}}
QUICK = {"type": "demo.steps", "args": {"steps": 1, "delay": 0}}

# RFC 9211 on RFC 8941: a list member is a token (the cache) followed by `;key` or `;key=value` parameters.
_TOKEN = r"[A-Za-z*][A-Za-z0-9:/!#$%&'*+\-.^_`|~]*"
_KEY = r"[a-z*][a-z0-9_\-.*]*"
_BARE = r"-?\d{1,15}|" + _TOKEN + r'|"[^"\\]*"|\?[01]'
CACHE_STATUS = re.compile(rf"^{_TOKEN}(;[ ]*{_KEY}(=({_BARE}))?)*$")


def cache_status(response: Any) -> dict[str, str | bool]:
    """The parameters of the `jobsvc` member of `Cache-Status`, checked against RFC 9211's grammar."""
    value = response.headers["cache-status"]
    assert CACHE_STATUS.match(value), value
    name, *params = (part.strip() for part in value.split(";"))
    assert name == "jobsvc"
    return {key: (raw if sep else True) for key, sep, raw in (param.partition("=") for param in params)}


def job_ids(fake_redis: fakeredis.FakeRedis) -> set[bytes]:
    return {key for key in fake_redis.scan_iter("rq:job:*") if key.count(b":") == 2}


def set_fields(fake_redis: fakeredis.FakeRedis, job_id: str, **fields: str) -> None:
    mapping: dict[Any, Any] = dict(fields)
    fake_redis.hset(Job.key_for(job_id), mapping=mapping)


# -- identical submissions ---------------------------------------------------------------------


def test_canonical_json_sorts_keys_drops_whitespace_and_writes_a_number_one_way() -> None:
    assert canonical_json({"b": [1, {"y": 2.0, "x": "é"}], "a": None}) == '{"a":null,"b":[1,{"x":"é","y":2}]}'
    assert canonical_json({"n": 1.0}) == canonical_json({"n": 1}) == canonical_json({"n": 1e0})
    assert canonical_json({"n": 1.5}) != canonical_json({"n": 1})
    assert canonical_json({"n": True}) != canonical_json({"n": 1})
    assert canonical_json({"n": -0.0}) == canonical_json({"n": 0})


def test_the_reuse_key_names_owner_type_queue_and_args() -> None:
    base = reuse_key("alice", "demo.steps", "default", {"steps": 2, "delay": 0.5})
    assert base.startswith("jobsvc:reuse:") and len(base.rsplit(":", 1)[1]) == 64
    assert base == reuse_key("alice", "demo.steps", "default", {"delay": 0.5, "steps": 2.0})
    for other in (
        reuse_key("bob", "demo.steps", "default", {"steps": 2, "delay": 0.5}),
        reuse_key("alice", "demo.sleep", "default", {"steps": 2, "delay": 0.5}),
        reuse_key("alice", "demo.steps", "high", {"steps": 2, "delay": 0.5}),
        reuse_key("alice", "demo.steps", "default", {"steps": 3, "delay": 0.5}),
        reuse_key("alice|demo.steps", "default", "x", {}),  # no field can spill into the next
    ):
        assert other != base


# -- hit and miss ------------------------------------------------------------------------------


def test_an_identical_request_reuses_the_waiting_job(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    first = client.post("/jobs", json={**QUICK, "cache_ttl": 60})
    assert first.status_code == 202 and first.headers["cache-status"] == "jobsvc; fwd=miss"
    job_id = first.json()["id"]
    # the same arguments written another way: key order, 1.0 for 1, a default spelled out
    same = {"type": "demo.steps", "args": {"delay": 0, "steps": 1.0, "fail_at": None}, "cache_ttl": 5}
    again = client.post("/jobs", json=same)
    assert again.status_code == 200, again.text
    assert again.headers["cache-status"] == "jobsvc; hit"  # no ttl while the job has not finished
    assert cache_status(again) == {"hit": True}
    assert again.json()["id"] == job_id and again.headers["location"] == f"/jobs/{job_id}"
    assert again.json()["status"] == "queued"
    assert fake_redis.llen("rq:queue:default") == 1 and len(job_ids(fake_redis)) == 1


def test_no_cache_status_without_cache_ttl_and_such_requests_make_new_jobs(client: TestClient) -> None:
    answers = [client.post("/jobs", json=QUICK) for _ in range(2)]
    assert [answer.status_code for answer in answers] == [202, 202]
    assert all("cache-status" not in answer.headers for answer in answers)
    assert answers[0].json()["id"] != answers[1].json()["id"]
    # a request with cache_ttl reuses the newest of them: any identical job counts, not only those asking
    reused = client.post("/jobs", json={**QUICK, "cache_ttl": 30})
    assert reused.status_code == 200 and reused.json()["id"] == answers[1].json()["id"]


@pytest.mark.parametrize(
    "other",
    [
        {**QUICK, "args": {"steps": 2, "delay": 0}},
        {**QUICK, "queue": "high"},
        {"type": "demo.sleep", "args": {"seconds": 0}},
    ],
    ids=["args", "queue", "type"],
)
def test_a_request_differing_in_args_queue_or_type_is_a_new_job(client: TestClient, other: dict[str, Any]) -> None:
    assert client.post("/jobs", json={**QUICK, "cache_ttl": 60}).status_code == 202
    answer = client.post("/jobs", json={**other, "cache_ttl": 60})
    assert answer.status_code == 202 and answer.headers["cache-status"] == "jobsvc; fwd=miss"


def test_another_key_never_reuses_a_job(keyed: TestClient) -> None:
    mine = keyed.post("/jobs", json={**QUICK, "cache_ttl": 60}, headers=bearer("alice"))
    theirs = keyed.post("/jobs", json={**QUICK, "cache_ttl": 60}, headers=bearer("bob"))
    assert (mine.status_code, theirs.status_code) == (202, 202)
    again = keyed.post("/jobs", json={**QUICK, "cache_ttl": 60}, headers=bearer("bob"))
    assert again.status_code == 200 and again.json()["id"] == theirs.json()["id"]


def test_a_finished_job_is_reused_while_fresh_then_replaced(
    client: TestClient, fake_redis: fakeredis.FakeRedis
) -> None:
    job_id = client.post("/jobs", json={**QUICK, "cache_ttl": 60}).json()["id"]
    run_jobs(fake_redis)
    fresh = client.post("/jobs", json={**QUICK, "cache_ttl": 60})
    assert fresh.status_code == 200 and fresh.json()["id"] == job_id
    assert fresh.json()["status"] == "finished" and fresh.json()["result"] == {"steps": 1, "attempt": 1}
    ttl = cache_status(fresh)["ttl"]
    assert isinstance(ttl, str) and 55 <= int(ttl) <= 60

    set_fields(fake_redis, job_id, ended_at=utcformat(datetime.now(UTC) - timedelta(seconds=30)))
    assert client.post("/jobs", json={**QUICK, "cache_ttl": 40}).json()["id"] == job_id  # 30 s old, fresh for 40
    stale = client.post("/jobs", json={**QUICK, "cache_ttl": 20})  # not for 20: a new job
    assert stale.status_code == 202 and stale.headers["cache-status"] == "jobsvc; fwd=miss"
    newer = stale.json()["id"]
    assert newer != job_id
    after = client.post("/jobs", json={**QUICK, "cache_ttl": 40})  # the new job replaced the old in the entry
    assert after.status_code == 200 and after.json()["id"] == newer


def test_a_failed_job_is_never_reused(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    failing = {"type": "demo.steps", "args": {"steps": 1, "delay": 0, "fail_at": 1}, "cache_ttl": 600}
    job_id = client.post("/jobs", json=failing).json()["id"]
    run_jobs(fake_redis)
    assert client.get(f"/jobs/{job_id}").json()["status"] == "failed"
    again = client.post("/jobs", json=failing)
    assert again.status_code == 202 and again.json()["id"] != job_id


def test_a_canceled_job_is_never_reused(client: TestClient) -> None:
    job_id = client.post("/jobs", json={**QUICK, "cache_ttl": 600}).json()["id"]
    assert client.delete(f"/jobs/{job_id}").json()["status"] == "canceled"
    again = client.post("/jobs", json={**QUICK, "cache_ttl": 600})
    assert again.status_code == 202 and again.json()["id"] != job_id


@pytest.mark.parametrize("status", ["failed", "stopped", "canceled"])
def test_no_job_that_ended_badly_is_reused_even_just_ended(
    client: TestClient, fake_redis: fakeredis.FakeRedis, status: str
) -> None:
    job_id = client.post("/jobs", json={**QUICK, "cache_ttl": 600}).json()["id"]
    set_fields(fake_redis, job_id, status=status, ended_at=utcformat(datetime.now(UTC)))
    again = client.post("/jobs", json={**QUICK, "cache_ttl": 600})
    assert again.status_code == 202 and again.json()["id"] != job_id


@pytest.mark.parametrize("status", ["queued", "scheduled", "deferred", "started"])
def test_a_waiting_or_running_job_is_reused(client: TestClient, fake_redis: fakeredis.FakeRedis, status: str) -> None:
    job_id = client.post("/jobs", json={**QUICK, "cache_ttl": 1}).json()["id"]
    set_fields(fake_redis, job_id, status=status)
    again = client.post("/jobs", json={**QUICK, "cache_ttl": 1})
    assert again.status_code == 200 and again.json()["id"] == job_id


def test_an_expired_job_is_not_reused(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    job_id = client.post("/jobs", json={**QUICK, "cache_ttl": 600}).json()["id"]
    fake_redis.delete(Job.key_for(job_id))
    again = client.post("/jobs", json={**QUICK, "cache_ttl": 600})
    assert again.status_code == 202 and again.json()["id"] != job_id


def test_a_scheduled_or_dependent_submission_takes_part_too(client: TestClient) -> None:
    delayed = client.post("/jobs", json={**QUICK, "delay": 600, "cache_ttl": 60})
    assert delayed.status_code == 202 and delayed.json()["status"] == "scheduled"
    assert client.post("/jobs", json={**QUICK, "cache_ttl": 60}).json()["id"] == delayed.json()["id"]
    parent = client.post("/jobs", json=NOOP).json()["id"]
    child = {"type": "demo.steps", "args": {"steps": 3, "delay": 0}, "depends_on": [parent], "cache_ttl": 60}
    first = client.post("/jobs", json=child)
    assert first.status_code == 202 and first.json()["status"] == "deferred"
    again = client.post("/jobs", json=child)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


# -- the entry's lifetime ----------------------------------------------------------------------


def test_the_entry_never_outlives_a_result(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    job_id = client.post("/jobs", json={**QUICK, "cache_ttl": 60}).json()["id"]
    [entry] = fake_redis.keys("jobsvc:reuse:*")
    assert fake_redis.get(entry) == job_id.encode()
    assert 0 < fake_redis.ttl(entry) <= settings.result_ttl
    fake_redis.expire(entry, 5)
    client.post("/jobs", json={**QUICK, "cache_ttl": 60})  # still waiting: the entry lives on
    assert fake_redis.ttl(entry) > 5
    run_jobs(fake_redis)
    fake_redis.expire(entry, 5)
    assert client.post("/jobs", json={**QUICK, "cache_ttl": 60}).status_code == 200
    assert fake_redis.ttl(entry) <= 5  # finished: its result expires RESULT_TTL after the end, the entry sooner


# -- the request's cache_ttl, the type's default ------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, 86401, "60", 1.5, True])
def test_cache_ttl_out_of_range_or_not_an_integer_is_a_422_naming_it(client: TestClient, value: Any) -> None:
    answer = client.post("/jobs", json={**QUICK, "cache_ttl": value})
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert [error["loc"] for error in answer.json()["errors"]] == [["cache_ttl"]]


def test_cache_ttl_up_to_result_ttl_is_accepted(make_client: Callable[..., TestClient]) -> None:
    client = make_client(result_ttl=300)
    assert client.post("/jobs", json={**QUICK, "cache_ttl": 300}).status_code == 202
    refused = client.post("/jobs", json={**QUICK, "cache_ttl": 301})
    assert refused.status_code == 422 and "300" in refused.json()["errors"][0]["msg"]


def test_batch_members_and_schedules_refuse_cache_ttl(client: TestClient) -> None:
    batch = client.post("/batches", json={"jobs": [QUICK, {**QUICK, "cache_ttl": 60}]})
    assert batch.status_code == 422
    assert [error["loc"] for error in batch.json()["errors"]] == [["jobs", 1, "cache_ttl"]]
    schedule = client.post("/schedules", json={**QUICK, "every": 60, "cache_ttl": 60})
    assert schedule.status_code == 422
    assert [error["loc"] for error in schedule.json()["errors"]] == [["cache_ttl"]]


@pytest.fixture
def noop_reused_for_30s(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """demo.noop declares `cache_ttl=30` in code, as a job type may."""
    spec = registry.get("demo.noop")
    monkeypatch.setitem(registry._by_name, "demo.noop", replace(spec, cache_ttl=30))
    yield


@pytest.mark.usefixtures("noop_reused_for_30s")
def test_a_job_types_default_cache_ttl_applies_and_a_request_overrides_it(
    client: TestClient, fake_redis: fakeredis.FakeRedis
) -> None:
    listed = {entry["type"]: entry for entry in client.get("/job-types").json()}
    assert listed["demo.noop"]["cache_ttl"] == 30 and listed["demo.steps"]["cache_ttl"] is None
    first = client.post("/jobs", json=NOOP)
    assert first.status_code == 202 and first.headers["cache-status"] == "jobsvc; fwd=miss"
    run_jobs(fake_redis)
    job_id = first.json()["id"]
    set_fields(fake_redis, job_id, ended_at=utcformat(datetime.now(UTC) - timedelta(seconds=20)))
    by_default = client.post("/jobs", json=NOOP)
    assert by_default.status_code == 200 and by_default.json()["id"] == job_id
    assert int(cache_status(by_default)["ttl"]) <= 10
    shorter = client.post("/jobs", json={**NOOP, "cache_ttl": 10})  # the request's value wins
    assert shorter.status_code == 202 and shorter.json()["id"] != job_id
    # batch members and schedules' runs never reuse, whatever the type says
    assert client.post("/batches", json={"jobs": [NOOP]}).status_code == 202


def test_a_job_type_declaring_a_cache_ttl_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="cache_ttl"):
        registry.add(replace(registry.get("demo.noop"), name="demo.never", func_path="x.never", cache_ttl=0))


# -- Cache-Control: no-cache ---------------------------------------------------------------------


def test_no_cache_asks_for_a_new_job_which_later_requests_reuse(client: TestClient) -> None:
    first = client.post("/jobs", json={**QUICK, "cache_ttl": 60}).json()["id"]
    forced = client.post("/jobs", json={**QUICK, "cache_ttl": 60}, headers={"Cache-Control": "max-age=0, no-cache"})
    assert forced.status_code == 202 and forced.headers["cache-status"] == "jobsvc; fwd=request"
    assert forced.json()["id"] != first
    later = client.post("/jobs", json={**QUICK, "cache_ttl": 60})
    assert later.status_code == 200 and later.json()["id"] == forced.json()["id"]
    other = {"type": "demo.steps", "args": {"steps": 4, "delay": 0}, "cache_ttl": 60}
    nothing_to_pass = client.post("/jobs", json=other, headers={"Cache-Control": "no-cache"})
    assert nothing_to_pass.status_code == 202 and nothing_to_pass.headers["cache-status"] == "jobsvc; fwd=miss"


# -- with Idempotency-Key and MAX_ACTIVE_JOBS ----------------------------------------------------


def test_an_idempotency_key_that_met_a_reused_job_names_that_job(client: TestClient) -> None:
    original = client.post("/jobs", json={**QUICK, "cache_ttl": 60}).json()["id"]
    keyed = client.post("/jobs", json={**QUICK, "cache_ttl": 60}, headers={"Idempotency-Key": "k-1"})
    assert keyed.status_code == 200 and keyed.json()["id"] == original
    replay = client.post("/jobs", json={**QUICK, "cache_ttl": 60}, headers={"Idempotency-Key": "k-1"})
    assert replay.status_code == 200 and replay.json()["id"] == original
    assert "cache-status" not in replay.headers  # the key answered, not the reuse
    other_body = client.post("/jobs", json={**QUICK, "cache_ttl": 61}, headers={"Idempotency-Key": "k-1"})
    assert other_body.status_code == 422


def test_a_reused_job_takes_no_active_job_slot(make_client: Callable[..., TestClient]) -> None:
    client = make_client(**keyed_overrides(), max_active_jobs=1)
    first = client.post("/jobs", json={**QUICK, "cache_ttl": 60}, headers=bearer("alice"))
    assert first.status_code == 202
    assert client.post("/jobs", json=NOOP, headers=bearer("alice")).status_code == 429
    again = client.post("/jobs", json={**QUICK, "cache_ttl": 60}, headers=bearer("alice"))
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


# -- the header ----------------------------------------------------------------------------------


def test_the_hit_header_counts_the_remaining_freshness_of_a_finished_job(fake_redis: fakeredis.FakeRedis) -> None:
    ended = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    job = Job.create("jobs.builtin.demo.noop", connection=fake_redis, serializer=SERIALIZER)
    job.set_status(JobStatus.FINISHED, pipeline=None)
    job.ended_at = ended
    assert hit(job, 600, now=ended + timedelta(seconds=59.5)) == "jobsvc; hit; ttl=540"
    assert hit(job, 600, now=ended + timedelta(seconds=601)) == "jobsvc; hit; ttl=0"
    job.set_status(JobStatus.STARTED, pipeline=None)
    assert hit(job, 600) == "jobsvc; hit"
