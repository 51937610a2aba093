"""Chaos soak over schedules, batches and streamed output: for 40 s a worker is SIGKILLed every 2 s (and
restarted at once) while schedules fire every second, batches with an `on_complete` job and a callback
come and end, and jobs stream numbered chunks. The three run together, so one soak per worker mode
covers them all (the suite's time budget); each is checked on its own afterwards:

- schedules: every due time up to the schedule's `next_run_at` gave one run or was counted in `skipped`,
  none gave two; an `overlap: true` schedule skipped only due times found more than 2 s late (missed, as
  docs/schedules.md states), each gap ending in the catch-up run of its newest missed time;
- batches: each ended once (one end published, one counted), with one `on_complete` job, and its callback
  delivered at least once (API.md section 7), the same signed bytes every time, one POST per delivery
  attempt (`X-Callback-Attempt`): a second POST only after a delivery attempt was lost;
- streamed output: for every job, `GET /jobs/{id}/output` split at its `--- attempt N ---` lines has each
  attempt's chunks once and in order; a killed attempt keeps a prefix of them (only its unsent tail is
  lost), the successful attempt all of them; the `output` events (replayed from the start, and followed
  live for some jobs) number the chunks 1..n with the same text.

Just over 300 lines: three workloads and their checks, kept beside the one test that runs them together.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import redis

from core import keys, signature
from tests.conftest import REPORT, RecordProperty
from tests.factories import steps_job
from tests.integration.test_batches import wait_ended
from tests.integration.test_callbacks import SECRET, WORKER_ENV, Delivery, Receiver, receiver  # noqa: F401
from tests.integration.test_schedules import runs
from tests.integration.test_spine import view
from tests.reliability.conftest import RELIABILITY_ENV
from tests.reliability.support import BatchEnds, Chaos, lost_attempts, wait_claims_settled
from tests.support.procs import ProcessFactory, wait_for, web_process
from tests.support.replies import text
from tests.support.sse import SSE, events

WORKERS = 2
KILL_EVERY = 2  # seconds
CHAOS_FOR = 40.0
#: Seconds the work left after the chaos may take to end (a forking worker drains slowly).
SETTLE = 180.0
ENDED = ("finished", "failed")
#: A due time found later than this was missed (`core.schedules.timing.ON_TIME`, docs/schedules.md).
ON_TIME = 2.0


@pytest.fixture(scope="module")
def chaos_web(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A web process that accepts loopback callback URLs."""
    env = dict(RELIABILITY_ENV, **WORKER_ENV)
    with web_process(redis_server_url, tmp_path_factory.mktemp("web-chaos"), env) as url:
        yield url


@pytest.fixture
def api(chaos_web: str, redis_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=chaos_web, timeout=30) as client:
        yield client


