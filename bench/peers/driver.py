"""The client side of each Python peer, run inside that peer's own venv (stdlib only here):
`python -m bench.peers.<peer> enqueue KIND N | submit N | latency N`, one JSON line on stdout.

A peer module defines `open_client()`, returning an object with `enqueue(kind)` (one job of `noop` or
`sleep`, by the system's own enqueue call), `round_trip()` (enqueue one no-op and wait until the client
sees it finished, by the system's own means) and `close()`; each may be a coroutine. The worker side is
the system's own CLI, pointed at the same module (see `bench.peers.systems`).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
RESULTS = os.environ.get("BENCH_RESULTS", "1") != "0"
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "1"))
#: Seconds one `sleep` job waits (workload B).
SLEEP = 0.1
#: Jobs the client sends before it starts timing submissions or latencies.
WARM_UP = 20
#: Enqueue calls in flight at once when filling a queue (timing does not matter there).
FILL_CONCURRENCY = 100


def url(db: int = 0) -> str:
    return f"{REDIS}/{db}"


async def _call(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _fill(client: Any, kind: str, count: int) -> None:
    if not inspect.iscoroutinefunction(client.enqueue):
        for _ in range(count):
            client.enqueue(kind)
        return
    for start in range(0, count, FILL_CONCURRENCY):
        await asyncio.gather(*(client.enqueue(kind) for _ in range(min(FILL_CONCURRENCY, count - start))))


async def _submit(client: Any, count: int) -> dict[str, float]:
    for _ in range(WARM_UP):
        await _call(client.enqueue("noop"))
    started = time.perf_counter()
    for _ in range(count):
        await _call(client.enqueue("noop"))
    return {"rate": count / (time.perf_counter() - started)}


async def _latency(client: Any, count: int) -> dict[str, list[float]]:
    samples = []
    for i in range(WARM_UP + count):
        started = time.perf_counter()
        await _call(client.round_trip())
        if i >= WARM_UP:
            samples.append((time.perf_counter() - started) * 1000)
    return {"ms": samples}


def main(open_client: Callable[[], Any]) -> None:
    command, *args = sys.argv[1:]

    async def run() -> dict[str, Any]:
        client = await _call(open_client())
        try:
            if command == "enqueue":
                await _fill(client, args[0], int(args[1]))
                return {}
            if command == "submit":
                return await _submit(client, int(args[0]))
            if command == "latency":
                return await _latency(client, int(args[0]))
            raise SystemExit(f"unknown command {command}")
        finally:
            await _call(client.close())

    print(json.dumps(asyncio.run(run())), flush=True)
