"""The taskiq peer (runs in .venv-bench/taskiq): `taskiq worker bench.peers.taskiq_peer:broker --workers 1`
is its worker. taskiq-redis's list queue in database 0, results in database 1 (`RedisAsyncResultBackend`,
kept an hour); the client waits with `wait_result(check_interval=0.001)` (it polls; the default is 0.2 s).
"""
# mypy: disable-error-code="import-not-found,untyped-decorator,no-untyped-call,no-any-return,misc"

from __future__ import annotations

import asyncio

from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

from bench.peers.driver import SLEEP, main, url

broker = ListQueueBroker(url(0)).with_result_backend(RedisAsyncResultBackend(url(1), result_ex_time=3600))


@broker.task(task_name="noop")
async def noop() -> None:
    return None


@broker.task(task_name="sleep")
async def sleep() -> None:
    await asyncio.sleep(SLEEP)


TASKS = {"noop": noop, "sleep": sleep}


class Client:
    async def enqueue(self, kind: str) -> None:
        await TASKS[kind].kiq()

    async def round_trip(self) -> None:
        task = await noop.kiq()
        await task.wait_result(check_interval=0.001, timeout=30)

    async def close(self) -> None:
        await broker.shutdown()


async def open_client() -> Client:
    await broker.startup()
    return Client()


if __name__ == "__main__":
    main(open_client)
