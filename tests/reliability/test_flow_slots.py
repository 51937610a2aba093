"""Flow-control slots live exactly as long as their claim: whatever way a limited job ends (finished, failed, timed
out, stopped, canceled while starting, its worker SIGKILLed, Redis restarted), every slot hash ends empty."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis
from rq.command import send_stop_job_command
from rq.job import JobStatus

from core.flow import keys as flow_keys
from tests.reliability.conftest import ABANDONED_JOB_TIMEOUT
from tests.reliability.support import claims, wait_claims_settled
from tests.reliability.test_redis_outages import outage_stack
from tests.support.flow import intervals, most_at_once, push, slot_keys, statuses
from tests.support.procs import ProcessFactory, wait_for

pytestmark = pytest.mark.integration

#: Every limited job takes a type slot and an owner slot.
LIMITS = {"TYPE_CONCURRENCY": "demo.sleep=1,demo.steps=1", "KEY_CONCURRENCY": "5", "WORKER_CONCURRENCY": "20"}
HEADROOM = 10.0


def slot_taken(client: redis.Redis, job_type: str) -> bool:
    return client.hlen(flow_keys.running_type(job_type)) == 1 and client.hlen(flow_keys.running_key("anonymous")) == 1


def wait_no_slots(client: redis.Redis, timeout: float = 10) -> None:
    wait_for(lambda: not slot_keys(client), timeout, what="every slot released")


def wait_status(client: redis.Redis, job_id: str, wanted: JobStatus, timeout: float = 20) -> None:
    wait_for(lambda: statuses(client, [job_id]) == [wanted], timeout, 0.05, f"job {job_id} to be {wanted}")


@pytest.mark.parametrize("end", ["finished", "failed", "timed out", "stopped"])
def test_a_job_that_ends_frees_its_slots(rclient: redis.Redis, procs: ProcessFactory, end: str) -> None:
    procs.env.update(LIMITS)
    procs.worker()
    if end == "finished":
        (job_id,) = push(rclient, "demo.sleep", kwargs={"seconds": 1})
    elif end == "failed":
        (job_id,) = push(rclient, "demo.steps", kwargs={"steps": 3, "delay": 0.4, "fail_at": 3})
    elif end == "timed out":
        (job_id,) = push(rclient, "demo.sleep", kwargs={"seconds": 30}, timeout=1)
    else:
        (job_id,) = push(rclient, "demo.steps", kwargs={"steps": 100, "delay": 0.1})
    job_type = "demo.sleep" if end in ("finished", "timed out") else "demo.steps"
    wait_for(lambda: slot_taken(rclient, job_type), 10, what="the job's slots taken")
    if end == "stopped":
        wait_status(rclient, job_id, JobStatus.STARTED)
        send_stop_job_command(rclient, job_id)
    wanted = {"finished": JobStatus.FINISHED, "stopped": JobStatus.STOPPED}.get(end, JobStatus.FAILED)
    wait_status(rclient, job_id, wanted)
    wait_no_slots(rclient)


def test_a_job_canceled_while_starting_frees_its_slots(
    api: httpx.Client, rclient: redis.Redis, procs: ProcessFactory
) -> None:
    """DELETE /jobs/{id} sent while the worker holds the job between its claim and its start (the test hook
    holds it there): the web answers 409 "try again" while it is in that state, as a client would retry."""
    procs.env.update(LIMITS)
    procs.worker(WORKER_TEST_PAUSE_AFTER_DEQUEUE="2")
    (job_id,) = push(rclient, "demo.sleep", kwargs={"seconds": 30})
    wait_for(lambda: job_id in claims(rclient) and slot_taken(rclient, "demo.sleep"), 10, what="claimed")
    assert statuses(rclient, [job_id]) == [JobStatus.QUEUED]
    wait_for(lambda: api.delete(f"/jobs/{job_id}").status_code != 409, 20, 0.2, "the cancel to be accepted")
    wait_for(lambda: statuses(rclient, [job_id])[0] in (JobStatus.CANCELED, JobStatus.STOPPED), 20, what="canceled")
    wait_claims_settled(rclient)
    wait_no_slots(rclient)


def test_a_sigkilled_workers_slot_comes_back(rclient: redis.Redis, procs: ProcessFactory) -> None:
    """3 workers x 20, demo.sleep limited to 2: the first worker takes both slots and is SIGKILLed; the others
    get the slots back within ABANDONED_JOB_TIMEOUT, never run more than 2 at once, and every job finishes."""
    procs.env.update(TYPE_CONCURRENCY="demo.sleep=2", WORKER_CONCURRENCY="20")
    victim = procs.worker()
    ids = push(rclient, "demo.sleep", 30, kwargs={"seconds": 0.5}, retries=2)
    wait_for(lambda: rclient.hlen(flow_keys.running_type("demo.sleep")) == 2, 10, what="both slots taken")
    others = [procs.worker() for _ in range(2)]
    victim.kill_group()
    wait_for(
        lambda: set(statuses(rclient, ids)) == {JobStatus.FINISHED},
        ABANDONED_JOB_TIMEOUT + 15 * 0.5 + 3 * HEADROOM,
        0.2,
        "every job to finish",
    )
    assert all(worker.alive() for worker in others)
    assert most_at_once(intervals(rclient, ids)) == 2
    assert sum(1 for job_id in ids if b"lost" in (rclient.hget(f"rq:job:{job_id}", "meta") or b"")) >= 1
    wait_no_slots(rclient)


def test_slots_survive_a_redis_restart_consistently(tmp_path: Path) -> None:
    """Redis SIGKILLed while limited jobs run, restarted from its append-only file: claims and slots come back
    together; the jobs end and every slot is released."""
    with outage_stack(tmp_path) as (server, factory):
        client = redis.Redis.from_url(server.url)
        factory.env.update(LIMITS)
        factory.worker()
        ids = push(client, "demo.sleep", 3, kwargs={"seconds": 2})
        wait_for(lambda: slot_taken(client, "demo.sleep"), 10, what="a slot taken")
        server.kill()
        server.start()
        client = redis.Redis.from_url(server.url)
        assert client.hlen(flow_keys.running_type("demo.sleep")) == 1  # replayed with its claim
        assert set(client.hkeys(flow_keys.HELD)) <= set(client.hkeys("jobsvc:claims"))
        wait_for(
            lambda: set(statuses(client, ids)) <= {JobStatus.FINISHED, JobStatus.FAILED},
            3 * 2 + ABANDONED_JOB_TIMEOUT + 3 * HEADROOM,
            0.2,
            "every job to end",
        )
        wait_no_slots(client)
        client.close()
