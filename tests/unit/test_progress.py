"""The progress API: meta layout, caps, one round trip, and no clobbering by RQ's own writes."""

from __future__ import annotations

import json
from typing import Any

import fakeredis
import pytest
import redis
from rq import Queue, Retry, SimpleWorker
from rq.job import Job

from core import keys
from core.queues import SERIALIZER
from core.rqadapter import jobdata
from core.settings import get_settings
from jobs import progress
from jobs.builtin.demo import DemoFailure, steps
from tests.support.replies import text
from workers.job import RegisteredJob


def run_all(connection: fakeredis.FakeRedis) -> None:
    queue = Queue("default", connection=connection, serializer=SERIALIZER, job_class=RegisteredJob)
    worker = SimpleWorker([queue], connection=connection, serializer=SERIALIZER, job_class=RegisteredJob)
    worker.work(burst=True)


def enqueue(connection: fakeredis.FakeRedis, func: str, **kwargs: Any) -> Job:
    queue = Queue("default", connection=connection, serializer=SERIALIZER, job_class=RegisteredJob)
    retry = kwargs.pop("retry", None)
    return queue.enqueue_call(func, kwargs=kwargs, retry=retry, meta={"type": "demo.steps"})


def test_report_outside_a_worker_is_a_noop() -> None:
    progress.report(50, "nobody listens")
    assert progress.attempt() == 1
    assert steps(steps=2, delay=0) == {"steps": 2, "attempt": 1}


def test_demo_steps_fails_where_asked() -> None:
    with pytest.raises(DemoFailure, match="step 2"):
        steps(steps=3, delay=0, fail_at=2)
    with pytest.raises(DemoFailure, match="attempt 1"):
        steps(steps=3, delay=0, fail_at=1, fail_attempts=1)


def test_append_message_caps_count_and_length() -> None:
    meta: dict[str, Any] = {}
    settings = get_settings()
    for i in range(settings.progress_max_messages + 7):
        progress.append_message(meta, f"m{i}", i % 101)
    assert len(meta["messages"]) == settings.progress_max_messages
    assert meta["messages"][-1]["message"] == f"m{settings.progress_max_messages + 6}"
    progress.append_message(meta, "x" * 10_000, 250)
    assert len(meta["messages"][-1]["message"]) == settings.progress_max_message_chars
    assert meta["progress"] == 100


def test_message_reported_just_before_return_is_kept(fake_redis: fakeredis.FakeRedis) -> None:
    job = enqueue(fake_redis, "jobs.builtin.demo.steps", steps=3, delay=0)
    run_all(fake_redis)
    job = Job.fetch(job.id, connection=fake_redis, serializer=SERIALIZER)
    assert job.get_status() == "finished"
    assert [m["message"] for m in job.meta["messages"]] == ["step 1/3", "step 2/3", "step 3/3"]
    assert job.meta["progress"] == 100 and job.meta["attempt"] == 1 and job.meta["type"] == "demo.steps"
    assert job.return_value() == {"steps": 3, "attempt": 1}


def test_messages_survive_failure_and_retries(fake_redis: fakeredis.FakeRedis) -> None:
    job = enqueue(fake_redis, "jobs.builtin.demo.steps", steps=3, delay=0, fail_at=3, retry=Retry(max=2))
    run_all(fake_redis)
    job = Job.fetch(job.id, connection=fake_redis, serializer=SERIALIZER)
    assert job.get_status() == "failed"
    assert [m["message"] for m in job.meta["messages"]] == ["step 1/3", "step 2/3"] * 3
    assert job.meta["attempt"] == 3


