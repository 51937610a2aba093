"""GET /jobs served from RQ's own per-status records (app/listing): every filter, order, paging, ownership."""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import CanceledJobRegistry, FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from starlette.testclient import TestClient

from app import listing
from core import keys
from core.queues import QUEUE_NAMES, SERIALIZER
from tests.factories import noop_job, steps_job
from tests.support.replies import text
from tests.unit.conftest import app_client, bearer, keyed_overrides
from workers.job import RegisteredJob

REGISTRY = {
    "finished": FinishedJobRegistry.key_template,
    "failed": FailedJobRegistry.key_template,
    "stopped": FailedJobRegistry.key_template,
    "canceled": CanceledJobRegistry.key_template,
    "started": StartedJobRegistry.key_template,
}
STATUSES = ["queued", "scheduled", "deferred", "started", "finished", "failed", "stopped", "canceled"]
SOON = int(time.time()) + 3600  # registry scores (expiry) still ahead


def submit(client: TestClient, who: str, payload: dict[str, Any]) -> str:
    response = client.post("/jobs", json=payload, headers=bearer(who))
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def settle(redis: fakeredis.FakeRedis, job_id: str, status: str, score: float) -> None:
    """Move a queued job to `status` the way RQ records it: off its queue, into that status's registry."""
    queue = text(redis.hget(Job.key_for(job_id), "origin"))
    redis.lrem(f"rq:queue:{queue}", 0, job_id)
    redis.hset(Job.key_for(job_id), "status", status)
    member = f"{job_id}:execution-1" if status == "started" else job_id
    redis.zadd(REGISTRY[status].format(queue), {member: score})


