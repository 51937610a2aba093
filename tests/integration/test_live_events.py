"""GET /jobs/{id}/events against a real web process and real `rq worker` processes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.conftest import REPORT, RecordProperty
from tests.factories import steps_job
from tests.integration.test_spine import submit, view, wait_status
from tests.support.procs import ProcessFactory, wait_for
from tests.support.sse import SSE, aevents, events, items, order

STEPS = [f"step {i}/5" for i in range(1, 6)]


def stream(api: httpx.Client, job_id: str, **headers: str) -> Any:
    return api.stream("GET", f"/jobs/{job_id}/events", headers=headers, timeout=httpx.Timeout(10, read=30))


def messages(received: list[SSE]) -> list[str]:
    return [event.data["message"] for event in received if event.event == "progress"]


def assert_ids_increase(received: list[SSE]) -> None:
    """Progress ids strictly increase; a status event may repeat the id of the event it follows (never go back)."""
    ids = [order(event.id) for event in received if event.id is not None]
    assert ids == sorted(ids), ids
    progress = [order(event.id) for event in received if event.event == "progress"]
    assert len(progress) == len(set(progress)), progress


def test_five_steps_give_current_state_five_progress_events_then_the_final_status(
    api: httpx.Client, procs: ProcessFactory
) -> None:
    job = submit(api, steps_job(steps=5, delay=0.3))
    with stream(api, job["id"]) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        received = events(response)
        first = next(received)
        assert first.event == "status" and first.data["status"] == "queued" and first.data["id"] == job["id"]
        procs.worker()
        rest = list(received)  # ends only when the server closes the stream
    assert [e.event for e in rest] == ["status", *["progress"] * 5, "status"], rest
    assert rest[0].data["status"] == "started"
    assert messages(rest) == STEPS
    assert [e.data["progress"] for e in rest if e.event == "progress"] == [20, 40, 60, 80, 100]
    assert all(e.data["time"].endswith("Z") for e in rest if e.event == "progress")
    final = rest[-1].data
    assert final["status"] == "finished" and final["result"] == {"steps": 5, "attempt": 1}
    assert final == view(api, job["id"])
    assert_ids_increase(rest)


def test_a_late_subscriber_gets_the_current_state_first(api: httpx.Client, procs: ProcessFactory) -> None:
    procs.worker()
    job = submit(api, steps_job(steps=5, delay=0.5))
    wait_for(lambda: view(api, job["id"])["progress"] >= 40, 15, what="two steps done")
    with stream(api, job["id"]) as response:
        received = list(events(response))
    first = received[0]
    assert first.event == "status" and first.data["status"] == "started" and first.data["progress"] >= 40
    seen = [m["message"] for m in first.data["messages"]]
    assert seen == STEPS[: len(seen)]
    # what the snapshot showed is not sent again; every later step arrives once, in order
    assert seen + messages(received) == STEPS
    assert received[-1].event == "status" and received[-1].data["status"] == "finished"


def test_last_event_id_resumes_during_the_run(api: httpx.Client, procs: ProcessFactory) -> None:
    procs.worker()
    job = submit(api, steps_job(steps=5, delay=0.6))
    first_part: list[SSE] = []
    with stream(api, job["id"]) as response:
        for event in events(response):
            first_part.append(event)
            if len(messages(first_part)) == 2:
                break
    last_id = first_part[-1].id
    assert last_id is not None
    wait_for(lambda: view(api, job["id"])["progress"] >= 80, 15, what="steps 3 and 4 done while away")
    assert view(api, job["id"])["status"] == "started"
    with stream(api, job["id"], **{"Last-Event-ID": last_id}) as response:
        second_part = list(events(response))
    # the missed steps come first, then the current state, then the rest live
    assert [e.event for e in second_part[:2]] == ["progress", "progress"]
    assert second_part[2].event == "status" and second_part[2].data["status"] == "started"
    assert messages(first_part) + messages(second_part) == STEPS
    assert second_part[-1].data["status"] == "finished"
    assert_ids_increase(first_part + second_part)


def test_last_event_id_after_the_end_replays_the_rest_then_closes(api: httpx.Client, procs: ProcessFactory) -> None:
    procs.worker()
    job = submit(api, steps_job(steps=5, delay=0.2))
    first_part: list[SSE] = []
    with stream(api, job["id"]) as response:
        for event in events(response):
            first_part.append(event)
            if event.event == "progress":
                break
    wait_status(api, job["id"], {"finished"})
    with stream(api, job["id"], **{"Last-Event-ID": first_part[-1].id or ""}) as response:
        second_part = list(events(response))
    assert [e.event for e in second_part] == ["progress"] * 4 + ["status"]
    assert messages(first_part) + messages(second_part) == STEPS
    assert second_part[-1].data == view(api, job["id"])
    assert_ids_increase(first_part + second_part)


def test_replay_after_the_end_comes_from_the_job_hash_capped_like_the_messages(
    api: httpx.Client, procs: ProcessFactory, rclient: redis.Redis
) -> None:
    procs.worker(PROGRESS_MAX_MESSAGES="5")
    job = submit(api, steps_job(steps=12, delay=0))
    done = wait_status(api, job["id"], {"finished"})
    assert [m["message"] for m in done["messages"]] == [f"step {i}/12" for i in range(8, 13)]
    with stream(api, job["id"], **{"Last-Event-ID": "2"}) as response:
        received = list(events(response))
    # events 3..7 fell off the cap with their messages: the kept ones, then the final status
    assert [(e.event, e.id) for e in received] == [*(("progress", str(i)) for i in range(8, 13)), ("status", "12")]
    assert messages(received) == [f"step {i}/12" for i in range(8, 13)]
    assert received[-1].data == view(api, job["id"])
    # the events live in the job hash: no key of this job beside RQ's own
    assert sorted(key.decode() for key in rclient.scan_iter(f"*{job['id']}*")) == [
        f"rq:job:{job['id']}",
        f"rq:results:{job['id']}",
    ]


def test_the_stream_of_an_ended_job_closes_at_once(api: httpx.Client, procs: ProcessFactory) -> None:
    procs.worker()
    job = submit(api, steps_job(steps=1))
    wait_status(api, job["id"], {"finished"})
    started = time.monotonic()
    with stream(api, job["id"]) as response:
        received = list(events(response))
    assert time.monotonic() - started < 5  # not held open until a keep-alive or timeout
    assert [(e.event, e.data["status"]) for e in received] == [("status", "finished")]
    assert received[0].id is not None


def test_unknown_job_and_bad_last_event_id_are_problems(api: httpx.Client) -> None:
    missing = api.get("/jobs/no-such-job/events")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    job = submit(api, steps_job())
    bad = api.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["headers", "Last-Event-ID"]


def test_a_quiet_stream_gets_keep_alive_comments(procs: ProcessFactory) -> None:
    _, url = procs.web(SSE_KEEPALIVE="0.5")
    with httpx.Client(base_url=url, timeout=10) as client:
        job = submit(client, steps_job())  # no worker: the stream stays quiet
        comments = 0
        started = time.monotonic()
        with stream(client, job["id"]) as response:
            for item in items(response):
                if isinstance(item, str):
                    comments += 1
                if comments == 3:
                    break
        assert time.monotonic() - started < 10


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


STREAMS = 500


def test_one_web_process_holds_500_streams_without_a_thread_each(
    procs: ProcessFactory, record_property: RecordProperty
) -> None:
    web, url = procs.web()

    async def scenario() -> dict[str, float]:
        limits = httpx.Limits(max_connections=STREAMS + 10, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=httpx.Timeout(30)) as client:
            response = await client.post("/jobs", json=steps_job(steps=2, delay=0.2))
            job_id = response.json()["id"]
            opened = asyncio.Semaphore(0)

            async def listen() -> list[SSE]:
                received: list[SSE] = []
                try:
                    async with client.stream("GET", f"/jobs/{job_id}/events") as stream_response:
                        assert stream_response.status_code == 200
                        async for event in aevents(stream_response):
                            received.append(event)
                            if len(received) == 1:
                                opened.release()
                finally:
                    if not received:
                        opened.release()  # let the test fail on this task's error instead of waiting
                return received

            first = asyncio.create_task(listen())
            await opened.acquire()
            baseline = _threads(web.pid)
            started = time.monotonic()
            tasks = [first, *(asyncio.create_task(listen()) for _ in range(STREAMS - 1))]
            for _ in range(STREAMS - 1):
                await opened.acquire()
            open_seconds = time.monotonic() - started
            with_all_open = _threads(web.pid)
            failed = [task.exception() for task in tasks if task.done() and task.exception()]
            assert not failed, failed[:3]
            await asyncio.to_thread(procs.worker)
            started = time.monotonic()
            results = await asyncio.wait_for(asyncio.gather(*tasks), 60)
            done_seconds = time.monotonic() - started
        for received in results:
            assert [e.event for e in received] == ["status", "status", "progress", "progress", "status"], received
            assert received[-1].data["status"] == "finished"
        return {
            "baseline_threads": baseline,
            "threads_with_500_open": with_all_open,
            "open_seconds": open_seconds,
            "run_and_close_seconds": done_seconds,
        }

    numbers = asyncio.run(scenario())
    record_property(REPORT, f"{STREAMS} SSE streams on one web process: {numbers}")
    # no thread per stream: the count stays where one stream left it (a few for anyio's pool at most)
    assert numbers["threads_with_500_open"] - numbers["baseline_threads"] <= 4, numbers


def test_a_deferred_job_gets_a_queued_status_event_when_its_parent_finishes(
    api: httpx.Client, procs: ProcessFactory
) -> None:
    parent = submit(api, steps_job(steps=1, delay=0.2, queue="high"))
    child = submit(api, steps_job(steps=1, queue="low", depends_on=[parent["id"]]))
    assert child["status"] == "deferred"
    with stream(api, child["id"]) as response:
        received = events(response)
        first = next(received)
        assert first.event == "status" and first.data["status"] == "deferred"
        procs.worker("high")  # runs the parent only: the child waits on `low`, queued
        second = next(received)
    assert second.event == "status" and second.data["status"] == "queued", second
    assert view(api, child["id"])["status"] == "queued"