def test_one_report_is_one_round_trip(monkeypatch: pytest.MonkeyPatch, fake_redis: fakeredis.FakeRedis) -> None:
    """One write carrying meta (which holds the progress event) and the announcement."""
    connection_class = fake_redis.connection_pool.connection_class
    writes: list[int] = []
    packed: list[list[str]] = []
    send, pack = connection_class.send_packed_command, connection_class.pack_commands

    def counted_send(self: Any, command: Any, check_health: bool = True) -> None:
        writes.append(1)
        send(self, command, check_health)

    def recorded_pack(self: Any, commands: Any) -> Any:
        packed.append([str(args[0]) for args in commands])
        return pack(self, commands)

    monkeypatch.setattr(connection_class, "send_packed_command", counted_send)
    monkeypatch.setattr(connection_class, "pack_commands", recorded_pack)
    job = Job.create("jobs.builtin.demo.noop", connection=fake_redis, serializer=SERIALIZER)
    monkeypatch.setattr(progress, "get_current_job", lambda: job)
    subscriber = fake_redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]  # unannotated in redis-py
    subscriber.subscribe("jobsvc:channel:events")

    fake_redis.ping()  # the pooled connection's handshake is behind us
    writes.clear()
    progress.report(40, "Found 12 resources")

    assert (len(writes), packed[-1]) == (1, ["EVAL", "PUBLISH"])
    assert job.meta["progress"] == 40 and job.meta["messages"][0]["message"] == "Found 12 resources"
    assert job.meta["seq"] == 1
    assert SERIALIZER.loads(fake_redis.hget(job.key, "meta")) == job.meta
    published = [subscriber.get_message(timeout=0.2) for _ in range(3)]  # the first may be the subscription
    assert [message["data"] for message in published if message] == [job.id.encode()]


def test_a_refused_report_raises_and_the_next_one_is_written(
    monkeypatch: pytest.MonkeyPatch, fake_redis: fakeredis.FakeRedis
) -> None:
    job = Job.create("jobs.builtin.demo.noop", connection=fake_redis, serializer=SERIALIZER)
    monkeypatch.setattr(progress, "get_current_job", lambda: job)
    fake_redis.set(job.key, "not a hash")

    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        progress.report(10, "refused")

    assert fake_redis.echo("next") == b"next"
    fake_redis.delete(job.key)
    progress.report(20, "accepted")
    assert SERIALIZER.loads(fake_redis.hget(job.key, "meta"))["progress"] == 20


