"""`core.rqadapter.pipelines` against a real server: the same replies, errors and WATCH behaviour as
redis-py's own `Pipeline`, and the same bytes written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from redis.client import Pipeline

from core.rqadapter.pipelines import FastPipeline, FastRedis, fast_client


def _both(rclient: redis.Redis, transaction: bool, fill: Callable[[Pipeline], None]) -> tuple[Any, Any]:
    """What `fill`'s commands return through redis-py's pipeline, then through the fast one, each on a fresh
    database state (flushed before each)."""
    fast = fast_client(rclient)
    results: list[Any] = []
    for client in (rclient, fast):
        client.flushdb()
        with client.pipeline(transaction=transaction) as pipe:
            fill(pipe)
            try:
                results.append(pipe.execute())
            except redis.ResponseError as error:
                results.append(("error", type(error), str(error)))
    return results[0], results[1]


def _commands(pipe: Pipeline) -> None:
    pipe.hset("h", mapping={"a": 1, "b": "two", "c": 3.5})
    pipe.hgetall("h")
    pipe.zadd("z", {"m": 1.25, "n": 2})
    pipe.zrange("z", 0, -1, withscores=True)
    pipe.xadd("s", {"f": "v"}, maxlen=10)
    pipe.expire("s", 60)
    pipe.persist("h")
    pipe.publish("channel", "message")
    pipe.hmget("h", ["a", "missing"])
    pipe.execute_command("CLIENT SETNAME", "fast-pipeline-test")  # type: ignore[no-untyped-call]
    pipe.eval("return {1, 'x'}", 0)
    pipe.exists("h", "z", "nothing")


@pytest.mark.parametrize("transaction", [True, False])
def test_replies_are_redis_pys(rclient: redis.Redis, transaction: bool) -> None:
    ours, theirs = _both(rclient, transaction, _commands)
    assert isinstance(rclient.pipeline(), Pipeline) and not isinstance(rclient.pipeline(), FastPipeline)
    assert isinstance(fast_client(rclient).pipeline(), FastPipeline)
    assert [type(x) for x in ours] == [type(x) for x in theirs]
    assert ours[1] == {b"a": b"1", b"b": b"two", b"c": b"3.5"}
    assert ours[3] == [(b"m", 1.25), (b"n", 2.0)]
    stable = [i for i in range(len(ours)) if i != 4]  # the stream entry id differs between the two runs
    assert [ours[i] for i in stable] == [theirs[i] for i in stable]


@pytest.mark.parametrize("transaction", [True, False])
def test_errors_are_redis_pys(rclient: redis.Redis, transaction: bool) -> None:
    def fill(pipe: Pipeline) -> None:
        pipe.set("k", "v")
        pipe.lpush("k", "x")  # WRONGTYPE at execution
        pipe.get("k")

    ours, theirs = _both(rclient, transaction, fill)
    assert ours == theirs and ours[0] == "error" and "WRONGTYPE" in ours[2]
    assert rclient.get("k") == b"v"  # the commands around the failed one ran

    def unknown(pipe: Pipeline) -> None:
        pipe.set("k", "v")
        pipe.execute_command("NO-SUCH-COMMAND", "x")  # type: ignore[no-untyped-call]

    ours, theirs = _both(rclient, transaction, unknown)
    assert ours == theirs and ours[0] == "error"
    if transaction:  # a command refused when queued aborts the whole transaction
        assert rclient.get("k") is None


def test_watch_error_and_raise_on_error_false(rclient: redis.Redis) -> None:
    fast = fast_client(rclient)
    with fast.pipeline() as pipe:
        pipe.watch("w")  # type: ignore[no-untyped-call]
        rclient.set("w", "changed")
        pipe.multi()
        pipe.set("w", "mine")
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert rclient.get("w") == b"changed"
    with fast.pipeline() as pipe:
        pipe.set("k", "v")
        pipe.lpush("k", "x")
        pipe.get("k")
        replies = pipe.execute(raise_on_error=False)
    assert replies[0] is True and isinstance(replies[1], redis.ResponseError) and replies[2] == b"v"


def test_a_connection_is_reused_after_errors(rclient: redis.Redis) -> None:
    """Every reply is read before an error is raised: the next pipeline on the pooled connection is in step."""
    fast = fast_client(rclient)
    assert isinstance(fast, FastRedis)
    for _ in range(3):
        with fast.pipeline(transaction=False) as pipe:
            pipe.set("k", "v")
            pipe.lpush("k", "x")
            pipe.incr("n")
            with pytest.raises(redis.ResponseError):
                pipe.execute()
    assert fast.get("n") == b"3" and len(fast.connection_pool._available_connections) == 1
