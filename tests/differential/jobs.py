"""Job types only the differential suite registers (`JOB_MODULES=tests.differential.jobs`).

Each one does something a worker must record: return, raise, outlive its timeout, run until stopped,
return `rq.Retry`. They keep any state they need in Redis under `CALLS` (the same on both sides), never
in the job's `meta` (which only the service's workers extend).
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field
from redis import Redis
from rq import Retry, get_current_job
from rq.job import Job

from jobs.registry import job_type

#: Redis counter of a job's runs, shared by both sides' snapshots.
CALLS = "difftest:calls:{job_id}"
#: Redis key a completion callback writes.
CALLBACK = "difftest:callback:{job_id}"


def _count_call() -> int:
    job = get_current_job()
    assert job is not None
    return int(job.connection.incr(CALLS.format(job_id=job.id)))


class ValueArgs(BaseModel):
    value: Any = None


@job_type("diff.value", args=ValueArgs, description="Return its argument", internal=True)
def value(value: Any = None) -> Any:
    return value


@job_type("diff.unserializable", description="Return a set, which JSON cannot store", internal=True)
def unserializable() -> set[int]:
    return {1, 2}


class FlakyArgs(BaseModel):
    failures: int = Field(1, ge=0)


@job_type("diff.flaky", args=FlakyArgs, description="Raise on the first `failures` runs, then return", internal=True)
def flaky(failures: int = 1) -> str:
    calls = _count_call()
    if calls <= failures:
        raise ValueError(f"failing run {calls} of {failures}")
    return f"succeeded on run {calls}"


class SleepArgs(BaseModel):
    seconds: float = Field(1, ge=0, le=60)


@job_type("diff.sleep", args=SleepArgs, description="Sleep in short steps (interruptible in a thread)", internal=True)
def sleep(seconds: float = 1) -> str:
    _count_call()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)
    return "slept"


@job_type("diff.retry", args=ValueArgs, description="Always return `Retry(max=1)`", internal=True)
def retry(value: Any = None) -> Retry:
    _count_call()
    return Retry(max=1)


def record_success(job: Job, connection: Redis, result: Any) -> None:
    """RQ's `on_success` callback."""
    connection.set(CALLBACK.format(job_id=job.id), f"success:{result}")


def record_failure(job: Job, connection: Redis, exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    """RQ's `on_failure` callback."""
    connection.set(CALLBACK.format(job_id=job.id), f"failure:{exc_type.__name__}:{exc}")
