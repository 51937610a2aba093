"""Liveness: every live worker refreshes `jobsvc:alive:<name>`; a worker without one is dead.

The key lives `ABANDONED_JOB_TIMEOUT / 2` and is refreshed about every `ABANDONED_JOB_TIMEOUT / 6`
seconds. Deaths are only declared while this worker's own Redis link has been healthy for a whole
liveness TTL and the Redis server has been up that long: after an outage every live worker gets
time to refresh its key before anyone is called dead.

Every worker of this service, once its first beat is written, also enlists in `jobsvc:workers` (name ->
its birth, in the Redis server's clock): the sweep forgets RQ's records of enlisted workers without a
liveness key, idle ones included, and never those of other RQ workers sharing the server.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis
from redis import Redis
from rq.utils import as_text

from core import keys

#: Hash: name -> birth of every worker of this service not yet forgotten (`core.keys.SERVICE_WORKERS`).
SERVICE_WORKERS = keys.SERVICE_WORKERS

#: Seconds before a liveness beat that Redis refused is tried again.
BEAT_RETRY = 1.0


@dataclass(frozen=True)
class Timing:
    """Every interval derives from `ABANDONED_JOB_TIMEOUT` so that the bound holds."""

    abandoned_job_timeout: float

    @property
    def liveness_ttl(self) -> float:
        return self.abandoned_job_timeout / 2

    @property
    def beat_interval(self) -> float:
        return max(0.5, self.abandoned_job_timeout / 6)

    @property
    def sweep_interval(self) -> float:
        return self.abandoned_job_timeout / 4


class Liveness:
    """One worker's liveness key, and the others' as it sees them."""

    def __init__(self, connection: Redis, worker_name: str, timing: Timing) -> None:
        self.connection = connection
        self.worker_name = worker_name
        self.timing = timing
        self._next_beat = -float("inf")
        self._last_redis_error: float | None = None

    def beat(self, force: bool = False) -> None:
        """Refresh this worker's liveness key (at most every `beat_interval` unless forced)."""
        moment = time.monotonic()
        if not force and moment < self._next_beat:
            return
        # Until this beat lands, the next try comes soon but not at every turn of an idle loop (a full
        # Redis refuses the write while the worker's empty dequeues still succeed).
        self._next_beat = moment + min(BEAT_RETRY, self.timing.beat_interval)
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        self.connection.set(keys.worker_alive(self.worker_name), info, px=int(self.timing.liveness_ttl * 1000))
        self._next_beat = moment + self.timing.beat_interval

    def enlist(self) -> None:
        """Mark this worker as one of the service's (after its first beat), with its birth."""
        seconds, _ = self.connection.time()
        self.connection.hset(SERVICE_WORKERS, self.worker_name, seconds)

    def forget(self) -> None:
        """This worker is leaving: its liveness key goes at once (its claims were settled)."""
        with self.connection.pipeline() as pipe:
            pipe.delete(keys.worker_alive(self.worker_name))
            pipe.hdel(SERVICE_WORKERS, self.worker_name)
            pipe.execute()

    def discharge(self, worker_name: str) -> None:
        """`worker_name` is dead and forgotten: no longer one of the service's workers."""
        self.connection.hdel(SERVICE_WORKERS, worker_name)

    def dead_enlisted(self) -> set[str]:
        """The service's other workers without a liveness key, among those born a whole liveness TTL ago (a
        worker just started may not have written its key yet), in two round trips."""
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.hgetall(SERVICE_WORKERS)
            pipe.time()
            enlisted, (seconds, _) = pipe.execute()
        due = seconds - self.timing.liveness_ttl
        names = [
            as_text(name) for name, born in enlisted.items() if as_text(name) != self.worker_name and float(born) <= due
        ]
        return self.dead_among(names)

    def note_redis_error(self) -> None:
        """Called by the worker whenever Redis could not be reached."""
        self._last_redis_error = time.monotonic()

    def may_declare_deaths(self) -> bool:
        ttl = self.timing.liveness_ttl
        if self._last_redis_error is not None and time.monotonic() - self._last_redis_error < ttl:
            return False
        try:
            uptime = int(self.connection.info("server")["uptime_in_seconds"])
        except (redis.ResponseError, KeyError):  # INFO disabled on some managed servers
            return True
        return uptime >= ttl

    def dead_among(self, worker_names: Sequence[str]) -> set[str]:
        """Those of `worker_names` without a liveness key, in one round trip."""
        if not worker_names:
            return set()
        with self.connection.pipeline(transaction=False) as pipe:
            for name in worker_names:
                pipe.exists(keys.worker_alive(name))
            return {name for name, alive in zip(worker_names, pipe.execute(), strict=True) if not alive}
