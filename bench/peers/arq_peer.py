"""The arq peer (runs in .venv-bench/arq): `arq bench.peers.arq_peer.WorkerSettings` is its worker.

`BENCH_POLL` is the worker's poll delay (arq's default 0.5 s, or the tuned 5 ms); without results
(`BENCH_RESULTS=0`) each job's result is not kept (`keep_result=0`). The client waits for a result by
polling it every millisecond (`Job.result(poll_delay=0.001)`; arq's default is 0.5 s).
"""
# mypy: disable-error-code="import-not-found,untyped-decorator,no-untyped-call,no-any-return,misc"

from __future__ import annotations

import asyncio
import os
from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from bench.peers.driver import CONCURRENCY, RESULTS, SLEEP, main, url

REDIS_SETTINGS = RedisSettings.from_dsn(url(0))


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def sleep(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(SLEEP)


class WorkerSettings:
    functions = [noop, sleep]
    redis_settings = REDIS_SETTINGS
    max_jobs = CONCURRENCY
    poll_delay = float(os.environ.get("BENCH_POLL", "0.5"))
    keep_result = 3600 if RESULTS else 0


class Client:
    def __init__(self, pool: ArqRedis) -> None:
        self.pool = pool

    async def enqueue(self, kind: str) -> None:
        await self.pool.enqueue_job(kind)

    async def round_trip(self) -> None:
        job = await self.pool.enqueue_job("noop")
        await job.result(timeout=30, poll_delay=0.001)

    async def close(self) -> None:
        await self.pool.aclose()


async def open_client() -> Client:
    return Client(await create_pool(REDIS_SETTINGS))


if __name__ == "__main__":
    main(open_client)
