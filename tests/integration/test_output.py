"""Streamed output against a real web process and real `rq worker` processes: `GET /jobs/{id}/output` and
`output` events on `GET /jobs/{id}/events`, numbered with the progress events."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.test_live_events import stream
from tests.integration.test_security import KEYED, auth
from tests.integration.test_spine import submit, wait_status
from tests.support.procs import ProcessFactory, wait_for
from tests.support.sse import SSE, events, order

MARKER = "\n--- attempt 2 ---\n"


def tokens_job(count: int, delay: float, **options: Any) -> dict[str, Any]:
    return {"type": "demo.tokens", "args": {"count": count, "delay": delay}, **options}


def tokens(first: int, last: int) -> str:
    return "".join(f"tok{i} " for i in range(first, last + 1))


def output_of(api: httpx.Client, job_id: str) -> str:
    response = api.get(f"/jobs/{job_id}/output")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    return response.text


def numbered(received: list[SSE]) -> list[SSE]:
    """Progress and output events: each has its own id, one more than the one before."""
    return [event for event in received if event.event in ("progress", "output")]


def text_of(received: list[SSE]) -> str:
    return "".join(event.data["text"] for event in received if event.event == "output")


def assert_consecutive(received: list[SSE], first: int = 1) -> None:
    ids = [order(event.id) for event in numbered(received)]
    assert ids == list(range(first, first + len(ids))), ids
    seqs = [event.data["seq"] for event in received if event.event == "output"]
    assert seqs == sorted(set(seqs)), seqs


def read_until_end(api: httpx.Client, job_id: str, **headers: str) -> list[SSE]:
    with stream(api, job_id, **headers) as response:
        assert response.status_code == 200, response.read()
        return list(events(response))


def test_output_arrives_in_order_numbered_with_progress_and_matches_get_output(
    api: httpx.Client, procs: ProcessFactory
) -> None:
    job = submit(api, tokens_job(50, 0.01))
    assert output_of(api, job["id"]) == ""
    procs.worker()
    received = read_until_end(api, job["id"], **{"Last-Event-ID": "0"})
    assert received[-1].event == "status" and received[-1].data["status"] == "finished"
    assert received[-1].data["result"] == {"tokens": 50}
    assert text_of(received) == tokens(1, 50)
    assert_consecutive(received)
    assert [e.data["progress"] for e in received if e.event == "progress"][-1] == 100
    assert order(received[-1].id) == len(numbered(received))  # the final status carries the newest id
    assert output_of(api, job["id"]) == tokens(1, 50)


def test_resume_mid_output_and_after_the_end_loses_and_repeats_nothing(
    api: httpx.Client, procs: ProcessFactory
) -> None:
    job = submit(api, tokens_job(40, 0.05))  # 40 reports: all kept (PROGRESS_MAX_MESSAGES), so all replayable
    procs.worker()
    first_part: list[SSE] = []
    with stream(api, job["id"], **{"Last-Event-ID": "0"}) as response:
        for event in events(response):
            first_part.append(event)
            if sum(e.event == "output" for e in first_part) >= 10:
                break  # the client goes away mid-output
    assert first_part[-1].event == "output" and first_part[-1].id is not None
    wait_for(lambda: len(output_of(api, job["id"])) > len(text_of(first_part)) + 50, 20, what="more output")
    second_part = read_until_end(api, job["id"], **{"Last-Event-ID": first_part[-1].id})
    assert second_part[0].event in ("progress", "output"), second_part[0]  # what was missed comes first
    whole = first_part + second_part
    assert text_of(whole) == tokens(1, 40)
    assert_consecutive(whole)
    assert second_part[-1].data["status"] == "finished"

    # after the end, from any id: exactly the events after it, then the final status
    everything = numbered(whole)
    for last_seen in (0, 1, 7, len(everything) // 2, len(everything) - 1, len(everything)):
        again = read_until_end(api, job["id"], **{"Last-Event-ID": str(last_seen)})
        assert [(e.event, e.id, e.data) for e in numbered(again)] == [
            (e.event, e.id, e.data) for e in everything[last_seen:]
        ]
        assert again[-1].event == "status" and order(again[-1].id) == len(everything)


def test_a_thousand_chunks_a_second_are_merged_without_loss(api: httpx.Client, procs: ProcessFactory) -> None:
    job = submit(api, tokens_job(2000, 0))
    with stream(api, job["id"]) as response:
        received = events(response)
        assert next(received).data["status"] == "queued"
        procs.worker()
        rest = list(received)
    outputs = [event for event in rest if event.event == "output"]
    assert text_of(rest) == tokens(1, 2000)
    assert 1 <= len(outputs) < 400, len(outputs)  # merged: far fewer events than the 2,000 writes
    assert [event.data["seq"] for event in outputs] == list(range(1, len(outputs) + 1))
    assert_consecutive(rest)
    assert output_of(api, job["id"]) == tokens(1, 2000)


def test_the_forking_worker_sends_the_last_chunk_before_the_end(api: httpx.Client, procs: ProcessFactory) -> None:
    job = submit(api, tokens_job(300, 0))
    procs.worker(WORKER_CONCURRENCY="1")
    received = read_until_end(api, job["id"], **{"Last-Event-ID": "0"})
    assert received[-1].data["status"] == "finished"
    assert text_of(received) == tokens(1, 300) == output_of(api, job["id"])
    assert_consecutive(received)


def test_only_the_newest_output_max_bytes_are_kept_and_the_output_says_so(procs: ProcessFactory) -> None:
    _, url = procs.web(OUTPUT_MAX_BYTES="2048")
    procs.worker(OUTPUT_MAX_BYTES="2048")
    with httpx.Client(base_url=url, timeout=10) as api:
        job = submit(api, tokens_job(2000, 0))
        wait_status(api, job["id"], {"finished"})
        text = output_of(api, job["id"])
        first_line, _, kept = text.partition("\n")
        whole = tokens(1, 2000)
        dropped = len(whole) - len(kept)
        assert first_line == f"[{dropped} earlier bytes of output dropped: only the newest 2048 bytes are kept]"
        assert len(kept) == 2048 and whole.endswith(kept)
        replay = read_until_end(api, job["id"], **{"Last-Event-ID": "0"})
        assert text_of(replay) == kept  # only what is kept can be replayed, and all of it
        assert [order(e.id) for e in numbered(replay)] == sorted({order(e.id) for e in numbered(replay)})


def test_a_retried_attempt_appends_its_output_after_a_marker(api: httpx.Client, procs: ProcessFactory) -> None:
    job = submit(api, tokens_job(80, 0.02))
    worker = procs.worker(WORKER_SHUTDOWN_GRACE="0")
    wait_for(lambda: len(output_of(api, job["id"])) > 60, 20, what="the first attempt's output")
    with stream(api, job["id"], **{"Last-Event-ID": "0"}) as response:
        live = events(response)
        worker.stop()  # requeued at once, its retries intact
        wait_status(api, job["id"], {"queued"})
        procs.worker()
        received = list(live)
    assert received[-1].data["status"] == "finished" and received[-1].data["result"] == {"tokens": 80}
    text = output_of(api, job["id"])
    first, marker, second = text.partition(MARKER)
    assert marker and second == tokens(1, 80)
    assert first and tokens(1, 80).startswith(first)
    assert text_of(received) == text
    assert_consecutive(received)
    statuses = [e.data["status"] for e in received if e.event == "status"]
    assert "queued" in statuses and statuses[-1] == "finished"


def test_get_output_is_404_for_an_unknown_job_or_another_keys_job(procs: ProcessFactory) -> None:
    _, url = procs.web(**KEYED)
    procs.worker()
    created = httpx.post(f"{url}/jobs", json=tokens_job(3, 0), headers=auth("alice"), timeout=10)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    with httpx.Client(base_url=url, timeout=10, headers=auth("alice")) as alice:
        wait_status(alice, job_id, {"finished"})
        assert output_of(alice, job_id) == tokens(1, 3)
    for who, path in (("bob", f"/jobs/{job_id}/output"), ("alice", "/jobs/no-such-job/output")):
        response = httpx.get(f"{url}{path}", headers=auth(who), timeout=10)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "/problems/not-found"
    assert httpx.get(f"{url}/jobs/{job_id}/output", timeout=10).status_code == 401
