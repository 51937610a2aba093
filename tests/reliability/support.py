"""Helpers for the fault-injection tests: find work horses, read claims, time recoveries."""

from __future__ import annotations

import os
from pathlib import Path

import redis

from core import keys
from tests.support.procs import wait_for


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
