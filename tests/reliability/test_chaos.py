"""Chaos soak: workers SIGKILLed at random every 2 s for a minute; every job still ends, with a reason."""

from __future__ import annotations

import time
from collections import Counter

import httpx
import redis

from tests.conftest import REPORT, RecordProperty
from tests.factories import steps_job
from tests.integration.test_spine import submit
from tests.reliability.support import Chaos, wait_claims_settled
from tests.support.procs import ProcessFactory, wait_for

JOBS = 1000
WORKERS = 2
KILL_EVERY = 2.0
CHAOS_FOR = 60.0
ENDED = {"finished", "failed"}


def statuses(client: redis.Redis, ids: list[str]) -> dict[str, str]:
    with client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(f"rq:job:{job_id}", "status")
        return {job_id: (raw or b"<missing>").decode() for job_id, raw in zip(ids, pipe.execute(), strict=True)}


def test_chaos_soak_loses_nothing_and_leaves_nothing_stuck(
    api: httpx.Client,
    procs: ProcessFactory,
    rclient: redis.Redis,
    record_property: RecordProperty,
    worker_mode: str,
) -> None:
    ids = [submit(api, steps_job(steps=2, delay=0.06, retries=3))["id"] for _ in range(JOBS)]
    chaos = Chaos(procs, WORKERS)
    chaos_ends = time.monotonic() + CHAOS_FOR
    while time.monotonic() < chaos_ends:
        time.sleep(KILL_EVERY)
        chaos.kill_one()
    kills = chaos.kills
    during = Counter(statuses(rclient, ids).values())

    wait_for(lambda: set(statuses(rclient, ids).values()) <= ENDED, 240, interval=1, what="every job to end")
    final = statuses(rclient, ids)
    counts = Counter(final.values())
    failed_reasons: Counter[str] = Counter()
    for job_id, status in final.items():
        if status == "failed":
            error = api.get(f"/jobs/{job_id}").json()["error"]
            assert error, f"job {job_id} failed without a reason"
            failed_reasons[error] += 1
    recovered = sum(1 for job_id in ids if b"lost" in (rclient.hget(f"rq:job:{job_id}", "meta") or b""))
    record_property(
        REPORT,
        f"chaos soak ({worker_mode} workers): {JOBS} jobs, {kills} worker SIGKILLs; "
        f"after the chaos {dict(during)}; "
        f"end: {counts['finished']} finished, {counts['failed']} failed {dict(failed_reasons)}, "
        f"{recovered} with a lost attempt recovered, 0 lost, 0 stuck",
    )
    assert counts["finished"] + counts["failed"] == JOBS  # zero lost (no '<missing>'), zero stuck
    wait_claims_settled(rclient)
    for queue in ("high", "default", "low"):
        assert rclient.llen(f"rq:queue:{queue}") == 0
        assert rclient.zcard(f"rq:wip:{queue}") == 0
        assert rclient.zcard(f"rq:scheduled:{queue}") == 0
    assert kills >= CHAOS_FOR / KILL_EVERY - 1
    assert recovered > 0  # the kills did hit running jobs
