"""Implicit pipelining: the Redis commands of concurrent requests leave in one write, on one connection.

Under load the web process has dozens of requests waiting on Redis at once. redis-py's asyncio
client gives each command a pooled connection of its own, one write and one read: system calls
that cost more than the command itself on a small VM, for the web process and for Redis alike.
`AutoPipeline` gathers the commands issued while a batch is on the wire, writes them together,
and hands each caller its own reply, read in order (the implicit pipelining of node-redis and
ioredis). It carries only single commands that need no connection state (the hot-path scripts);
pipelines, transactions and pub/sub stay on redis-py's pool.

A command that was written is never sent again on its own: if the connection fails with a batch
on the wire, every caller in it gets the error (a 503), as no one can tell which commands ran.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from core.rqadapter.redis_private import dedicated_connection, ensure_connected


class AutoPipeline:
    """Send commands through `execute`; each call awaits its own reply (or error)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._connection = self._new_connection()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._commands: list[bytes | memoryview] = []
        self._waiters: list[asyncio.Future[Any]] = []
        self._sender: asyncio.Task[None] | None = None

    def _new_connection(self) -> Any:
        return dedicated_connection(self._client)

    async def execute(self, *args: Any) -> Any:
        """Send one command with the others of this moment; its raw reply (no redis-py response callbacks)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._start_on(loop)
        waiter: asyncio.Future[Any] = loop.create_future()
        self._commands.extend(self._connection.pack_command(*args))
        self._waiters.append(waiter)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_batches())
        return await waiter

    def _start_on(self, loop: asyncio.AbstractEventLoop) -> None:
        """First use, or a new event loop (tests run several): a connection of this loop's own."""
        self._loop, self._connection = loop, self._new_connection()
        self._commands, self._waiters, self._sender = [], [], None

    async def evalsha(self, script: AsyncScript, keys: list[Any], args: list[Any]) -> Any:
        """`script` by its hash; loaded once more if the server lost it (a restart, SCRIPT FLUSH)."""
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            script.sha = await self._client.script_load(script.script)
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    async def aclose(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        await self._connection.disconnect()

    async def _send_batches(self) -> None:
        try:
            while self._waiters:
                commands, waiters = self._commands, self._waiters
                self._commands, self._waiters = [], []
                await self._round_trip(commands, waiters)
        except BaseException:  # cancelled (shutdown): what was not sent yet fails too
            for waiter in self._waiters:
                _settle(waiter, error=RedisConnectionError("the Redis connection was closed"))
            self._commands, self._waiters = [], []
            raise
        finally:
            self._sender = None

    async def _round_trip(self, commands: list[bytes | memoryview], waiters: list[asyncio.Future[Any]]) -> None:
        """Write `commands`, then give each waiter its reply; on a connection failure, every waiter the error."""
        connection = self._connection
        try:
            await ensure_connected(self._client, connection)
            await connection.send_packed_command(commands)  # an idle connection is PINGed first
            for waiter in waiters:
                try:
                    reply = await connection.read_response()
                except ResponseError as error:  # this command's own error; the connection is fine
                    _settle(waiter, error=error)
                else:
                    _settle(waiter, reply)
        except BaseException as error:  # lost, timed out or cancelled: none of this batch can be trusted
            await connection.disconnect(nowait=True)
            failure = error if isinstance(error, Exception) else RedisConnectionError("the Redis connection was closed")
            for waiter in waiters:
                _settle(waiter, error=failure)
            if not isinstance(error, Exception):
                raise


def _settle(waiter: asyncio.Future[Any], reply: Any = None, *, error: BaseException | None = None) -> None:
    if waiter.done():  # its request went away (client disconnected); the reply is dropped
        return
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(reply)
