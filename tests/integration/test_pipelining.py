"""The web's implicit pipelining (`app.pipelining`) against a real server: concurrent callers share
one connection and writes, and each still gets its own reply, error or failure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from app.pipelining import AutoPipeline
from core.connection import async_redis
from core.settings import Settings
from stack.redis_server import EmbeddedRedis


def _run(redis_url: str, body: Callable[[AutoPipeline, aioredis.Redis], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        client = async_redis(Settings(redis_url=redis_url))
        pipeline = AutoPipeline(client)
        try:
            return await body(pipeline, client)
        finally:
            await pipeline.aclose()
            await client.aclose()

    return asyncio.run(main())


def _connections_received(rclient: redis.Redis) -> int:
    return int(rclient.info("stats")["total_connections_received"])


def test_concurrent_commands_share_one_connection_and_each_gets_its_own_reply(
    redis_url: str, rclient: redis.Redis
) -> None:
    rclient.config_resetstat()
    before = _connections_received(rclient)

    async def body(pipeline: AutoPipeline, _client: aioredis.Redis) -> list[Any]:
        return await asyncio.gather(*[pipeline.execute("ECHO", f"message {i}") for i in range(300)])

    replies = _run(redis_url, body)

    assert replies == [f"message {i}".encode() for i in range(300)]
    assert _connections_received(rclient) - before == 1
    calls = rclient.info("commandstats")["cmdstat_echo"]["calls"]
    assert calls == 300


def test_an_error_reply_goes_to_its_own_caller_and_the_others_get_theirs(redis_url: str, rclient: redis.Redis) -> None:
    rclient.set("text", "not a number")

    async def body(pipeline: AutoPipeline, _client: aioredis.Redis) -> tuple[Any, ...]:
        return await asyncio.gather(
            pipeline.execute("ECHO", "before"),
            pipeline.execute("INCR", "text"),
            pipeline.execute("ECHO", "after"),
            return_exceptions=True,
        )

    before, failed, after = _run(redis_url, body)

    assert (before, after) == (b"before", b"after")
    assert isinstance(failed, redis.ResponseError)
    assert "not an integer" in str(failed)


def test_a_caller_that_goes_away_leaves_the_replies_of_the_others_in_step(redis_url: str) -> None:
    async def body(pipeline: AutoPipeline, _client: aioredis.Redis) -> tuple[Any, ...]:
        slow = asyncio.ensure_future(pipeline.execute("BLPOP", "never-filled", 0.3))
        await asyncio.sleep(0.05)  # the BLPOP is on the wire
        queued = asyncio.ensure_future(pipeline.execute("ECHO", "queued behind it"))
        await asyncio.sleep(0.05)
        slow.cancel()
        queued_reply = await queued
        next_reply = await pipeline.execute("ECHO", "next")
        return slow.cancelled(), queued_reply, next_reply

    assert _run(redis_url, body) == (True, b"queued behind it", b"next")


def test_a_lost_connection_fails_the_whole_batch_and_the_next_command_reconnects(
    redis_url: str, rclient: redis.Redis
) -> None:
    async def body(pipeline: AutoPipeline, _client: aioredis.Redis) -> tuple[Any, ...]:
        connection_id = await pipeline.execute("CLIENT", "ID")
        on_the_wire = asyncio.gather(
            pipeline.execute("BLPOP", "never-filled", 2), pipeline.execute("ECHO", "same batch"), return_exceptions=True
        )
        await asyncio.sleep(0.2)
        killed = await asyncio.to_thread(rclient.client_kill_filter, _id=connection_id)
        failures = await on_the_wire
        return killed, failures, await pipeline.execute("ECHO", "after")

    killed, failures, after = _run(redis_url, body)

    assert killed == 1
    assert all(isinstance(failure, redis.ConnectionError) for failure in failures), failures
    assert after == b"after"


def test_a_script_the_server_lost_is_loaded_again(redis_url: str, rclient: redis.Redis) -> None:
    async def body(pipeline: AutoPipeline, client: aioredis.Redis) -> tuple[Any, ...]:
        script = client.register_script("return ARGV[1] .. KEYS[1]")
        first = await pipeline.evalsha(script, ["key"], ["arg-"])
        await asyncio.to_thread(rclient.script_flush)
        second = await pipeline.evalsha(script, ["key"], ["again-"])
        return first, second

    assert _run(redis_url, body) == (b"arg-key", b"again-key")


def test_commands_after_the_server_went_away_fail_as_connection_errors(redis_url: str) -> None:
    """No server at all: a redis ConnectionError (the web answers it with a 503), not a hang."""

    async def body(pipeline: AutoPipeline, _client: aioredis.Redis) -> Any:
        return await asyncio.gather(pipeline.execute("PING"), pipeline.execute("PING"), return_exceptions=True)

    unreachable = redis_url.rsplit(":", 1)[0] + ":1/0"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDIS_CONNECT_TIMEOUT", "1")
        failures = _run(unreachable, body)
    assert all(isinstance(failure, redis.ConnectionError) for failure in failures), failures


def test_a_new_event_loop_gets_a_new_connection(redis_url: str) -> None:
    client = async_redis(Settings(redis_url=redis_url))
    pipeline = AutoPipeline(client)

    async def echo(message: str) -> Any:
        try:
            return await pipeline.execute("ECHO", message)
        finally:
            await pipeline.aclose()

    assert asyncio.run(echo("first loop")) == b"first loop"
    assert asyncio.run(echo("second loop")) == b"second loop"


def test_a_restarted_server_costs_no_caller_its_reply(tmp_path: Path) -> None:
    """The server closed the idle connection (a restart, an idle timeout): the next batch goes out
    on a new connection instead of failing on the dead one."""
    server = EmbeddedRedis(tmp_path).start()

    async def main() -> tuple[Any, ...]:
        client = async_redis(Settings(redis_url=server.url))
        pipeline = AutoPipeline(client)
        try:
            before = await pipeline.execute("ECHO", "before")
            server.kill()
            server.start()
            await asyncio.sleep(0.1)
            return before, await pipeline.execute("ECHO", "after the restart")
        finally:
            await pipeline.aclose()
            await client.aclose()

    try:
        assert asyncio.run(main()) == (b"before", b"after the restart")
    finally:
        server.stop()
