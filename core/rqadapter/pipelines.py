"""Pipelines that write and read faster than redis-py's, with the same bytes, replies and errors.

A worker's bookkeeping is ~16 commands per job in a few pipelines. redis-py 8.1's `Pipeline` packs
each command through its serializer wrapper (a generator and type checks per command) and reads
each reply through `Redis.parse_response` with a case-insensitive callback lookup: ~6 us per
command, most of what a no-op job costs the worker. `FastPipeline` packs each command with
hiredis directly (the bytes redis-py's blocking connections send anyway) and reads the replies in
one loop, with the same callbacks, the same errors and the same WATCH state. A pipeline holding
anything else (a command whose reply redis-py reads in a special way, WATCH/MULTI/EXEC queued by
hand, a connection that does not pack with hiredis) goes through redis-py's own code.

`fast_client(client)` is a client of the same pool whose pipelines (RQ's included) are `FastPipeline`s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hiredis
import redis
from redis.client import EMPTY_RESPONSE, NEVER_DECODE, Pipeline
from redis.connection import HiredisRespSerializer
from redis.exceptions import ExecAbortError, ResponseError, WatchError

Command = tuple[tuple[Any, ...], dict[str, Any]]

#: Options that change how redis-py reads a reply (then its own code reads it).
_SPECIAL_OPTIONS = frozenset({EMPTY_RESPONSE, NEVER_DECODE})
#: Commands that change a pipeline's WATCH/MULTI state when queued (redis-py tracks that while reading).
_STATE_COMMANDS = frozenset({"WATCH", "UNWATCH", "MULTI", "EXEC", "DISCARD"})


class FastPipeline(Pipeline):
    """redis-py's `Pipeline`, its queued commands sent and read by `_send` and `_read` (see the module)."""

    def _execute_transaction(self, connection: Any, commands: list[Command], raise_on_error: bool) -> list[Any]:
        if not _fast_path(connection, commands):
            return super()._execute_transaction(connection, commands, raise_on_error)
        _send(connection, [("MULTI",), *(args for args, _ in commands), ("EXEC",)])
        errors: list[tuple[int, ResponseError]] = []
        try:
            connection.read_response()
        except ResponseError as error:
            errors.append((0, error))
        for i, (args, _) in enumerate(commands):
            try:
                connection.read_response()
            except ResponseError as error:
                self.annotate_exception(error, i + 1, args)  # type: ignore[no-untyped-call]
                errors.append((i, error))
        try:
            response = connection.read_response()
        except ExecAbortError:
            if errors:
                raise errors[0][1] from None
            raise
        self.watching = False
        if response is None:
            raise WatchError("Watched variable changed.")
        for i, failed in errors:
            response.insert(i, failed)
        if len(response) != len(commands):
            self.connection.disconnect()  # type: ignore[union-attr]
            raise ResponseError("Wrong number of response items from pipeline execution")
        if raise_on_error:
            self.raise_first_error(commands, response)  # type: ignore[no-untyped-call]
        return self._with_callbacks(commands, response)

    def _execute_pipeline(self, connection: Any, commands: list[Command], raise_on_error: bool) -> list[Any]:
        if not _fast_path(connection, commands):
            return super()._execute_pipeline(connection, commands, raise_on_error)  # type: ignore[no-untyped-call,no-any-return]
        _send(connection, [args for args, _ in commands])
        responses: list[Any] = []
        for _ in commands:
            try:
                responses.append(connection.read_response())
            except ResponseError as error:
                responses.append(error)
        responses = self._with_callbacks(commands, responses)
        if raise_on_error:
            self.raise_first_error(commands, responses)  # type: ignore[no-untyped-call]
        return responses

    def _with_callbacks(self, commands: Sequence[Command], replies: list[Any]) -> list[Any]:
        """What `Redis.parse_response` makes of each reply: its command's response callback applied."""
        callbacks = self.response_callbacks
        found: dict[Any, Any] = {}
        data = []
        for reply, (args, options) in zip(replies, commands, strict=True):
            if not isinstance(reply, Exception):
                options.pop("keys", None)
                name = args[0]
                if name not in found:
                    found[name] = callbacks.get(name)  # type: ignore[no-untyped-call]
                callback = found[name]
                if callback is not None:
                    reply = callback(reply, **options)
            data.append(reply)
        return data


def _fast_path(connection: Any, commands: Sequence[Command]) -> bool:
    """Whether `commands` may be sent and read by `FastPipeline` on `connection` (else redis-py's own code)."""
    if type(getattr(connection, "_command_packer", None)) is not HiredisRespSerializer:
        return False
    for args, options in commands:
        name = args[0]
        if not isinstance(name, str) or name.upper() in _STATE_COMMANDS or name.upper().startswith("HIMPORT"):
            return False
        if options and not _SPECIAL_OPTIONS.isdisjoint(options):
            return False
    return True


def _send(connection: Any, commands: Sequence[tuple[Any, ...]]) -> None:
    """`commands` in one write, packed as redis-py's `HiredisRespSerializer` packs them."""
    chunks: list[bytes] = []
    for args in commands:
        name = args[0]
        if " " in name:
            args = (*name.encode().split(), *args[1:])
        try:
            chunks.append(hiredis.pack_command(args))
        except TypeError:  # what hiredis does not take (a bytearray, say): redis-py's packer, and its errors
            chunks.extend(connection.pack_command(*args))
    connection.send_packed_command([b"".join(chunks)])


class FastRedis(redis.Redis):
    """A client whose pipelines are `FastPipeline`s."""

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> FastPipeline:
        return FastPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


def fast_client(client: redis.Redis) -> redis.Redis:
    """A client of `client`'s connection pool (its URL, options, connections) whose pipelines are `FastPipeline`s;
    a client of another class than redis-py's own (a test's fake) is returned as it is."""
    if type(client) is not redis.Redis:
        return client
    fast = FastRedis(connection_pool=client.connection_pool)
    fast.auto_close_connection_pool = client.auto_close_connection_pool
    return fast
