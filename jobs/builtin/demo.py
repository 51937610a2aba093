"""Built-in demo job types: used by the README walk-through, the tests and the benchmarks."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jobs import progress
from jobs.output import write_output
from jobs.registry import job_type


class DemoFailure(RuntimeError):
    """Raised by `demo.steps` where it was asked to fail."""


class StepsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int = Field(5, ge=1, le=10000, description="How many steps to run")
    delay: float = Field(0.5, ge=0, le=60, description="Seconds each step sleeps")
    fail_at: int | None = Field(None, ge=1, description="Raise at this step")
    fail_attempts: int | None = Field(
        None, ge=1, description="Only raise on the first N attempts (so a retry can succeed)"
    )

    @model_validator(mode="after")
    def _fail_at_within_steps(self) -> StepsArgs:
        if self.fail_at is not None and self.fail_at > self.steps:
            raise ValueError("fail_at must not exceed steps")
        return self


@job_type(
    "demo.steps",
    args=StepsArgs,
    description="Sleep through N steps, reporting progress after each; can fail on demand",
    timeout=180,
    retries=0,
)
def steps(
    steps: int = 5, delay: float = 0.5, fail_at: int | None = None, fail_attempts: int | None = None
) -> dict[str, Any]:
    attempt = progress.attempt()
    for step in range(1, steps + 1):
        if progress.cancel_requested():
            raise progress.StopRequested(f"stopped by request before step {step}/{steps}")
        if step == fail_at and (fail_attempts is None or attempt <= fail_attempts):
            raise DemoFailure(f"failing at step {step} as asked (attempt {attempt})")
        if delay:
            time.sleep(delay)
        progress.report(step * 100 / steps, f"step {step}/{steps}")
    return {"steps": steps, "attempt": attempt}


@job_type("demo.noop", description="Do nothing and return null; for throughput measurements", timeout=30)
def noop() -> None:
    return None


class SleepArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(1.0, ge=0, le=3600, description="Total seconds to wait")
    steps: int = Field(1, ge=1, le=1000, description="Waits split into this many steps, progress after each")
    mode: Literal["async", "sync"] = Field(
        "async", description="'async' awaits asyncio.sleep (a coroutine job); 'sync' blocks in time.sleep"
    )


@job_type(
    "demo.sleep",
    args=SleepArgs,
    description="Wait on I/O (asyncio.sleep or time.sleep) in steps, reporting progress; for concurrency tests",
    timeout=180,
)
def sleep(seconds: float = 1.0, steps: int = 1, mode: str = "async") -> Any:
    """Stands in for an I/O-bound job (an HTTP or LLM call). In `async` mode it returns the
    coroutine, which a ConcurrentWorker awaits on its event loop (a forking worker runs it with asyncio.run)."""
    if mode == "async":
        return _sleep_async(seconds, steps)
    for step in range(1, steps + 1):
        time.sleep(seconds / steps)
        progress.report(step * 100 / steps, f"slept {step}/{steps}")
    return {"slept": seconds, "mode": mode}


async def _sleep_async(seconds: float, steps: int) -> dict[str, Any]:
    for step in range(1, steps + 1):
        await asyncio.sleep(seconds / steps)
        progress.report(step * 100 / steps, f"slept {step}/{steps}")
    return {"slept": seconds, "mode": "async"}


class TokensArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(50, ge=1, le=100_000, description="How many chunks to stream")
    delay: float = Field(0.05, ge=0, le=10, description="Seconds between two chunks")


@job_type(
    "demo.tokens",
    args=TokensArgs,
    description="Stream `count` chunks 'tok1 ', 'tok2 ' ... one every `delay` s, as an LLM streams tokens",
    timeout=600,
)
def tokens(count: int = 50, delay: float = 0.05) -> dict[str, Any]:
    """Reports progress at each whole percent (at most 100 reports, however many chunks)."""
    reported = 0
    for i in range(1, count + 1):
        if progress.cancel_requested():
            raise progress.StopRequested(f"stopped by request after {i - 1}/{count} tokens")
        if delay:
            time.sleep(delay)
        write_output(f"tok{i} ")
        percent = i * 100 // count
        if percent > reported or i == count:
            reported = percent
            progress.report(i * 100 / count, f"{i}/{count} tokens")
    return {"tokens": count}