def seconds(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


def wait_jobs_ended(api: httpx.Client, ids: list[str], what: str) -> dict[str, dict[str, Any]]:
    views: dict[str, dict[str, Any]] = {}

    def all_ended() -> bool:
        for job_id in ids:
            if job_id not in views:
                found = view(api, job_id)
                if found["status"] not in ENDED:
                    return False
                views[job_id] = found
        return True

    wait_for(all_ended, SETTLE, interval=0.5, what=f"every {what} to end")
    for job_id, ended in views.items():
        assert ended["status"] == "finished" or ended["error"], f"{what} {job_id} failed without a reason"
    return views


# -- schedules ---------------------------------------------------------------------------------------------

SCHEDULES = (
    {"type": "demo.noop", "every": 1, "overlap": True, "retries": 2},
    {"type": "demo.steps", "args": {"steps": 3, "delay": 0.2}, "every": 2, "overlap": False, "retries": 2},
    {"type": "demo.noop", "cron": "* * * * *", "overlap": True, "retries": 2},
)


def grid(schedule: dict[str, Any]) -> tuple[float, float]:
    """(origin, period): the schedule's due times are origin + n * period for n = 1, 2 ... (its cron here is
    `* * * * *`: every minute boundary)."""
    created = seconds(schedule["created_at"])
    return (created, schedule["every"]) if schedule["every"] else (math.floor(created / 60) * 60, 60)


def due_number(schedule: dict[str, Any], due: float) -> int:
    """Which of the schedule's due times `due` is: 1 for the first after its creation."""
    origin, period = grid(schedule)
    number = round((due - origin) / period)
    assert abs(due - (origin + number * period)) < 0.003, f"{due} is not a due time of {schedule}"
    return number


def check_schedule(api: httpx.Client, schedule_id: str) -> str:
    state = api.get(f"/schedules/{schedule_id}").json()  # one read: runs, skipped, next_run_at move together
    due_times = due_number(state, seconds(state["next_run_at"])) - 1  # the due times passed so far
    fired = {}
    for run in runs(api, schedule_id):
        number = due_number(state, seconds(run["scheduled_for"]))
        if number <= due_times:  # not a run fired after the read
            assert number not in fired, f"schedule {schedule_id}: due time {run['scheduled_for']} fired twice"
            fired[number] = run
    assert len(fired) == state["runs"], (schedule_id, sorted(fired), state)
    assert state["runs"] + state["skipped"] == due_times, f"schedule {schedule_id} lost due times: {state}"
    if state["overlap"]:
        for number in set(range(1, due_times + 1)) - set(fired):  # skipped: only if found late, as a catch-up
            catch_up = fired[min(n for n in fired if n > number)]
            origin, period = grid(state)
            late = seconds(catch_up["created_at"]) - (origin + number * period)
            assert late > ON_TIME - 0.002, f"schedule {schedule_id}: due time {number} skipped only {late:.3f} s late"
    wait_jobs_ended(api, [run["id"] for run in fired.values()], f"run of schedule {schedule_id}")
    assert api.delete(f"/schedules/{schedule_id}").status_code == 204
    timing = f"every {state['every']} s" if state["every"] else f"cron {state['cron']!r}"
    return f"{timing}: {state['runs']} runs + {state['skipped']} skipped = {due_times} due times"


# -- batches -----------------------------------------------------------------------------------------------

BATCH_SIZE = 24


def batch_body(number: int, callback_url: str) -> dict[str, Any]:
    """Members that finish (retried if their worker dies); every other batch also has one that fails."""
    jobs = [steps_job(2, delay=0.05, retries=3) for _ in range(BATCH_SIZE)]
    if number % 2:
        jobs[0] = steps_job(1, args={"fail_at": 1})
    on_complete = {"type": "demo.batch_report"}
    return {"jobs": jobs, "on_complete": on_complete, "callback_url": callback_url, "description": f"chaos {number}"}


def check_batch(api: httpx.Client, rclient: redis.Redis, batch_id: str, ends: BatchEnds, got: list[Delivery]) -> int:
    """Checks one ended batch and its callback; returns how many deliveries repeated an earlier one."""
    ended = wait_ended(api, batch_id, timeout=SETTLE)
    counts = ended["counts"]
    assert counts["finished"] + counts["failed"] == ended["total"] == BATCH_SIZE, ended
    assert ended["status"] == ("finished" if counts["finished"] == BATCH_SIZE else "failed"), ended
    assert ends.counts[batch_id] == 1, f"batch {batch_id} ended {ends.counts[batch_id]} times"
    assert got, f"batch {batch_id}: no callback delivered"
    assert len({delivery.body for delivery in got}) == 1, f"batch {batch_id}: deliveries differ"
    attempts = [int(delivery.headers["X-Callback-Attempt"]) for delivery in got]
    assert len(attempts) == len(set(attempts)), f"batch {batch_id}: one delivery attempt POSTed twice {attempts}"
    assert signature.verify(got[0].body, got[0].headers["X-Signature"], SECRET)
    sent = got[0].json()
    assert (sent["id"], sent["status"], sent["counts"]) == (batch_id, ended["status"], counts)
    delivery_job = rclient.hget(keys.batch(batch_id), "callback_job_id")
    assert delivery_job is not None
    assert view(api, text(delivery_job))["attempt"] >= max(attempts)  # a repeat only after a lost attempt
    return len(got) - 1


def check_batches(
    api: httpx.Client, rclient: redis.Redis, deliveries: list[Delivery], batch_ids: list[str], ends: BatchEnds
) -> str:
    for batch_id in batch_ids:
        wait_ended(api, batch_id, timeout=SETTLE)
    reports = {batch_id: batch_view_of(api, batch_id)["on_complete_job_id"] for batch_id in batch_ids}
    report_views = wait_jobs_ended(api, list(reports.values()), "on_complete job")
    wait_for(
        lambda: all(batch_view_of(api, batch_id)["callback"]["delivered"] for batch_id in batch_ids),
        SETTLE,
        interval=0.5,
        what="every batch's callback delivered",
    )
    repeated = 0
    for batch_id in batch_ids:
        got = [delivery for delivery in deliveries if delivery.headers["X-Job-Id"] == batch_id]
        repeated += check_batch(api, rclient, batch_id, ends, got)
        report = report_views[reports[batch_id]]
        if report["status"] == "finished":  # an on_complete job's worker may die too: it fails, with a reason
            counts = batch_view_of(api, batch_id)["counts"]
            assert report["result"] == {"total": BATCH_SIZE, "finished": counts["finished"], "failed": counts["failed"]}
    assert sum(int(n) for n in rclient.hvals(keys.BATCHES_ENDED)) == len(batch_ids)
    assert rclient.zcard(keys.index_for_type("demo.batch_report")) == len(batch_ids)  # one on_complete job each
    assert sum(ends.counts.values()) == len(batch_ids)
    statuses = Counter(batch_view_of(api, batch_id)["status"] for batch_id in batch_ids)
    reports_ended = Counter(report["status"] for report in report_views.values())
    return (
        f"{len(batch_ids)} batches {dict(statuses)}, each ended once; on_complete jobs {dict(reports_ended)}; "
        f"{len(deliveries)} callback POSTs ({repeated} repeated after a lost delivery attempt)"
    )


def batch_view_of(api: httpx.Client, batch_id: str) -> dict[str, Any]:
    response = api.get(f"/batches/{batch_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


# -- streamed output ---------------------------------------------------------------------------------------

TOKENS = 40
TOKENS_JOB = {"type": "demo.tokens", "args": {"count": TOKENS, "delay": 0.01}, "retries": 4}
ATTEMPT_LINE = re.compile(r"\n--- attempt (\d+) ---\n")


def attempts_in(output: str) -> list[tuple[int, list[int]]]:
    """The output split per attempt: (attempt, its token numbers); 0 for the first attempt that wrote."""
    parts = ATTEMPT_LINE.split(output)
    split = [(0, parts[0])] + [(int(parts[i]), parts[i + 1]) for i in range(1, len(parts), 2)]
    return [(attempt, [int(token.removeprefix("tok")) for token in text.split()]) for attempt, text in split]


def replay(api: httpx.Client, job_id: str) -> list[SSE]:
    """Every event of an ended job from the start (the stream closes after its final status)."""
    with api.stream("GET", f"/jobs/{job_id}/events", headers={"Last-Event-ID": "0"}, timeout=30) as response:
        return list(events(response))


def follow(base_url: str, job_id: str, into: list[SSE]) -> threading.Thread:
    """Read the job's event stream from the start, live, until it closes, in a thread."""

    def read() -> None:
        with httpx.stream("GET", f"{base_url}/jobs/{job_id}/events?last_event_id=0", timeout=SETTLE + 60) as response:
            into.extend(events(response))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def check_output(api: httpx.Client, job: dict[str, Any], live: list[SSE] | None) -> int:
    """Checks one ended job's output and events; returns how many of its attempts were cut short."""
    response = api.get(f"/jobs/{job['id']}/output")
    assert response.status_code == 200, response.text
    attempts = attempts_in(response.text)
    numbers = [attempt for attempt, _ in attempts]
    assert numbers == sorted(set(numbers)), f"job {job['id']}: attempts out of order {numbers}"
    for attempt, tokens in attempts:
        assert tokens == list(range(1, len(tokens) + 1)), f"job {job['id']} attempt {attempt}: chunks {tokens}"
    if job["status"] == "finished":
        assert attempts[-1][1] == list(range(1, TOKENS + 1)), f"job {job['id']}: output {response.text!r}"
        assert len(attempts) == 1 or attempts[-1][0] == job["attempt"]
    replayed = replay(api, job["id"])
    ids = [int(event.id or 0) for event in replayed if event.event in ("output", "progress")]
    assert ids == list(range(1, len(ids) + 1)), f"job {job['id']}: event ids {ids}"
    output = [(event.data["seq"], event.data["text"]) for event in replayed if event.event == "output"]
    assert [seq for seq, _ in output] == list(range(1, len(output) + 1))
    assert "".join(text for _, text in output) == response.text
    if live is not None:
        assert [(event.data["seq"], event.data["text"]) for event in live if event.event == "output"] == output
    return sum(len(tokens) < TOKENS for _, tokens in attempts)


def check_outputs(api: httpx.Client, ids: list[str], followed: dict[str, tuple[threading.Thread, list[SSE]]]) -> str:
    jobs = wait_jobs_ended(api, ids, "streaming job")
    for thread, _ in followed.values():
        thread.join(30)
        assert not thread.is_alive(), "a live event stream did not close after its job ended"
    cut = sum(
        check_output(api, job, followed[job_id][1] if job_id in followed else None) for job_id, job in jobs.items()
    )
    statuses = Counter(job["status"] for job in jobs.values())
    return f"{len(ids)} streaming jobs {dict(statuses)}, {cut} attempts cut short, {len(followed)} followed live"


# -- the soak ----------------------------------------------------------------------------------------------


def test_chaos_over_schedules_batches_and_streamed_output(
    api: httpx.Client,
    chaos_web: str,
    procs: ProcessFactory,
    rclient: redis.Redis,
    receiver: Receiver,  # noqa: F811
    record_property: RecordProperty,
    worker_mode: str,
) -> None:
    procs.env.update(**WORKER_ENV)
    ends = BatchEnds(rclient)
    schedule_ids = [api.post("/schedules", json=body).json()["id"] for body in SCHEDULES]
    batch_ids: list[str] = []
    streaming: list[str] = []
    followed: dict[str, tuple[threading.Thread, list[SSE]]] = {}
    chaos = Chaos(procs, WORKERS)
    started = time.monotonic()
    for step in range(1, int(CHAOS_FOR) + 1):
        time.sleep(max(0.0, started + step - time.monotonic()))  # the chaos's own clock: one step a second
        for _ in range(2):
            response = api.post("/jobs", json=TOKENS_JOB)
            assert response.status_code == 202, response.text
            streaming.append(response.json()["id"])
            if len(streaming) % 8 == 1:
                live: list[SSE] = []
                followed[streaming[-1]] = (follow(chaos_web, streaming[-1], live), live)
        if step % 5 == 1:
            response = api.post("/batches", json=batch_body(len(batch_ids), receiver.url))
            assert response.status_code == 202, response.text
            batch_ids.append(response.json()["id"])
        if step % KILL_EVERY == 0:
            chaos.kill_one()

    try:
        output_line = check_outputs(api, streaming, followed)
        batch_line = check_batches(api, rclient, receiver.deliveries, batch_ids, ends)
        schedule_lines = [check_schedule(api, schedule_id) for schedule_id in schedule_ids]
    finally:
        ends.close()
    record_property(
        REPORT,
        f"chaos over schedules, batches and streamed output ({worker_mode} workers, {chaos.kills} SIGKILLs "
        f"in {CHAOS_FOR:g} s): {output_line}; {batch_line}; schedules: {'; '.join(schedule_lines)}",
    )
    assert chaos.kills >= CHAOS_FOR / KILL_EVERY - 1
    assert lost_attempts(rclient) > 0  # the kills did hit running jobs
    wait_claims_settled(rclient, timeout=30)
