"""Schedules: fire lag (due time -> queued) with 1,000 active schedules, and the scheduler's cost per
idle second with 1,000 schedules (Redis commands and CPU), with the Procfile's worker processes.

    python -m bench.schedules [idle] [lag]   (its own Redis; prints the figures)
    python -m bench schedules            (as a section of the bench)
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from rq.job import Job

from bench.common import Bench, Figure, wait_until
from core import keys
from core.queues import SERIALIZER
from core.schedules.model import Definition
from core.schedules.store import ScheduleStore
from core.settings import Settings
from stack.redis_server import EmbeddedRedis
from workers.periodic import TICK_INTERVAL, PeriodicScheduler

SCHEDULES = 1000
WORKERS = 2
LAG_SECONDS = 20
IDLE_SECONDS = 10


def definition(every: int, created_at: float) -> Definition:
    return Definition(
        type="demo.noop", args={}, queue="default", timeout=60, retries=0, description="bench",
        every=every, overlap=True, owner="bench", created_at=created_at,
    )  # fmt: skip


def _schedule_commands(bench: Bench, seconds: float) -> tuple[int, int]:
    """(commands naming a schedule key, all commands) that Redis ran during `seconds`, seen by MONITOR."""
    ours = every = 0
    with bench.client() as client, client.monitor() as monitor:
        end = time.time() + seconds
        for entry in monitor.listen():
            if time.time() >= end:
                break
            command = str(entry.get("command", ""))
            if command.upper().startswith(("MONITOR", "PING")):
                continue
            every += 1
            ours += keys.SCHEDULES_DUE in command or f"{keys.PREFIX}:schedule:" in command
    return ours, every


def idle_cost(bench: Bench) -> None:
    """1,000 schedules none of which is due: what the workers' scheduler costs per second."""
    bench.flush()
    with bench.client() as client:
        store = ScheduleStore(client)
        now = time.time()
        for _ in range(SCHEDULES):
            store.create(definition(3600, now), now=now)
        ticker = PeriodicScheduler(client, Settings(redis_url=bench.url))
        ticker.tick()  # declarations, script loading
        rounds = 2000
        started = time.process_time()
        for _ in range(rounds):
            ticker.tick()
        per_tick_us = (time.process_time() - started) / rounds * 1e6
    workers = [bench.worker(f"sched-idle-{n}") for n in range(WORKERS)]
    with bench.client() as client:
        wait_until(lambda: client.scard("rq:workers") >= WORKERS, 30)
    time.sleep(2)
    ours, every = _schedule_commands(bench, IDLE_SECONDS)
    for proc in workers:
        bench.stop(proc)
    polls = ours / IDLE_SECONDS / WORKERS
    bench.add(Figure("schedules", f"scheduler commands per idle second per worker ({SCHEDULES} schedules; "
                     f"all commands of the idle stack: {every / IDLE_SECONDS:.1f}/s)", polls,
                     "cmd/s", target=f"<= {1 / TICK_INTERVAL:.0f}", met=polls <= 1 / TICK_INTERVAL + 0.5,
                     note="each a ZRANGEBYSCORE of the due head: O(log N), empty reply"))  # fmt: skip
    cpu_share = per_tick_us * (1 / TICK_INTERVAL) / 1e6 * 100
    bench.add(Figure("schedules", "scheduler CPU per idle tick (client side, in-process)", per_tick_us, "us",
                     note=f"{cpu_share:.3f}% of a core per worker at {1 / TICK_INTERVAL:.0f} ticks/s"))  # fmt: skip


def fire_lag(bench: Bench, *, spread: bool) -> None:
    """1,000 `every: 10` schedules (due times spread over the interval, or all at the same instant):
    the lag from each run's due time to its `enqueued_at`, over `LAG_SECONDS`."""
    bench.flush()
    workers = [bench.worker(f"sched-lag-{n}") for n in range(WORKERS)]
    with bench.client() as client:
        wait_until(lambda: client.scard("rq:workers") >= WORKERS, 30)
        store = ScheduleStore(client)
        base = time.time() + 2
        for _ in range(SCHEDULES):
            anchor = base + (random.uniform(0, 10) if spread else 0) - 10
            store.create(definition(10, anchor), now=time.time())
        end = time.time() + LAG_SECONDS
        wait_until(lambda: time.time() >= end, LAG_SECONDS + 5, interval=0.5)
        for proc in workers:
            bench.stop(proc)
        ids = [member.decode() for member in client.zrange(keys.INDEX_ALL, 0, -1)]
        jobs = [job for job in Job.fetch_many(ids, connection=client, serializer=SERIALIZER) if job is not None]
    lags = sorted(
        (job.enqueued_at.timestamp() - datetime.fromisoformat(job.meta["scheduled_for"]).timestamp())
        for job in jobs
        if job.enqueued_at is not None
    )
    dues = [(job.meta["schedule_id"], job.meta["scheduled_for"]) for job in jobs]
    duplicates = len(dues) - len(set(dues))
    p99 = lags[int(len(lags) * 0.99) - 1] if lags else float("nan")
    label = "spread over 10 s" if spread else "all due at the same instant"
    bench.add(Figure("schedules", f"fire lag p99, {SCHEDULES} `every: 10` schedules {label} ({len(lags)} runs, "
                     f"median {statistics.median(lags):.3f} s, max {lags[-1]:.3f} s, {duplicates} duplicates)",
                     p99, "s", target="<= 1 s", met=p99 <= 1.0 and duplicates == 0))  # fmt: skip


def run(bench: Bench, parts: tuple[str, ...] = ("idle", "lag")) -> None:
    if "idle" in parts:
        idle_cost(bench)
    if "lag" in parts:
        fire_lag(bench, spread=True)
        fire_lag(bench, spread=False)


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        server = EmbeddedRedis(Path(scratch)).start()
        bench = Bench(server, seconds=4)
        try:
            run(bench, tuple(sys.argv[1:]) or ("idle", "lag"))
        finally:
            bench.stop_all()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
