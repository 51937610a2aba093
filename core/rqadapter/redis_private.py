"""redis-py's connections driven below its public client: where a round trip or a task per command is saved.

- `hiredis_packing`: asyncio connections that pack commands with hiredis and write without a task.
- `send_together`: several commands in one write on a pooled blocking connection, without a pipeline.
- `dedicated_connection` / `ensure_connected`: a connection of a client's own kind, outside its pool,
  checked the way the pool checks its own (for `app.pipelining`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
import redis
import redis.asyncio as aioredis
from redis.exceptions import ResponseError


def send_together(client: redis.Redis, *commands: tuple[Any, ...]) -> list[Any]:
    """`commands` in one write, their replies (returned) in one read: one round trip, on a pooled connection.

    What a redis-py pipeline sends, without its command stack, callbacks and instrumentation
    (~35 us of a progress report's ~250 us). Every reply is read before an error is raised, so the
    connection goes back to the pool in step; a connection that failed is closed first."""
    pool = client.connection_pool
    connection: Any = pool.get_connection()
    try:
        connection.send_packed_command(connection.pack_commands(commands))
        replies = []
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except ResponseError as error:
                replies.append(error)
    except BaseException:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


def dedicated_connection(client: aioredis.Redis) -> Any:
    """A new connection like the pool's own (class and options: TLS, password, database, timeouts), not pooled."""
    pool = client.connection_pool
    return pool.connection_class(**pool.connection_kwargs)


async def ensure_connected(client: aioredis.Redis, connection: Any) -> None:
    """redis-py's own check, as its pool makes at checkout: connect, or replace a connection the server
    closed while it was idle (a restart, an idle timeout), before anything is written on it."""
    await client.connection_pool.ensure_connection(connection)


_PACKING: dict[type[Any], type[Any]] = {}


def hiredis_packing(base: type[Any]) -> type[Any]:
    """`base` (plain, TLS or unix socket) packing commands with hiredis's C packer.

    redis-py's blocking connections already pack with hiredis; its asyncio ones join bytes in
    Python, re-copying the buffer for every argument: ~60 us for a submission's ~90 arguments,
    against ~5 us here. The bytes sent are the same. Command names with a space ('CLIENT SETNAME')
    and arguments hiredis does not take go through redis-py's own packer (and its errors)."""
    if base in _PACKING or base in _PACKING.values():
        return _PACKING.get(base, base)

    class HiredisPacking(base):  # type: ignore[misc]
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            """redis-py wraps every write in `asyncio.wait_for` when a socket timeout is set, which
            makes a task per command. Here the bytes go straight to the transport; only a write
            the kernel did not take at once waits to drain, bounded by the same timeout."""
            if check_health and self.is_connected:
                await self.check_health()
            writer = self._writer
            if writer is None or writer.transport.is_closing() or not self.socket_timeout:
                await super().send_packed_command(command, check_health=False)
                return
            writer.writelines([command] if isinstance(command, bytes) else command)
            if writer.transport.get_write_buffer_size():
                try:
                    await asyncio.wait_for(writer.drain(), self.socket_timeout)
                except TimeoutError:
                    await self.disconnect(nowait=True)
                    raise redis.TimeoutError("Timeout writing to socket") from None
                except OSError as exc:
                    await self.disconnect(nowait=True)
                    raise redis.ConnectionError(f"Error while writing to socket: {exc}") from exc

        def pack_command(self, *args: Any) -> list[bytes]:
            name = args[0]
            if (b" " if isinstance(name, bytes) else " ") in name:
                return super().pack_command(*args)  # type: ignore[no-any-return]
            try:
                return [hiredis.pack_command(args)]
            except TypeError:
                return super().pack_command(*args)  # type: ignore[no-any-return]

    HiredisPacking.__name__ = HiredisPacking.__qualname__ = f"HiredisPacking{base.__name__}"
    _PACKING[base] = HiredisPacking
    return HiredisPacking
