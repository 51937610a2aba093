"""Flow control's cost: one worker process (the Procfile's line) draining no-op jobs pushed as POST /jobs pushes
them (RQ's writes and the fair index's), with and without limits, one owner and 100 owners, measured back to back.

`python -m bench.flow` (short: `BENCH_FLOW_JOBS=2000`, default 3000 jobs, 3 rounds). `BENCH_FLOW_BEFORE=<dir>`
(a checkout of the code before flow control, e.g. `git archive <commit> | tar -x -C <dir>`) adds its drain and
Redis commands per job as "before". Prints each drain's rate (jobs/s between 10% and 90% of the jobs ended) and
the Redis commands per job it cost (INFO commandstats deltas: the push, and the worker's whole drain), then the
ratios the targets name.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from rq import Queue
from rq.job import Job
from rq.utils import utcparse

from bench.common import BIN, ROOT, median, wait_until
from core.queues import SERIALIZER
from core.rqadapter.enqueue import enqueue_writes
from core.submitting import initial_meta as initial
from stack.procfile import procfile_command
from stack.redis_server import EmbeddedRedis

JOBS = int(os.environ.get("BENCH_FLOW_JOBS", "3000"))
ROUNDS = int(os.environ.get("BENCH_FLOW_ROUNDS", "3"))


@dataclass
class Drain:
    rate: float
    push_commands: float  # per job
    worker_commands: float  # per job


def commands(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name: int(value["calls"]) for name, value in stats.items()}


def delta(after: dict[str, int], before: dict[str, int], leave_out: dict[str, int] | None = None) -> int:
    total = sum(after.values()) - sum(before.values())
    return total - sum((leave_out or {}).values())


def push(client: redis.Redis, count: int, owners: int) -> list[str]:
    queue = Queue("default", connection=client, serializer=SERIALIZER)
    ids = []
    for start in range(0, count, 500):
        with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(count, start + 500)):
                job = Job.create(
                    "jobs.builtin.demo.noop", connection=client, serializer=SERIALIZER, result_ttl=3600,
                    meta=initial("demo.noop", f"owner-{i % owners}"), origin="default",
                )  # fmt: skip
                for command in enqueue_writes(client, queue, job):
                    pipe.execute_command(*command)  # type: ignore[no-untyped-call]
                ids.append(job.id)
            pipe.execute()
    return ids


def drain(server: EmbeddedRedis, name: str, owners: int, env: dict[str, str], cwd: Path = ROOT) -> Drain:
    client = redis.Redis.from_url(server.url)
    client.flushdb()
    before_push = commands(client)
    ids = push(client, JOBS, owners)
    before = commands(client)
    line = procfile_command("worker")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "RQ_", "WORKER_", "TYPE_", "KEY_"))}
    full_env.update(REDIS_URL=server.url, PYTHONUNBUFFERED="1", PYTHONPATH=str(cwd), **env)
    full_env["PATH"] = f"{BIN}{os.pathsep}{full_env.get('PATH', '')}"
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        f"exec {line}", shell=True, cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    key = Queue("default", connection=client).finished_job_registry.key
    polls = 0

    def finished() -> bool:
        nonlocal polls
        polls += 1
        return int(client.zcard(key)) >= JOBS

    try:
        if not wait_until(finished, 300, interval=0.05):
            log.seek(0)
            raise RuntimeError(f"{name}: only {client.zcard(key)}/{JOBS} finished\n{log.read().decode()[-3000:]}")
    finally:
        proc.terminate()
        proc.wait(20)
    after = commands(client)
    with client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(Job.key_for(job_id), "ended_at")
        ends = sorted(utcparse(raw.decode()).timestamp() for raw in pipe.execute())
    client.close()
    first, last = ends[len(ends) // 10], ends[len(ends) * 9 // 10]
    # Left out of the worker's count: the bench's own polls, and the worker's start-up and shutdown (a few
    # dozen commands whatever the jobs).
    return Drain(
        rate=(len(ends) * 8 // 10) / (last - first),
        push_commands=delta(before, before_push) / JOBS,
        worker_commands=(delta(after, before) - polls - 1) / JOBS,
    )


SCENARIOS: dict[str, tuple[int, dict[str, str]]] = {
    "no limits, 1 owner": (1, {}),
    "limit on another type, 1 owner": (1, {"TYPE_CONCURRENCY": "demo.sleep=2"}),
    "limit on the drained type (1000), 1 owner": (1, {"TYPE_CONCURRENCY": "demo.noop=1000"}),
    "no limits, 100 owners": (100, {}),
    "fair turns off, 1 owner": (1, {"FAIR_TURNS": "false"}),
}


def main() -> None:
    before_tree = os.environ.get("BENCH_FLOW_BEFORE")
    scenarios = dict(SCENARIOS)
    runs: dict[str, list[Drain]] = {name: [] for name in scenarios}
    if before_tree:
        runs["before flow control, 1 owner"] = []
    with tempfile.TemporaryDirectory() as data:
        server = EmbeddedRedis(Path(data)).start()
        try:
            for round_ in range(ROUNDS):
                for name in runs:
                    if name.startswith("before"):
                        found = drain(server, name, 1, {}, Path(before_tree or ROOT))
                    else:
                        owners, env = scenarios[name]
                        found = drain(server, name, owners, env)
                    runs[name].append(found)
                    print(
                        f"round {round_ + 1} {name}: {found.rate:,.0f} jobs/s, Redis commands per job: "
                        f"push {found.push_commands:.1f}, worker {found.worker_commands:.1f}",
                        flush=True,
                    )
        finally:
            server.stop()
    rate = {name: median([d.rate for d in drains]) for name, drains in runs.items()}
    print(f"\n{JOBS} no-op jobs, one worker process (WORKER_CONCURRENCY default), medians of {ROUNDS} rounds:")
    for name, drains in runs.items():
        pushed, worked = median([d.push_commands for d in drains]), median([d.worker_commands for d in drains])
        print(f"  {name}: {rate[name]:,.0f} jobs/s; commands per job: push {pushed:.1f}, worker {worked:.1f}")
    base = rate["no limits, 1 owner"]
    checks = [
        ("limit on a type not running / no limits", rate["limit on another type, 1 owner"] / base, 0.90),
        ("limit on the drained type / no limits", rate["limit on the drained type (1000), 1 owner"] / base, 0.75),
        ("100 owners / 1 owner (fair turns on)", rate["no limits, 100 owners"] / base, 0.80),
        ("fair turns off / on (1 owner)", rate["fair turns off, 1 owner"] / base, 0.0),
    ]
    if before_tree:
        checks.append(("no limits / before flow control", base / rate["before flow control, 1 owner"], 0.0))
    for label, ratio, target in checks:
        verdict = f"  target >= {target:.2f}: {'OK' if ratio >= target else 'MISSED'}" if target else ""
        print(f"  {label}: {ratio:.2f}{verdict}")


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"({time.monotonic() - started:.0f} s)")
