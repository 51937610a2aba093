"""Job types only the reliability tests register (`JOB_MODULES=tests.reliability.jobs`)."""

from __future__ import annotations

import os
import signal
import time

from pydantic import BaseModel, Field

from jobs import progress
from jobs.registry import job_type

#: Redis list each `test.effect` run appends "<attempt>:<pid>" to when it completes its side effect.
EFFECTS = "jobsvc:test:effects:{job_id}"


class EffectArgs(BaseModel):
    seconds: float = Field(3, ge=0, le=120)


@job_type("test.effect", args=EffectArgs, description="Sleep, then record one side effect in Redis", timeout=120)
def effect(seconds: float = 3) -> int:
    job = progress.current_job()
    assert job is not None
    progress.report(0, f"started in pid {os.getpid()}")
    time.sleep(seconds)
    return int(job.connection.rpush(EFFECTS.format(job_id=job.id), f"{progress.attempt()}:{os.getpid()}"))


class StubbornArgs(BaseModel):
    seconds: float = Field(30, ge=0, le=600)


@job_type("test.stubborn", args=StubbornArgs, description="Ignore SIGALRM (RQ's timeout) and keep sleeping")
def stubborn(seconds: float = 30) -> None:
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    progress.report(0, "ignoring SIGALRM")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)


class HogArgs(BaseModel):
    megabytes: int = Field(256, ge=1, le=4096)


@job_type("test.hog", args=HogArgs, description="Allocate (and touch) this many megabytes")
def hog(megabytes: int = 256) -> int:
    chunks = [bytearray(1024 * 1024) for _ in range(megabytes)]
    return len(chunks)
