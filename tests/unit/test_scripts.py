"""The web's one-command submission and status scripts (`app.scripts`), on FakeRedis's Lua."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest
import redis
from rq.job import Job, JobStatus
from rq.results import Result

from app.scripts import ListingEntry, Scripts
from app.store import JobStore
from core import keys
from core.rqadapter.enqueue import queued_job_writes
from core.rqadapter.scripts import Fetched, flatten
from core.settings import Settings
from tests.support.replies import text


def _store(server: fakeredis.FakeServer) -> JobStore:
    settings = Settings(redis_url="redis://unused:6379/0")
    return JobStore(settings, fakeredis.FakeRedis(server=server), fakeredis.FakeAsyncRedis(server=server))


def _recorded(store: JobStore, owner: str = "alice") -> tuple[Job, list[Any]]:
    job = store.build_job(
        func_path="jobs.builtin.demo.steps", kwargs={"steps": 1}, queue="default", timeout=60, retries=1,
        description="demo.steps", meta={"type": "demo.steps", "owner": owner},
    )  # fmt: skip
    recorder = store.sync.pipeline(transaction=True)
    store.queues["default"].enqueue_job(job, pipeline=recorder)
    return job, [args for args, _options in recorder.command_stack]


def test_flatten_prefixes_each_command_with_its_argument_count() -> None:
    assert list(flatten([("SADD", "k", "v"), ("RPUSH", "q", "id")])) == [3, "SADD", "k", "v", 3, "RPUSH", "q", "id"]


def test_submit_runs_every_recorded_command() -> None:
    server = fakeredis.FakeServer()
    store = _store(server)
    job, stack = _recorded(store)
    outcome = asyncio.run(Scripts(store.aio).submit(stack, job.id))
    assert outcome.written
    sync = store.sync
    assert sync.lrange("rq:queue:default", 0, -1) == [job.id.encode()]
    assert sync.sismember("rq:queues", "rq:queue:default")
    stored = Job.fetch(job.id, connection=sync, serializer=store.queues["default"].serializer)
    assert stored.get_status() == JobStatus.QUEUED and stored.kwargs == {"steps": 1}
    assert stored.retries_left == 1 and stored.meta["owner"] == "alice"


def test_a_taken_claim_returns_what_it_stores_and_writes_nothing() -> None:
    server = fakeredis.FakeServer()
    store = _store(server)
    store.sync.set("claim", "the first job")
    job, stack = _recorded(store)
    outcome = asyncio.run(Scripts(store.aio).submit(stack, job.id, claim=("claim", "the second", 60)))
    assert not outcome.written and outcome.existing_claim == b"the first job"
    assert store.sync.llen("rq:queue:default") == 0 and not store.sync.exists(Job.key_for(job.id))


def test_a_free_claim_is_set_with_its_ttl_and_the_job_written() -> None:
    server = fakeredis.FakeServer()
    store = _store(server)
    job, stack = _recorded(store)
    outcome = asyncio.run(Scripts(store.aio).submit(stack, job.id, claim=("claim", "mine", 60)))
    assert outcome.written
    assert store.sync.get("claim") == b"mine" and 0 < store.sync.ttl("claim") <= 60
    assert store.sync.llen("rq:queue:default") == 1


def test_the_quota_counts_active_jobs_prunes_ended_ones_and_refuses_at_the_limit() -> None:
    server = fakeredis.FakeServer()
    store = _store(server)
    sync: redis.Redis = store.sync
    sync.hset(Job.key_for("running"), "status", "started")
    sync.hset(Job.key_for("done"), "status", "finished")
    sync.sadd("active", "running", "done", "expired")  # `expired` has no job hash any more
    scripts = Scripts(store.aio)

    job, stack = _recorded(store)
    assert asyncio.run(scripts.submit(stack, job.id, quota=("active", 2))).written
    assert sync.smembers("active") == {b"running", job.id.encode()}  # ended and expired pruned, new one counted

    refused, stack = _recorded(store)
    outcome = asyncio.run(scripts.submit(stack, refused.id, quota=("active", 2)))
    assert not outcome.written and outcome.active == 2
    assert not sync.exists(Job.key_for(refused.id)) and sync.llen("rq:queue:default") == 1


def test_fetch_reads_the_job_its_newest_result_and_its_queue_position() -> None:
    server = fakeredis.FakeServer()
    store = _store(server)
    scripts = Scripts(store.aio)
    assert asyncio.run(scripts.fetch("nope")) is None

    first, stack = _recorded(store)
    asyncio.run(scripts.submit(stack, first.id))
    second, stack = _recorded(store)
    asyncio.run(scripts.submit(stack, second.id))
    raw, results, position = _fetched(scripts, second.id)
    assert raw[b"status"] == b"queued" and position == 1 and results == []

    store.sync.hset(Job.key_for(second.id), "status", "finished")
    store.sync.xadd(Result.get_key(second.id), {"type": "1", "return_value": "old"})
    store.sync.xadd(Result.get_key(second.id), {"type": "1", "return_value": "new"})
    raw, results, position = _fetched(scripts, second.id)
    assert position is None and len(results) == 1
    entry_id, payload = results[0]
    assert isinstance(entry_id, bytes) and payload[b"return_value"] == b"new"


def _fetched(scripts: Scripts, job_id: str) -> Fetched:
    """What `fetch` reads for a job the test expects to exist."""
    found = asyncio.run(scripts.fetch(job_id))
    assert found is not None
    return found


def _position(scripts: Scripts, job_id: str) -> int | None:
    return _fetched(scripts, job_id)[2]


def test_a_queued_jobs_position_stays_exact_whatever_moves_its_queue() -> None:
    server = fakeredis.FakeServer()
    store = _store(server)
    scripts = Scripts(store.aio)
    sync, queue = store.sync, "rq:queue:default"

    def submit(counted: bool = True) -> str:
        job, stack = _recorded(store)
        asyncio.run(scripts.submit(stack, job.id, pushed_onto="default" if counted else None))
        return job.id

    def check_every_position() -> None:
        ids = [text(item) for item in sync.lrange(queue, 0, -1)]
        assert ids and [_position(scripts, job_id) for job_id in ids] == list(range(len(ids)))
        # every job's hint is anchored again: its distance from the tail is the counter minus its SEQ
        pushes = int(sync.get(keys.queue_pushes("default")) or 0)
        for index, job_id in enumerate(ids):
            assert pushes - int(text(sync.hget(Job.key_for(job_id), keys.QUEUE_SEQ))) == len(ids) - 1 - index

    counted = [submit() for _ in range(5)]
    assert sync.get(keys.queue_pushes("default")) == b"5"
    check_every_position()
    sync.lpop(queue)  # a worker takes the head
    check_every_position()
    submit(counted=False)  # a push the counter does not see (RQ's own enqueue: a retry, a dependent)
    submit()
    check_every_position()
    front = submit(counted=False)
    sync.lrem(queue, 1, front)
    sync.lpush(queue, front)  # at the front instead, as RQ's `at_front` puts it
    check_every_position()
    sync.lrem(queue, 1, counted[2])  # a job in the middle canceled
    check_every_position()
    sync.delete(keys.queue_pushes("default"))  # the counter lost (a restore from an old snapshot)
    submit()
    check_every_position()
    sync.hset(Job.key_for(counted[1]), "status", "started")
    assert _position(scripts, counted[1]) is None


def test_submit_adds_the_job_to_its_listing_indexes_and_drops_stale_entries() -> None:
    server = fakeredis.FakeServer()
    store = _store(server)
    store.sync.zadd("index:a", {"ancient": 1.0, "recent": 900.0})
    job, stack = _recorded(store)
    listing = ListingEntry(("index:a", "index:b"), 1000.0, "(500.0")
    assert asyncio.run(Scripts(store.aio).submit(stack, job.id, listing=listing)).written
    assert store.sync.zrange("index:a", 0, -1, withscores=True) == [(b"recent", 900.0), (job.id.encode(), 1000.0)]
    assert store.sync.zrange("index:b", 0, -1, withscores=True) == [(job.id.encode(), 1000.0)]


def _contents(client: redis.Redis) -> dict[bytes | str, tuple[bytes | str, Any]]:
    """Every key of the database: its Redis type and its value."""
    readers: dict[bytes | str, Callable[[bytes | str], object]] = {
        b"hash": client.hgetall,
        b"list": lambda key: client.lrange(key, 0, -1),
        b"set": client.smembers,
    }
    return {key: (client.type(key), readers[client.type(key)](key)) for key in client.keys("*")}


@pytest.mark.parametrize(("retries", "description"), [(0, "demo.steps"), (3, "a description")])
def test_the_direct_queued_writes_leave_redis_exactly_as_rqs_enqueue_job(
    monkeypatch: pytest.MonkeyPatch, retries: int, description: str
) -> None:
    fixed = datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=UTC)
    for module in ("rq.job", "rq.queue", "core.rqadapter.enqueue"):
        monkeypatch.setattr(f"{module}.now", lambda: fixed)
    monkeypatch.setattr("rq.job.uuid4", lambda: uuid.UUID("12345678123456781234567812345678"))
    written = []
    for direct in (False, True):
        store = _store(fakeredis.FakeServer())
        job = store.build_job(
            func_path="jobs.builtin.demo.steps", kwargs={"steps": 1}, queue="high", timeout=60, retries=retries,
            description=description, meta={"type": "demo.steps", "owner": "alice", "messages": []},
        )  # fmt: skip
        queue = store.queues["high"]
        if direct:
            commands = queued_job_writes(queue, job)
        else:
            recorder = store.sync.pipeline(transaction=True)
            queue.enqueue_job(job, pipeline=recorder)
            commands = [args for args, _options in recorder.command_stack]
        for command in commands:
            store.sync.execute_command(*command)  # type: ignore[no-untyped-call]  # unannotated in redis-py
        written.append((_contents(store.sync), job.to_dict()))
    assert written[0] == written[1]
    assert written[1][0][b"rq:job:12345678-1234-5678-1234-567812345678"][1][b"status"] == b"queued"


# The active-jobs quota, written once (in the submission script): every path that counts a job against it
# (a plain or dependent submission, a retry's reserved slot, a check-only call) runs through these cases.
# members: job id -> its stored status (None: the job expired); outcome: "written", "checked" or the
# active count of a refusal; then what the active set holds afterwards.
QUOTA_CASES = [
    pytest.param({"running": "started", "done": "finished", "gone": None}, 2, "new", False, "written",
                 {"running", "new"}, id="ended-and-expired-pruned-new-counted"),
    pytest.param({}, 1, "new", False, "written", {"new"}, id="empty-set"),
    pytest.param({"a": "queued", "b": "deferred", "done": "failed"}, 2, "new", False, 2, {"a", "b"},
                 id="full-refused-and-pruned"),
    pytest.param({"a": "scheduled", "b": "started"}, 3, "new", False, "written", {"a", "b", "new"},
                 id="below-the-limit"),
    pytest.param({"self": "queued"}, 1, "self", False, "written", {"self"}, id="a-job-already-counted-is-not-again"),
    pytest.param({"self": "failed", "other": "queued"}, 1, "self", False, 1, {"other"},
                 id="a-requeued-job-needs-a-free-slot"),
    pytest.param({"done": "finished"}, 1, "new", True, "checked", {"done"}, id="check-only-writes-nothing"),
    pytest.param({"a": "started"}, 1, "new", True, 1, {"a"}, id="check-only-still-refuses"),
]  # fmt: skip


@pytest.mark.parametrize(("members", "limit", "job_id", "check_only", "outcome", "after"), QUOTA_CASES)
def test_the_quota_rule(
    members: dict[str, str | None], limit: int, job_id: str, check_only: bool, outcome: object, after: set[str]
) -> None:
    store = _store(fakeredis.FakeServer())
    sync: redis.Redis = store.sync
    for member, status in members.items():
        sync.sadd("active", member)
        if status is not None:
            sync.hset(Job.key_for(member), "status", status)
    reply = asyncio.run(Scripts(store.aio).submit([], job_id, quota=("active", limit), check_only=check_only))
    if outcome == "written":
        assert reply.written and reply.active is None
    elif outcome == "checked":
        assert not reply.written and reply.active is None and not reply.guard_failed
    else:
        assert not reply.written and reply.active == outcome
    assert {text(member) for member in sync.smembers("active")} == after


@pytest.mark.parametrize(
    ("stored", "expected", "written"),
    [("started", "started", True), ("finished", "started", False), (None, "started", False)],
)
def test_guards_write_only_while_each_guarded_job_keeps_its_status(
    stored: str | None, expected: str, written: bool
) -> None:
    store = _store(fakeredis.FakeServer())
    sync: redis.Redis = store.sync
    if stored is not None:
        sync.hset(Job.key_for("parent"), "status", stored)
    job, stack = _recorded(store)
    listing = ListingEntry(("index:a",), 1000.0, "(500.0")
    outcome = asyncio.run(
        Scripts(store.aio).submit(
            stack,
            job.id,
            claim=("claim", "mine", 60),
            quota=("active", 5),
            listing=listing,
            guards=[("parent", expected)],
        )
    )
    assert outcome.written is written and outcome.guard_failed is not written
    assert bool(sync.exists(Job.key_for(job.id))) is written and bool(sync.exists("claim")) is written
    assert bool(sync.sismember("active", job.id)) is written and bool(sync.zcard("index:a")) is written


def test_check_only_answers_a_taken_claim_and_writes_nothing() -> None:
    store = _store(fakeredis.FakeServer())
    store.sync.set("claim", "the first job")
    outcome = asyncio.run(Scripts(store.aio).submit([], "", claim=("claim", "x", 60), check_only=True))
    assert outcome.existing_claim == b"the first job"
    outcome = asyncio.run(Scripts(store.aio).submit([], "", claim=("other", "x", 60), check_only=True))
    assert not outcome.written and outcome.existing_claim is None and not store.sync.exists("other")
