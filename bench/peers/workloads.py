"""The four workloads, the same for every system: A (drain queued no-ops), B (I/O-bound jobs at concurrency
50), C (submission rate of one client), D (latency of one job on an idle system).

Every run starts on a flushed server whose append-only file was just rewritten, the worker processes are
started after their jobs are queued (A, B) and timed from the first job seen finished to the last, so
start-up is excluded. Finished jobs are counted by one cheap command polled every 20 ms (see `systems`).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis

from bench.common import Bench, compact, wait_until
from bench.peers.driver import SLEEP
from bench.peers.systems import IO_CONCURRENCY, Clients, System, peer_env

POLL = 0.02
#: Seconds a drain may take before the bench gives up on it.
LIMIT = 300


class Client(Protocol):
    def fill(self, kind: str, count: int) -> None: ...
    def submit_rate(self, count: int) -> float: ...
    def latencies(self, count: int) -> list[float]: ...


@dataclass(frozen=True)
class Drain:
    rate: float  # jobs/s from the first job seen finished to the last
    seconds: float  # the same span
    worker_us: float  # CPU of the worker's process tree per job, between 10% and 90% finished
    redis_us: float  # CPU of the server per job, same span


def start_worker(bench: Bench, system: System, concurrency: int, name: str, **extra: str) -> subprocess.Popen[bytes]:
    """The system's worker: the Procfile's worker line for the service, the peer's own CLI otherwise."""
    if system.command is None:
        return bench.worker(name, WORKER_CONCURRENCY=str(concurrency), **system.env, **extra)
    return bench.spawn(name, system.command(concurrency), **peer_env(bench, system, concurrency), **extra)


def _stat(pid: str) -> tuple[int, float] | None:
    """The parent pid and CPU seconds (user + system) of a process, from /proc/<pid>/stat."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of a process and each of its descendants, by pid (from /proc)."""
    stats = {int(p): stat for p in os.listdir("/proc") if p.isdigit() and (stat := _stat(p)) is not None}
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, (ppid, _) in stats.items() if ppid == parent and child not in tree]
        tree.update(children)
        frontier.extend(children)
    return {p: stats[p][1] for p in tree if p in stats}


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def prepare(bench: Bench, clients: Clients) -> None:
    clients[0].flushall()
    compact(clients[0])


def drain(
    bench: Bench, clients: Clients, system: System, client: Client, kind: str, count: int, concurrency: int, name: str
) -> Drain:
    """Queue `count` jobs of `kind`, start one worker process, time it draining them."""
    prepare(bench, clients)
    client.fill(kind, count)
    proc = start_worker(bench, system, concurrency, name)
    done: Callable[[], int] = lambda: system.done(clients, count)  # noqa: E731

    def at(share: float) -> tuple[int, float, dict[int, float], float]:
        if not wait_until(lambda: done() >= max(1, share * count), LIMIT, interval=POLL):
            raise RuntimeError(f"{name}: only {done()}/{count} finished (see .data/bench/{name}.log)")
        return done(), time.perf_counter(), tree_cpu(proc.pid), redis_cpu(clients[0])

    try:
        first = at(0)
        low, high = at(0.1), at(0.9)
        last = at(1)
    finally:
        bench.stop(proc)
    cpu = sum(seconds - low[2].get(pid, 0.0) for pid, seconds in high[2].items())
    jobs = max(1, high[0] - low[0])
    span = max(1e-6, last[1] - first[1])
    return Drain((last[0] - first[0]) / span, span, 1e6 * cpu / jobs, 1e6 * (high[3] - low[3]) / jobs)


def throughput(bench: Bench, clients: Clients, system: System, client: Client, count: int, name: str) -> Drain:
    """A: `count` queued no-op jobs drained by one worker process at the system's setting."""
    return drain(bench, clients, system, client, "noop", count, system.concurrency, name)


def io_bound(bench: Bench, clients: Clients, system: System, client: Client, count: int, name: str) -> float:
    """B: seconds for `count` jobs waiting 100 ms each at concurrency 50: first to last seen finished, plus
    the first job's own 100 ms (so the ideal is count / 50 x 0.1 s)."""
    return drain(bench, clients, system, client, "sleep", count, IO_CONCURRENCY, name).seconds + SLEEP


def submission(bench: Bench, clients: Clients, client: Client, count: int) -> float:
    """C: jobs/s of one client's sequential enqueue calls (no worker running)."""
    prepare(bench, clients)
    return client.submit_rate(count)


def latency(bench: Bench, clients: Clients, system: System, client: Client, count: int, name: str) -> list[float]:
    """D: milliseconds from enqueueing one no-op to the client seeing it finished, one job at a time, on a
    warm idle worker (the client's own warm-up jobs run first)."""
    prepare(bench, clients)
    proc = start_worker(bench, system, system.concurrency, name)
    try:
        return client.latencies(min(count, system.latency_jobs or count))
    finally:
        bench.stop(proc)
