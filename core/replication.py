"""Waiting until replicas hold a write (`REDIS_MIN_REPLICAS_ACK`), soundly across reconnects and failovers.

Redis's `WAIT n timeout` blocks until `n` replicas acknowledged every write *this connection* made,
and answers at once on a connection that wrote nothing. The submission's own write may have left on
another connection (the web's shared pipelined one), or on one that has since been replaced after a
failover, so a bare `WAIT` could confirm nothing. Here one pipeline, on one connection, asks:

1. `EXISTS key`: the submission's record is on this server (a primary promoted after the write was
   lost would not have it);
2. `PUBLISH`: a command that enters the replication stream without writing any key, so that this
   connection's replication offset is now at or past the submission's;
3. `WAIT n timeout`: `n` replicas reached that offset, so they hold the record.

If the connection drops, redis-py sends the whole pipeline again on a new one, and the three
answers still come from one server. `WAIT` does not make Redis strongly consistent: a write acked
by `n` replicas survives the loss of the primary only if Sentinel promotes one of those replicas
(it prefers the most up to date), and whatever is written after the acknowledgement is as
asynchronous as ever.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from core.keys import PREFIX

#: Channel of the probe that moves a connection's replication offset; nothing subscribes to it.
PROBE_CHANNEL = f"{PREFIX}:channel:replication-probe"


class NotReplicatedError(Exception):
    """The write was not confirmed on enough replicas in time (it may still exist on the primary)."""

    def __init__(self, wanted: int, acked: int, present: bool) -> None:
        self.wanted, self.acked, self.present = wanted, acked, present
        where = f"{acked} of {wanted} replicas acknowledged it" if present else "the primary no longer holds it"
        super().__init__(f"write not confirmed: {where}")


async def confirm_replicated(client: aioredis.Redis, key: str, replicas: int, timeout: float) -> int:
    """Return the number of replicas that hold everything written before this call, `key` included;
    raise `NotReplicatedError` when `key` is missing or fewer than `replicas` acknowledged within
    `timeout` seconds. Redis errors (unreachable, failover) propagate."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.exists(key)
        pipe.publish(PROBE_CHANNEL, b"")
        pipe.execute_command("WAIT", replicas, max(1, round(timeout * 1000)))
        present, _, acked = await pipe.execute()
    if not present or int(acked) < replicas:
        raise NotReplicatedError(replicas, int(acked), bool(present))
    return int(acked)