def test_a_superseded_run_s_reports_leave_the_newer_attempt_s_progress_alone(
    monkeypatch: pytest.MonkeyPatch, fake_redis: fakeredis.FakeRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """A run whose job was started again elsewhere (a newer attempt recorded) writes nothing, and says so once."""
    job = Job.create("jobs.builtin.demo.noop", connection=fake_redis, serializer=SERIALIZER, meta={"attempt": 1})
    job.save()
    monkeypatch.setattr(progress, "get_current_job", lambda: job)
    progress.report(10, "attempt 1 under way")
    newer = {"attempt": 2, "progress": 60, "messages": [{"time": "t", "message": "attempt 2", "progress": 60}]}
    fake_redis.hset(job.key, mapping={"meta": json.dumps(newer), keys.ATTEMPT_FIELD: 2})  # as the newer start writes

    with caplog.at_level("WARNING", logger="jobs.progress"):
        progress.report(20, "stale")
        progress.report(30, "still stale")

    assert json.loads(text(fake_redis.hget(job.key, "meta"))) == newer
    warnings = [record.getMessage() for record in caplog.records if "superseded" in record.getMessage()]
    assert warnings == [f"job {job.id}: attempt 1 was superseded by a newer one; its progress is dropped"]
    job.meta["attempt"] = 2  # the newer run itself writes as before
    progress.report(70, "attempt 2 again")
    assert json.loads(text(fake_redis.hget(job.key, "meta")))["progress"] == 70


# -- the entries are the job's progress events, numbered ----------------------------------------


def test_entries_are_numbered_events_and_the_numbers_survive_the_cap() -> None:
    meta: dict[str, Any] = {}
    cap = get_settings().progress_max_messages
    assert progress.newest_seq(meta) == 0 and progress.progress_events(meta) == []
    for i in range(1, cap + 11):
        progress.append_message(meta, f"m{i}", 1)
    assert meta["seq"] == cap + 10 and len(meta["messages"]) == cap
    kept = progress.progress_events(meta)
    assert [e.id for e in kept] == list(range(11, cap + 11))  # the oldest 10 fell off the cap
    assert [e.data["message"] for e in kept] == [f"m{i}" for i in range(11, cap + 11)]
    assert set(kept[0].data) == {"progress", "message", "time"}
    assert [e.id for e in progress.progress_events(meta, after=cap + 7)] == [cap + 8, cap + 9, cap + 10]
    assert progress.progress_events(meta, after=cap + 10) == []
    assert progress.progress_events(meta, after=3) == kept  # from further back than the cap: all that is kept
    assert progress.progress_events(meta, after=10**9) == []


def test_a_bare_percentage_is_an_event_but_not_a_listed_message(
    monkeypatch: pytest.MonkeyPatch, fake_redis: fakeredis.FakeRedis
) -> None:
    job = Job.create("jobs.builtin.demo.noop", connection=fake_redis, serializer=SERIALIZER)
    job.save()
    monkeypatch.setattr(progress, "get_current_job", lambda: job)
    progress.report(10, "first")
    progress.report(55.5)
    progress.report(None, "third")
    progress.report()  # nothing to record
    assert [(e.id, e.data["message"], e.data["progress"]) for e in progress.progress_events(job.meta)] == [
        (1, "first", 10),
        (2, None, 55.5),
        (3, "third", 55.5),
    ]
    assert [m["message"] for m in progress.shown_messages(job.meta)] == ["first", "third"]
    stored = Job.fetch(job.id, connection=fake_redis, serializer=SERIALIZER).meta
    assert stored["seq"] == 3 and stored["progress"] == 55.5


def test_meta_from_before_numbering_counts_its_messages() -> None:
    meta: dict[str, Any] = {"messages": [{"time": "t", "message": "old", "progress": 5}] * 3}
    assert progress.newest_seq(meta) == 3
    progress.append_message(meta, "new")
    assert meta["seq"] == 4 and [e.id for e in progress.progress_events(meta, after=2)] == [3, 4]
    assert progress.progress_events({"messages": "garbage", "seq": "x"}) == []


def test_bounded_whatever_a_job_reports(monkeypatch: pytest.MonkeyPatch, fake_redis: fakeredis.FakeRedis) -> None:
    """Events live in the job hash only; many long reports keep it the same size."""
    settings = get_settings()
    job = Job.create("jobs.builtin.demo.noop", connection=fake_redis, serializer=SERIALIZER)
    job.save()
    monkeypatch.setattr(progress, "get_current_job", lambda: job)
    sizes = []
    for _ in range(2):
        for i in range(3 * settings.progress_max_messages):
            progress.report(i % 100, "x" * 10 * settings.progress_max_message_chars)
        sizes.append(len(fake_redis.hget(job.key, "meta") or b""))
    assert sizes[0] == sizes[1] and len(job.meta["messages"]) == settings.progress_max_messages
    assert sorted(text(key) for key in fake_redis.keys()) == [job.key]


def test_serialize_meta_is_what_rqs_serializer_writes_and_encodes_each_message_once(
    monkeypatch: pytest.MonkeyPatch, fake_redis: fakeredis.FakeRedis
) -> None:
    job = RegisteredJob.fetch(
        enqueue(fake_redis, "jobs.builtin.demo.steps").id, connection=fake_redis, serializer=SERIALIZER
    )
    job.meta["owner"] = "alice"
    limit = get_settings().progress_max_messages
    encoded: list[Any] = []
    dumps = json.dumps

    def recorded_dumps(value: Any, *args: Any, **kwargs: Any) -> str:
        encoded.append(value)
        return dumps(value, *args, **kwargs)

    monkeypatch.setattr(json, "dumps", recorded_dumps)  # the module the adapter encodes meta with

    for i in range(limit + 20):  # past the cap: the oldest entries leave, their encodings with them
        progress.append_message(job.meta, f'step {i}: «ünïcode» "quoted"' if i % 3 else None, i % 101)
        encoded.clear()
        written = jobdata.serialize_meta(job)
        assert SERIALIZER.loads(written) == job.meta
        assert [value for value in encoded if value is not job.meta] == [
            job.meta["messages"][-1],  # only the new entry is encoded, then the rest of meta
            {key: value for key, value in job.meta.items() if key != "messages"},
        ]
    assert len(job.__dict__["_encoded_messages"]) == limit


def test_serialize_meta_of_a_meta_without_messages_is_rqs_own() -> None:
    job = RegisteredJob(connection=fakeredis.FakeRedis(), serializer=SERIALIZER)
    job.meta = {"type": "demo.steps", "progress": 0, "messages": []}
    assert jobdata.serialize_meta(job) == job._serialize_meta()
