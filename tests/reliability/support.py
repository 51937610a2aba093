"""Helpers for the fault-injection tests: find work horses, read claims, time recoveries, kill workers at
random, count batch ends."""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from core import keys
from tests.support.procs import ProcessFactory, wait_for


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def horse_of(worker_pid: int) -> int | None:
    """The work horse of a worker: its child in a process group of its own (the scheduler is not)."""
    for child in children(worker_pid):
        try:
            if os.getpgid(child) == child:
                return child
        except ProcessLookupError:
            continue
    return None


def process_exists(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def claims(client: redis.Redis) -> dict[str, str]:
    raw: dict[bytes, bytes] = client.hgetall(keys.CLAIMS)  # type: ignore[assignment]
    return {job_id.decode(): owner.decode() for job_id, owner in raw.items()}


def wait_claims_settled(client: redis.Redis, timeout: float = 10) -> None:
    """Until no claim is left. A job's status is written by the horse (or task) before its worker
    settles the claim, so a job seen `finished` may still be claimed for a moment."""
    wait_for(lambda: claims(client) == {}, timeout, what=f"every claim settled (left: {claims(client)})")


class Chaos:
    """A crashing fleet: `kill_one` SIGKILLs one of the workers (its whole process group, a work horse
    included), picked at random, and starts a new worker in its place at once."""

    def __init__(self, procs: ProcessFactory, count: int, seed: int = 7) -> None:
        self.procs = procs
        self.workers = [procs.worker(wait=False) for _ in range(count)]
        self.rng = random.Random(seed)
        self.kills = 0

    def kill_one(self) -> None:
        victim = self.rng.randrange(len(self.workers))
        self.workers[victim].kill_group()
        self.kills += 1
        self.workers[victim] = self.procs.worker(wait=False)


class BatchEnds:
    """Counts the `end` notices published on every batch's channel (one per end of a batch)."""

    def __init__(self, client: redis.Redis) -> None:
        self.counts: Counter[str] = Counter()
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]  # unannotated in redis-py
        self.pubsub.psubscribe(**{keys.batch_channel("*"): self._seen})
        self.thread = self.pubsub.run_in_thread(sleep_time=0.05, daemon=True)

    def _seen(self, message: dict[str, Any]) -> None:
        if message["data"] == b"end":
            self.counts[message["channel"].decode().removeprefix(keys.batch_channel(""))] += 1

    def close(self) -> None:
        self.thread.stop()
        self.thread.join(5)
        self.pubsub.close()


def lost_attempts(client: redis.Redis) -> int:
    """Jobs that had an attempt lost with its worker (a note in their meta)."""
    job_keys = [key for key in client.scan_iter(match="rq:job:*", count=1000) if key.count(b":") == 2]
    with client.pipeline(transaction=False) as pipe:
        for key in job_keys:
            pipe.hget(key, "meta")
        return sum(b" lost: " in (meta or b"") for meta in pipe.execute())
