"""`workers.threads.JobThreads`: sync job functions in threads, their outcomes handed back to the loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from workers.threads import JobThreads


def test_values_and_exceptions_come_back_on_the_loop() -> None:
    threads = JobThreads("test")

    def fail() -> None:
        raise ValueError("job failed")

    def stop() -> None:
        raise StopIteration

    async def main() -> None:
        values = await asyncio.gather(*(threads.submit(lambda i=i: i * i) for i in range(50)))  # type: ignore[misc]
        assert values == [i * i for i in range(50)]
        with pytest.raises(ValueError, match="job failed"):
            await threads.submit(fail)
        with pytest.raises(RuntimeError, match="StopIteration"):
            await threads.submit(stop)

    asyncio.run(main())


def test_an_outcome_the_loop_gave_up_on_is_dropped() -> None:
    threads = JobThreads("test")
    release = threading.Event()
    ran = threading.Event()

    def slow() -> str:
        release.wait(10)
        ran.set()
        return "late"

    async def main() -> None:
        future = threads.submit(slow)
        future.cancel()
        release.set()
        # the thread still runs the job; its late outcome must not touch the cancelled future
        assert await asyncio.to_thread(ran.wait, 10)
        assert await threads.submit(lambda: "next") == "next"
        assert future.cancelled()

    asyncio.run(main())


def test_a_closed_loop_does_not_break_the_thread() -> None:
    threads = JobThreads("test")
    release = threading.Event()

    async def start() -> None:
        threads.submit(lambda: release.wait(10))

    asyncio.run(start())  # the loop closes while the job runs
    release.set()

    async def again() -> str:
        return str(await threads.submit(lambda: "after"))

    assert asyncio.run(again()) == "after"
