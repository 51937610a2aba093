"""A worker that stops answering (SIGSTOP: a frozen VM, a stalled container) past `ABANDONED_JOB_TIMEOUT`
is presumed dead and its job is taken over; when it comes back (SIGCONT) and its own run of the job ends,
it records nothing: the job keeps the one outcome of the worker that took it over."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypedDict

import httpx
import redis
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.results import Result

from core import keys
from core.queues import SERIALIZER
from tests.factories import steps_job
from tests.integration.test_spine import submit, view, wait_status
from tests.reliability.jobs import EFFECTS
from tests.reliability.support import claims, horse_of, wait_claims_settled
from tests.reliability.test_worker_deaths import wait_running
from tests.support.procs import Proc, ProcessFactory, wait_for
from tests.support.replies import text

#: Short, so the test is quick: liveness TTL 1.5 s, sweeps every 0.75 s.
ABANDONED_JOB_TIMEOUT = 3.0


class FrozenEnv(TypedDict):
    """The workers' environment here (its keys cannot clash with `worker`'s `wait`)."""

    ABANDONED_JOB_TIMEOUT: str


ENV: FrozenEnv = {"ABANDONED_JOB_TIMEOUT": str(ABANDONED_JOB_TIMEOUT)}


@contextmanager
def frozen(worker: Proc) -> Iterator[None]:
    """SIGSTOP the worker's process group (worker, scheduler) and its work horse (a group of its own);
    SIGCONT them on the way out, whatever happened meanwhile."""
    horse = horse_of(worker.pid)
    os.killpg(worker.pid, signal.SIGSTOP)
    if horse is not None:
        os.kill(horse, signal.SIGSTOP)
    try:
        yield
    finally:
        if horse is not None:
            try:
                os.kill(horse, signal.SIGCONT)
            except ProcessLookupError:
                pass
        os.killpg(worker.pid, signal.SIGCONT)


def effects(client: redis.Redis, job_id: str) -> list[str]:
    return [text(item) for item in client.lrange(EFFECTS.format(job_id=job_id), 0, -1)]


def recorded_state(api: httpx.Client, client: redis.Redis, job_id: str) -> dict[str, Any]:
    """Everything an outcome writes: the job's view (status, result, messages), its RQ results, registries."""
    job = Job.fetch(job_id, connection=client, serializer=SERIALIZER)
    return {
        "view": view(api, job_id),
        "results": [(result.id, result.type, result.return_value) for result in job.results()],
        "finished": job_id in FinishedJobRegistry("default", connection=client).get_job_ids(),
        "failed": job_id in FailedJobRegistry("default", connection=client).get_job_ids(),
        "started": StartedJobRegistry("default", connection=client).get_job_ids(),
    }


def announced_ids(pubsub: redis.client.PubSub) -> list[str]:
    found = []
    idle = 0
    while idle < 2:  # None also comes for the subscription's own confirmation (ignored): not yet drained
        message = pubsub.get_message(timeout=0.1)
        if message is None:
            idle += 1
            continue
        idle = 0
        if message["type"] == "message":
            found.append(message["data"].decode())
    return found


def test_a_worker_frozen_past_the_timeout_records_nothing_for_the_job_taken_over(
    api: httpx.Client, procs: ProcessFactory, rclient: redis.Redis, worker_mode: str
) -> None:
    stalled = procs.worker(**ENV)  # high default low
    job = submit(api, {"type": "test.effect", "args": {"seconds": 2}, "retries": 1})
    wait_running(api, job["id"])
    stalled_name = claims(rclient)[job["id"]]
    # Not `low`: a marker job there reaches the stalled worker only, once it is back.
    procs.worker("high", "default", **ENV)

    with frozen(stalled):
        done = wait_status(api, job["id"], {"finished", "failed"}, timeout=ABANDONED_JOB_TIMEOUT * 3 + 15)
        assert done["status"] == "finished", done
        assert done["result"] == 1  # the retry's side effect was the first one: the frozen run made none
        assert [m["message"] for m in done["messages"] if "lost" in m["message"]] == [
            "attempt 1 lost: worker died while running the job; retrying (0 retries left)"
        ]
        [retry_effect] = effects(rclient, job["id"])
        assert retry_effect.startswith("2:")
        wait_claims_settled(rclient)
        before = recorded_state(api, rclient, job["id"])
        assert before["finished"] and not before["failed"] and before["started"] == []
        assert [kind for _, kind, _ in before["results"]] == [Result.Type.SUCCESSFUL]  # exactly one outcome
        pubsub = rclient.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]  # unannotated in redis-py
        pubsub.subscribe(keys.EVENTS_CHANNEL)
        wait_for(lambda: pubsub.subscribed, 5, what="the events subscription")

    # Back: its run of attempt 1 ends now (its sleep is long over), or its worker kills it first.
    wait_for(
        lambda: any(e.startswith("1:") for e in effects(rclient, job["id"])) or "recovered elsewhere" in stalled.log(),
        15,
        what="the stalled run of attempt 1 to end",
    )
    # A job only the stalled worker listens for: once it has finished, the worker is done with attempt 1.
    marker = submit(api, steps_job(steps=1, queue="low"))
    assert wait_status(api, marker["id"], {"finished"}, timeout=20)["result"] == {"steps": 1, "attempt": 1}
    assert rclient.hget(f"rq:job:{marker['id']}", "worker_name") == stalled_name.encode()

    after = recorded_state(api, rclient, job["id"])
    assert after["results"] == before["results"], "the stalled worker recorded a second outcome"
    assert after["view"] == before["view"]
    assert after == before
    announced = announced_ids(pubsub)
    assert marker["id"] in announced  # the subscription saw the stalled worker's announcements...
    assert job["id"] not in announced  # ...and none about the job taken over
    wait_claims_settled(rclient)
    assert stalled.alive(), stalled.log()
    pubsub.close()


