"""The SAQ peer (runs in .venv-bench/saq): `saq bench.peers.saq_peer.settings` is its worker.

Results are kept for an hour (`ttl=3600`; SAQ's default is 600 s); without results (`BENCH_RESULTS=0`)
each job is deleted when it finishes (`ttl=0`). The client waits with `Queue.apply`, polling every
millisecond (`poll_interval=0.001`; its default is 0.5 s).
"""
# mypy: disable-error-code="import-not-found,untyped-decorator,no-untyped-call,no-any-return,misc"

from __future__ import annotations

import asyncio
from typing import Any

from saq import Queue

from bench.peers.driver import CONCURRENCY, RESULTS, SLEEP, main, url

TTL = 3600 if RESULTS else 0
queue = Queue.from_url(url(0), name="default")


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def sleep(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(SLEEP)


settings = {"queue": queue, "functions": [noop, sleep], "concurrency": CONCURRENCY}


class Client:
    async def enqueue(self, kind: str) -> None:
        await queue.enqueue(kind, ttl=TTL)

    async def round_trip(self) -> None:
        await queue.apply("noop", ttl=TTL, timeout=30, poll_interval=0.001)

    async def close(self) -> None:
        await queue.disconnect()


async def open_client() -> Client:
    await queue.connect()
    return Client()


if __name__ == "__main__":
    main(open_client)
