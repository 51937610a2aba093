"""Streamed output in-process (fakeredis with Lua): buffering, the cap, event numbering beside progress."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import fakeredis
import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from starlette.testclient import TestClient

from app.live import State, changes, snapshot_of, status_key
from app.store import JobRecord
from core import keys
from core import output as store
from core.queues import SERIALIZER
from jobs import output, progress
from jobs.output import OutputSession
from tests.unit.conftest import bearer
from workers.job import RegisteredJob


def new_job(connection: fakeredis.FakeRedis, func: str = "jobs.builtin.demo.noop", **kwargs: Any) -> Job:
    return Queue("default", connection=connection, serializer=SERIALIZER).enqueue_call(func, kwargs=kwargs)


def read(fake_server: fakeredis.FakeServer, job_id: str, after: int = 0) -> store.Output:
    async def fetch() -> store.Output:
        return await store.fetch(fakeredis.FakeAsyncRedis(server=fake_server), job_id, after)

    return asyncio.run(fetch())


def report(job: Job, message: str) -> None:
    progress.append_message(job.meta, message)
    job.save_meta()


def test_quick_writes_are_merged_and_the_session_end_sends_the_rest(
    fake_redis: fakeredis.FakeRedis, fake_server: fakeredis.FakeServer
) -> None:
    job = new_job(fake_redis)
    texts = [f"tok{i} " for i in range(1, 1001)]
    with OutputSession(job) as session:
        for text in texts:
            session.write(text)
    found = read(fake_server, job.id)
    assert found.text() == "".join(texts)
    assert 1 <= found.total <= 10, found.total  # 1,000 writes in a few milliseconds: a few chunks
    assert [chunk.seq for chunk in found.chunks] == list(range(1, found.total + 1))


def test_a_write_after_a_quiet_interval_goes_out_at_once(
    fake_redis: fakeredis.FakeRedis, fake_server: fakeredis.FakeServer
) -> None:
    job = new_job(fake_redis)
    with OutputSession(job) as session:
        session.write("first ")
        assert read(fake_server, job.id).text() == "first "
        session.write("second ")  # within the interval: buffered, then sent by the session's thread
        deadline = time.monotonic() + 5
        while read(fake_server, job.id).text() != "first second " and time.monotonic() < deadline:
            time.sleep(0.005)
        assert read(fake_server, job.id).text() == "first second "


def test_the_newest_bytes_are_kept_and_the_output_says_what_was_dropped(
    fake_redis: fakeredis.FakeRedis, fake_server: fakeredis.FakeServer
) -> None:
    job = new_job(fake_redis)
    with OutputSession(job) as session:
        session.cap = 1024
        for i in range(100):
            session.write(f"{i:03d}:" + "é" * 10 + "\n")  # 25 bytes a line, 2-byte characters
            session.flush(60_000)
    found = read(fake_server, job.id)
    written = "".join(f"{i:03d}:" + "é" * 10 + "\n" for i in range(100))
    kept = found.text()
    assert len(kept.encode()) <= 1024 and len(kept.encode()) >= 1023  # cut at a character boundary
    assert written.endswith(kept)
    assert found.dropped == len(written.encode()) - len(kept.encode())
    assert store.rendered(found, 1024) == (
        f"[{found.dropped} earlier bytes of output dropped: only the newest 1024 bytes are kept]\n" + kept
    )
    assert store.rendered(store.Output(1, 1, 0, 0, found.chunks[-1:]), 1024) == found.chunks[-1].text


def test_one_write_over_the_cap_keeps_its_end_and_counts_the_rest_as_dropped(
    fake_redis: fakeredis.FakeRedis, fake_server: fakeredis.FakeServer
) -> None:
    job = new_job(fake_redis)
    with OutputSession(job) as session:
        session.cap = 1024
        session.write("x" * 1500 + "END")
    found = read(fake_server, job.id)
    assert found.text().endswith("END") and len(found.text()) == 1024 - len("\n--- attempt 1 ---\n")
    assert found.dropped == 1503 - len(found.text())


def test_a_retried_attempt_appends_after_a_marker_line(
    fake_redis: fakeredis.FakeRedis, fake_server: fakeredis.FakeServer
) -> None:
    job = new_job(fake_redis)
    job.meta["attempt"] = 1
    with OutputSession(job) as session:
        session.write("first try")
    job.meta["attempt"] = 2
    with OutputSession(job) as session:
        session.write("second try")
    assert read(fake_server, job.id).text() == "first try\n--- attempt 2 ---\nsecond try"


def test_output_keys_get_the_jobs_ttl_at_its_end(
    fake_redis: fakeredis.FakeRedis, fake_server: fakeredis.FakeServer
) -> None:
    job = new_job(fake_redis)
    job.result_ttl, job.failure_ttl = 100, 900
    with OutputSession(job) as session:
        session.write("text")
        assert fake_redis.pttl(keys.output(job.id)) > 900_000  # while it runs: its timeout and the longest TTL
    assert 99_000 < fake_redis.pttl(keys.output(job.id)) <= 100_000
    assert 99_000 < fake_redis.pttl(keys.output_info(job.id)) <= 100_000
    with pytest.raises(RuntimeError), OutputSession(job) as session:
        session.write("failing")
        raise RuntimeError("boom")
    assert 899_000 < fake_redis.pttl(keys.output(job.id)) <= 900_000


def test_a_job_without_output_leaves_no_output_keys(fake_redis: fakeredis.FakeRedis) -> None:
    job = new_job(fake_redis)
    with OutputSession(job):
        pass
    assert not list(fake_redis.scan_iter(f"{keys.PREFIX}:output*"))


def test_write_output_outside_a_worker_is_a_no_op() -> None:
    output.write_output("nobody listens")


def test_event_ids_count_progress_and_output_and_resume_anywhere_without_loss_or_repeat(
    fake_redis: fakeredis.FakeRedis, fake_server: fakeredis.FakeServer
) -> None:
    job = new_job(fake_redis)
    rng = random.Random(7)
    expected: list[tuple[str, Any]] = []  # (kind, message or output seq), in the order written
    with OutputSession(job) as session:
        for step in range(60):
            if rng.random() < 0.3:
                report(job, f"report {step}")
                expected.append(("progress", f"report {step}"))
            else:
                session.write(f"out {step} ")
                session.flush(60_000)
                expected.append(("output", f"out {step} "))
    record = JobRecord(job, None, None)
    whole = read(fake_server, job.id)
    total = len(expected)
    assert snapshot_of(record, whole, None).seq == total
    for last_seen in range(total + 1):
        replay = snapshot_of(record, whole, last_seen).replay
        assert [event.id for event in replay] == list(range(last_seen + 1, total + 1))
        got = [(e.kind, e.data["message"] if e.kind == "progress" else e.data["text"]) for e in replay]
        assert got == expected[last_seen:]
    outputs = [e for e in snapshot_of(record, whole, 0).replay if e.kind == "output"]
    assert [e.data["seq"] for e in outputs] == list(range(1, len(outputs) + 1))


def test_a_listener_gets_new_output_in_order_and_holds_back_output_whose_report_it_has_not_read(
    fake_redis: fakeredis.FakeRedis, fake_server: fakeredis.FakeServer
) -> None:
    job = new_job(fake_redis)
    record = JobRecord(job, None, None)
    state = State(0, status_key(job))
    with OutputSession(job) as session:
        session.write("a")
        session.flush(60_000)
        report(job, "r1")
        stale = JobRecord(Job.fetch(job.id, connection=fake_redis, serializer=SERIALIZER), None, None)
        stale.job.meta["seq"] = 0  # as read just before "r1" landed
        stale.job.meta["messages"] = []
        session.write("b")
        session.flush(60_000)
    output_now = read(fake_server, job.id)
    found = changes(stale, state, output_now)
    assert found is not None
    batch, state = found
    assert [(e.kind, e.id) for e in batch.events] == [("output", 1)]  # "b" follows r1, not read yet
    found = changes(record, state, read(fake_server, job.id, state.output))
    assert found is not None
    assert [(e.kind, e.id) for e in found[0].events] == [("progress", 2), ("output", 3)]
    assert found[1].seq == 3


def run_jobs(connection: fakeredis.FakeRedis) -> None:
    SimpleWorker(
        [Queue("default", connection=connection, serializer=SERIALIZER)],
        connection=connection,
        serializer=SERIALIZER,
        job_class=RegisteredJob,
    ).work(burst=True)


def test_demo_tokens_streams_its_tokens_and_reports_progress(
    fake_redis: fakeredis.FakeRedis, fake_server: fakeredis.FakeServer
) -> None:
    job = new_job(fake_redis, "jobs.builtin.demo.tokens", count=300, delay=0)
    run_jobs(fake_redis)
    job.refresh()
    assert job.return_value() == {"tokens": 300}
    assert read(fake_server, job.id).text() == "".join(f"tok{i} " for i in range(1, 301))
    assert job.meta["progress"] == 100 and job.meta["seq"] == 100  # one report per whole percent


def test_summarize_streams_its_summary(fake_redis: fakeredis.FakeRedis, fake_server: fakeredis.FakeServer) -> None:
    turns = [
        {"role": "user", "content": "I am learning Rust for embedded robotics. My robot arm uses servo motors."},
        {"role": "assistant", "content": "Rust suits embedded robotics well. Servo motors need PWM timers."},
        {"role": "user", "content": "My deadline for the robot arm demo is in March."},
    ]
    job = new_job(fake_redis, "jobs.builtin.summarize.summarize", turns=turns, max_sentences=3)
    run_jobs(fake_redis)
    job.refresh()
    result = job.return_value()
    assert isinstance(result, dict)
    summary = result["summary"]
    assert summary and read(fake_server, job.id).text() == summary


def test_get_output_answers_text_and_404_like_other_job_routes(
    keyed: TestClient, fake_redis: fakeredis.FakeRedis
) -> None:
    submitted = keyed.post(
        "/jobs", json={"type": "demo.tokens", "args": {"count": 5, "delay": 0}}, headers=bearer("alice")
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    empty = keyed.get(f"/jobs/{job_id}/output", headers=bearer("alice"))
    assert empty.status_code == 200 and empty.text == ""
    assert empty.headers["content-type"] == "text/plain; charset=utf-8"
    run_jobs(fake_redis)
    done = keyed.get(f"/jobs/{job_id}/output", headers=bearer("alice"))
    assert done.text == "tok1 tok2 tok3 tok4 tok5 "
    assert keyed.get(f"/jobs/{job_id}/output", headers=bearer("ops")).text == done.text  # admin sees all
    for response in (
        keyed.get(f"/jobs/{job_id}/output", headers=bearer("bob")),
        keyed.get("/jobs/no-such-job/output", headers=bearer("alice")),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