def output_of(api: httpx.Client, job_id: str) -> str:
    response = api.get(f"/jobs/{job_id}/output")
    assert response.status_code == 200, response.text
    return response.text


@dataclass
class TakenOver:
    """A streaming job taken over from a frozen worker, as recorded before that worker came back."""

    job_id: str
    output: str
    state: dict[str, Any]


def take_over_a_streaming_job(api: httpx.Client, procs: ProcessFactory, rclient: redis.Redis) -> TakenOver:
    """Freeze a worker whose run of a job streams and reports as it goes; once the job has finished
    elsewhere, wake it, and return when it has seen the takeover and stopped its run."""
    stalled = procs.worker(**ENV)
    job = submit(api, {"type": "demo.tokens", "args": {"count": 40, "delay": 0.1}, "retries": 1})
    wait_for(lambda: len(output_of(api, job["id"]).split()) >= 5, 20, what="a few chunks streamed")
    stalled_name = claims(rclient)[job["id"]]
    procs.worker("high", "default", **ENV)

    with frozen(stalled):
        done = wait_status(api, job["id"], {"finished", "failed"}, timeout=ABANDONED_JOB_TIMEOUT * 3 + 20)
        assert done["status"] == "finished" and done["attempt"] == 2, done
        wait_claims_settled(rclient)
        taken_over = TakenOver(job["id"], output_of(api, job["id"]), recorded_state(api, rclient, job["id"]))
        assert taken_over.output.endswith("\n--- attempt 2 ---\n" + "".join(f"tok{i} " for i in range(1, 41)))

    # Back: its run goes on (writing, reporting) until its worker sees the claim taken over and stops it.
    wait_for(lambda: "recovered elsewhere" in stalled.log(), 15, what="the stalled worker to see the takeover")
    marker = submit(api, steps_job(steps=1, queue="low"))
    assert wait_status(api, marker["id"], {"finished"}, timeout=20)["result"] == {"steps": 1, "attempt": 1}
    assert rclient.hget(f"rq:job:{marker['id']}", "worker_name") == stalled_name.encode()
    return taken_over


def test_a_frozen_worker_back_adds_nothing_to_the_output_of_the_job_taken_over(
    api: httpx.Client, procs: ProcessFactory, rclient: redis.Redis, worker_mode: str
) -> None:
    taken_over = take_over_a_streaming_job(api, procs, rclient)
    assert output_of(api, taken_over.job_id) == taken_over.output, "the stalled run wrote output after the takeover"
    after = recorded_state(api, rclient, taken_over.job_id)
    assert after["results"] == taken_over.state["results"] and after["view"]["status"] == "finished"


def test_a_frozen_worker_back_leaves_the_progress_of_the_job_taken_over_alone(
    api: httpx.Client, procs: ProcessFactory, rclient: redis.Redis, worker_mode: str
) -> None:
    taken_over = take_over_a_streaming_job(api, procs, rclient)
    before, after = taken_over.state["view"], recorded_state(api, rclient, taken_over.job_id)["view"]
    changed = {field: (before[field], after[field]) for field in before if before[field] != after[field]}
    assert not changed, f"the stalled run's reports rewrote the job's record: {changed}"