def pages(client: TestClient, who: str, limit: int, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of a listing, following next_cursor; checks that no page but the last is short."""
    found: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        response = client.get("/jobs", params=query, headers=bearer(who))
        assert response.status_code == 200, response.text
        body = response.json()
        found.append(body["jobs"])
        cursor = body["next_cursor"]
        if cursor is None:
            return found
        assert len(body["jobs"]) == limit, "a page with a next_cursor is full when enough jobs match"


def listed(client: TestClient, who: str, limit: int, **params: Any) -> list[str]:
    ids = [job["id"] for page in pages(client, who, limit, **params) for job in page]
    assert len(ids) == len(set(ids)), "no job twice"
    return ids


#: Every key of a Redis database, each with the moment it expires (None: never) and its DUMP.
Snapshot = list[tuple[bytes, float | None, bytes]]


@pytest.fixture(scope="module")
def built_world() -> tuple[dict[str, dict[str, Any]], Snapshot]:
    """The world, built once per module through a keyed app on a server of its own, and a snapshot of it.

    Building it takes about 300 submissions through the app; restoring the snapshot costs a few milliseconds.
    """
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeRedis(server=server)
    with app_client(server, **keyed_overrides()) as keyed:
        facts = build_world(keyed, redis)
    now = time.time()
    snapshot: Snapshot = []
    for key in redis.keys():
        ttl_ms = redis.pttl(key)
        dumped = redis.dump(key)
        assert isinstance(key, bytes) and isinstance(dumped, bytes)
        snapshot.append((key, now + ttl_ms / 1000 if ttl_ms > 0 else None, dumped))
    return facts, snapshot


@pytest.fixture
def world(
    keyed: TestClient, fake_redis: fakeredis.FakeRedis, built_world: tuple[dict[str, dict[str, Any]], Snapshot]
) -> dict[str, dict[str, Any]]:
    """Jobs of both owners, both types, all three queues, in every status; job id -> its facts.

    Each test gets its own copy on its own server (the module's world restored key by key, each key
    keeping the moment it expires), as if it had been submitted through `keyed` in this test."""
    facts, snapshot = built_world
    now = time.time()
    with fake_redis.pipeline(transaction=False) as pipe:
        for key, expires_at, dumped in snapshot:
            ttl_ms = 0 if expires_at is None else max(1, int((expires_at - now) * 1000))
            pipe.restore(key, ttl_ms, dumped, replace=True)
        pipe.execute()
    return copy.deepcopy(facts)


def build_world(keyed: TestClient, fake_redis: fakeredis.FakeRedis) -> dict[str, dict[str, Any]]:
    facts: dict[str, dict[str, Any]] = {}
    combos = list(itertools.product(("alice", "bob"), ("demo.noop", "demo.steps"), QUEUE_NAMES))
    parent = submit(keyed, "alice", noop_job())  # stays queued: the deferred jobs wait on it
    facts[parent] = {"owner": "alice", "type": "demo.noop", "queue": "default", "status": "queued"}
    for round_ in range(3):
        for number, (owner, job_type, queue) in enumerate(combos):
            base = noop_job(queue=queue) if job_type == "demo.noop" else steps_job(queue=queue)
            for status in STATUSES:
                payload = dict(base)
                if status == "scheduled":
                    payload["delay"] = 60 + (number * 7 + round_ * 3) % 40  # distinct due times, some shared
                if status == "deferred":
                    payload["depends_on"] = [parent]
                job_id = submit(keyed, owner, payload)
                facts[job_id] = {"owner": owner, "type": job_type, "queue": queue, "status": status}
                if status in REGISTRY:
                    # many ties (RQ scores by whole seconds): the finished ones of a round share a score
                    score = SOON + round_ if status == "finished" else SOON + number + round_ * 20
                    settle(fake_redis, job_id, status, score)
    for owner in ("alice", "bob"):  # canceled through the real cancel path too
        job_id = submit(keyed, owner, noop_job(queue="low"))
        assert keyed.delete(f"/jobs/{job_id}", headers=bearer(owner)).status_code == 200
        facts[job_id] = {"owner": owner, "type": "demo.noop", "queue": "low", "status": "canceled"}
    return facts


def expected_order(redis: fakeredis.FakeRedis, facts: dict[str, dict[str, Any]], status: str | None) -> list[str]:
    ids = list(facts)
    if status is None:
        return sorted(ids, key=lambda i: (redis.zscore(keys.INDEX_ALL, i), i), reverse=True)
    if status == "queued":
        return sorted(
            ids, key=lambda i: (QUEUE_NAMES.index(facts[i]["queue"]), redis.lpos(f"rq:queue:{facts[i]['queue']}", i))
        )
    if status == "started":
        return sorted(ids, key=lambda i: (redis.zscore(keys.INDEX_ALL, i), i), reverse=True)
    template = {"scheduled": "rq:scheduled:{0}", "deferred": "rq:deferred:{0}"}.get(status) or REGISTRY[status]

    def key(i: str) -> tuple[float, str]:
        score = redis.zscore(template.format(facts[i]["queue"]), i)
        assert score is not None
        return (score, i)

    return sorted(ids, key=key, reverse=status != "scheduled")


FILTERS = list(itertools.product([None, *STATUSES], [None, "high", "default"], [None, "demo.noop"]))


@pytest.mark.parametrize(("status", "queue", "job_type"), FILTERS)
def test_every_filter_pages_through_exactly_the_matching_jobs_in_order(
    keyed: TestClient,
    fake_redis: fakeredis.FakeRedis,
    world: dict[str, dict[str, Any]],
    status: str | None,
    queue: str | None,
    job_type: str | None,
) -> None:
    params = {k: v for k, v in {"status": status, "queue": queue, "type": job_type}.items() if v}
    for who, limit in (("ops", 4), ("alice", 3), ("bob", 50)):
        matching = {
            job_id: fact
            for job_id, fact in world.items()
            if (who == "ops" or fact["owner"] == who)
            and (status is None or fact["status"] == status)
            and (queue is None or fact["queue"] == queue)
            and (job_type is None or fact["type"] == job_type)
        }
        assert listed(keyed, who, limit, **params) == expected_order(fake_redis, matching, status), (who, params)


def test_full_pages_and_a_correct_last_cursor(keyed: TestClient, world: dict[str, dict[str, Any]]) -> None:
    finished = [job_id for job_id, fact in world.items() if fact["status"] == "finished"]
    assert len(finished) == 36  # 2 owners x 2 types x 3 queues x 3 rounds
    sizes = [len(page) for page in pages(keyed, "ops", 12, status="finished")]
    assert sizes == [12, 12, 12], "the last full page carries no cursor: nothing is left"
    assert [len(page) for page in pages(keyed, "ops", 10, status="finished")] == [10, 10, 10, 6]


def test_statuses_a_real_worker_records_are_listed(client: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    ok = [client.post("/jobs", json=steps_job(steps=1)).json()["id"] for _ in range(3)]
    bad = [client.post("/jobs", json=steps_job(steps=1, args={"fail_at": 1})).json()["id"] for _ in range(2)]
    waiting = client.post("/jobs", json=noop_job()).json()["id"]
    queue = Queue("default", connection=fake_redis, serializer=SERIALIZER, job_class=RegisteredJob)
    worker = SimpleWorker([queue], connection=fake_redis, serializer=SERIALIZER, job_class=RegisteredJob)
    worker.work(burst=True, max_jobs=5)

    def ids(**params: Any) -> set[str]:
        return {job["id"] for job in client.get("/jobs", params=params).json()["jobs"]}

    assert ids(status="finished") == set(ok) and ids(status="failed") == set(bad)
    assert ids(status="queued") == {waiting} and ids(status="started") == set()
    assert ids(status="finished", queue="high") == set()
    assert [job["id"] for job in client.get("/jobs", params={"status": "finished"}).json()["jobs"]][-1] in ok


def test_paging_while_jobs_keep_coming_lists_each_job_once(keyed: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    old = [submit(keyed, "alice", noop_job()) for _ in range(9)]
    for number, job_id in enumerate(old):
        settle(fake_redis, job_id, "finished", SOON + number // 3)
    waiting = [submit(keyed, "alice", noop_job()) for _ in range(9)]

    def walk(status: str, between: Callable[[], None]) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"status": status, "limit": 2, **({"cursor": cursor} if cursor else {})}
            body = keyed.get("/jobs", params=params, headers=bearer("alice")).json()
            seen += [job["id"] for job in body["jobs"]]
            cursor = body["next_cursor"]
            if cursor is None:
                return seen
            between()

    def newer_finished_job() -> None:
        settle(fake_redis, submit(keyed, "alice", noop_job(queue="high")), "finished", SOON + 10)

    finished = walk("finished", newer_finished_job)
    assert finished == sorted(old, key=lambda i: (SOON + old.index(i) // 3, i), reverse=True)

    added: list[str] = []

    def workers_take_one_and_more_arrive() -> None:
        fake_redis.lpop("rq:queue:default")
        added.append(submit(keyed, "alice", noop_job()))

    queued = walk("queued", workers_take_one_and_more_arrive)
    assert len(queued) == len(set(queued))
    taken = set(waiting) - set(queued)
    assert queued == [job_id for job_id in [*waiting, *added] if job_id not in taken]
    assert len(taken) <= len(added), "only the jobs workers took before the page reached them are missing"


def test_a_queued_page_resumes_at_the_head_when_its_jobs_left_the_queue(
    keyed: TestClient, fake_redis: fakeredis.FakeRedis
) -> None:
    waiting = [submit(keyed, "alice", noop_job()) for _ in range(6)]
    first = keyed.get("/jobs", params={"status": "queued", "limit": 2}, headers=bearer("alice")).json()
    assert [job["id"] for job in first["jobs"]] == waiting[:2]
    fake_redis.lpop("rq:queue:default", 3)  # the listed ones and one more were taken by workers
    rest = keyed.get(
        "/jobs", params={"status": "queued", "limit": 5, "cursor": first["next_cursor"]}, headers=bearer("alice")
    ).json()
    assert [job["id"] for job in rest["jobs"]] == waiting[3:] and rest["next_cursor"] is None


def test_expired_and_vanished_jobs_are_not_listed(keyed: TestClient, fake_redis: fakeredis.FakeRedis) -> None:
    live, expired, vanished = (submit(keyed, "alice", noop_job()) for _ in range(3))
    settle(fake_redis, live, "finished", SOON)
    settle(fake_redis, expired, "finished", time.time() - 10)  # past its expiry: RQ's cleanup will drop it
    settle(fake_redis, vanished, "finished", SOON + 1)
    fake_redis.delete(Job.key_for(vanished))
    assert listed(keyed, "alice", 1, status="finished") == [live]
    assert listed(keyed, "alice", 1) == [expired, live]
    assert fake_redis.zscore(keys.index_for_owner("alice"), vanished) is None, "pruned from the index walked"


def test_sparse_matches_come_in_short_pages_within_the_scan_budget(
    keyed: TestClient, fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "SCAN_BUDGET_MIN", 4)
    monkeypatch.setattr(listing, "SCAN_BUDGET_PER_JOB", 2)
    mine = []
    for number in range(12):
        job_id = submit(keyed, "alice" if number % 4 == 0 else "bob", noop_job())
        settle(fake_redis, job_id, "finished", SOON + number)
        if number % 4 == 0:
            mine.append(job_id)
    found = [job["id"] for page in _short_pages(keyed, status="finished") for job in page]
    assert found == mine[::-1]


def _short_pages(client: TestClient, **params: Any) -> list[list[dict[str, Any]]]:
    result = []
    cursor = None
    while True:
        query = {"limit": 2, **params, **({"cursor": cursor} if cursor else {})}
        body = client.get("/jobs", params=query, headers=bearer("alice")).json()
        result.append(body["jobs"])
        cursor = body["next_cursor"]
        if cursor is None:
            return result


FOREIGN = [
    "not-a-cursor",
    listing.encode_cursor("q", ()),
    listing.encode_cursor("q", (0, 0, [])),  # no anchors
    listing.encode_cursor("q", (7, 0, ["x"])),  # no such queue
    listing.encode_cursor("new", (1.0, "x")),  # another order
    listing.encode_cursor("q", ("a", 0, ["x"])),
    listing.encode_cursor("q", (1, 0, ["x"] * 4)),  # more anchors than a page stores
    listing.encode_cursor("end", (float("nan"), "x")),
    listing.encode_cursor("end", (10**400, "x")),
    listing.encode_cursor("end", ("1", "x")),
]


@pytest.mark.parametrize("cursor", FOREIGN)
def test_foreign_cursors_are_422(keyed: TestClient, cursor: str) -> None:
    for status in ("queued", "finished"):
        response = keyed.get("/jobs", params={"status": status, "cursor": cursor}, headers=bearer("alice"))
        assert response.status_code == 422 and response.json()["errors"][0]["loc"] == ["cursor"]


def test_a_cursor_of_another_order_is_refused(keyed: TestClient) -> None:
    for _ in range(3):
        submit(keyed, "alice", noop_job())
    cursor = keyed.get("/jobs", params={"limit": 1}, headers=bearer("alice")).json()["next_cursor"]
    assert keyed.get("/jobs", params={"cursor": cursor}, headers=bearer("alice")).status_code == 200
    refused = keyed.get("/jobs", params={"status": "finished", "cursor": cursor}, headers=bearer("alice"))
    assert refused.status_code == 422


def test_a_misspelt_filter_is_refused_naming_it(client: TestClient) -> None:
    response = client.get("/jobs", params={"statsu": "finished"})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"][0]["loc"] == ["statsu"] and "statsu" in problem["detail"]
