"""The clients `core.connection` builds, against a real server that closes their connections."""

from __future__ import annotations

import asyncio

import redis

from core.connection import async_redis
from core.settings import Settings


def test_pooled_asyncio_connections_the_server_closed_are_replaced_not_failed(
    redis_url: str, rclient: redis.Redis
) -> None:
    """After a restart or an idle timeout (here: CLIENT KILL), no command fails on a dead connection."""

    async def main() -> list[object]:
        client = async_redis(Settings(redis_url=redis_url))
        replies: list[object] = []
        try:
            for _ in range(3):
                await asyncio.gather(*[client.ping() for _ in range(4)])  # several pooled connections
                killed = await asyncio.to_thread(rclient.client_kill_filter, _type="normal", skipme=True)
                assert killed >= 1
                await asyncio.sleep(0.1)
                replies.append(await client.ping())
                async with client.pipeline(transaction=False) as pipe:
                    pipe.echo("piped")  # queued: a pipeline's command returns the pipeline, not a reply
                    replies.append((await pipe.execute())[0])
            return replies
        finally:
            await client.aclose()

    assert asyncio.run(main()) == [True, b"piped"] * 3
