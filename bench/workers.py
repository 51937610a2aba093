"""Worker throughput (`demo.noop`) and concurrent I/O-bound jobs, against peers run beside them."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass

import redis
from rq import Queue
from rq.job import Job
from rq.utils import utcparse

from bench.common import ROOT, Bench, Figure, compact, median, wait_until
from bench.peers import envs
from core.queues import SERIALIZER
from stack.procfile import procfile_command

OURS = "workers.Worker"
if OURS not in procfile_command("worker"):
    raise RuntimeError(
        f"the Procfile's worker line no longer names {OURS}: the baselines would run the service's worker"
    )
#: The Procfile's worker line with only the worker class swapped.
SIMPLE = procfile_command("worker").replace(OURS, "rq.worker.SimpleWorker")
DEFAULT_RQ = procfile_command("worker").replace(OURS, "workers.worker.ServiceWorker")
#: Rounds of one-process and two-process drains, alternating.
WORKER_ROUNDS = 5


def enqueue(client: redis.Redis, func: str, count: int, **kwargs: object) -> list[str]:
    queue = Queue("default", connection=client, serializer=SERIALIZER)
    ids = []
    for start in range(0, count, 500):
        with client.pipeline() as pipe:
            for _ in range(min(500, count - start)):
                ids.append(queue.enqueue_call(func, kwargs=dict(kwargs), result_ttl=3600, pipeline=pipe).id)
            pipe.execute()
    return ids


@dataclass
class Drain:
    """A drain's rate, and what it cost the machine per job over its middle 80% (read from /proc)."""

    rate: float
    worker_us: float  # CPU of the worker processes per job (their scheduler children excluded)
    redis_us: float  # CPU of the Redis server per job
    idle: float  # share of the machine's CPU time left idle

    @property
    def ceiling(self) -> float:
        """Jobs/s with all the machine's cores fully spent at this drain's CPU cost per job (workers + Redis)."""
        return (os.cpu_count() or 1) * 1e6 / (self.worker_us + self.redis_us)


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _idle_and_total() -> tuple[int, int]:
    ticks = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return ticks[3] + ticks[4], sum(ticks)


def drain_rate(bench: Bench, name: str, count: int, *commands: str, **env: str) -> Drain:
    """Jobs/s of `commands` (worker processes) draining `count` queued no-op jobs, start-up excluded.

    Timed by the jobs themselves once all are finished (their `ended_at` and `worker_name`, written by
    the workers): from the moment every process had finished a job to the last job's end. Meanwhile
    the bench only reads the finished count every 20 ms (one ZCARD), to read the CPU the workers and
    Redis spent between 10% and 90% of the jobs finished."""
    bench.flush()
    client = bench.client()
    compact(client)
    redis_pid = int(client.info("server")["process_id"])
    ids = enqueue(client, "jobs.builtin.demo.noop", count)
    key = Queue("default", connection=client).finished_job_registry.key
    procs = [bench.worker(f"{name}-{i}", command=command, **env) for i, command in enumerate(commands)]

    def snapshot(share: float) -> tuple[int, float, float, tuple[int, int]]:
        if not wait_until(lambda: client.zcard(key) >= share * count, 180, interval=0.02):
            raise RuntimeError(f"{name}: only {client.zcard(key)}/{count} finished")
        workers_cpu = sum(_cpu_seconds(proc.pid) for proc in procs)
        return client.zcard(key), workers_cpu, _cpu_seconds(redis_pid), _idle_and_total()

    try:
        first, last = snapshot(0.1), snapshot(0.9)
        if not wait_until(lambda: client.zcard(key) >= count, 180, interval=0.1):
            raise RuntimeError(f"{name}: only {client.zcard(key)}/{count} finished")
    finally:
        for proc in procs:
            bench.stop(proc)
    with client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hmget(Job.key_for(job_id), "ended_at", "worker_name")
        rows = pipe.execute()
    client.close()
    ends = sorted((utcparse(ended.decode()).timestamp(), worker) for ended, worker in rows)
    firsts: dict[bytes, float] = {}
    for moment, worker in ends:
        firsts.setdefault(worker, moment)
    if len(firsts) < len(procs):
        raise RuntimeError(f"{name}: {len(firsts)} of {len(procs)} worker processes finished any job")
    start = max(firsts.values())
    timed = [moment for moment, _ in ends if moment > start]
    jobs = last[0] - first[0]
    idle, total = last[3][0] - first[3][0], last[3][1] - first[3][1]
    return Drain(
        rate=len(timed) / (timed[-1] - start),
        worker_us=1e6 * (last[1] - first[1]) / jobs,
        redis_us=1e6 * (last[2] - first[2]) / jobs,
        idle=idle / total if total else 0.0,
    )


def celery_rate(bench: Bench, count: int) -> float | None:
    python = envs.python_env("celery") / "python"
    bench.flush()
    base = bench.url.rsplit("/", 1)[0]
    env = {"BENCH_CELERY_BROKER": f"{base}/1", "BENCH_CELERY_BACKEND": f"{base}/2", "PYTHONPATH": str(ROOT)}
    broker, backend = redis.Redis.from_url(f"{base}/1"), redis.Redis.from_url(f"{base}/2")
    broker.flushdb()
    backend.flushdb()
    compact(broker)
    subprocess.run([str(python), "-m", "bench.celery_app", str(count)], cwd=ROOT, env=bench.env(**env), check=True)
    proc = bench.spawn(
        "celery", f"{python.parent}/celery -A bench.celery_app worker --pool=solo --concurrency=1 --loglevel=warning "
        "--without-gossip --without-mingle --without-heartbeat", **env,
    )  # fmt: skip
    try:
        if not wait_until(lambda: backend.dbsize() > 0, 60):
            raise RuntimeError("celery: no task finished")
        first, started = backend.dbsize(), time.perf_counter()
        if not wait_until(lambda: backend.dbsize() >= count, 120):
            raise RuntimeError(f"celery: only {backend.dbsize()}/{count} finished")
        return (count - first) / (time.perf_counter() - started)
    finally:
        bench.stop(proc)
        broker.flushdb()
        backend.flushdb()
        broker.close()
        backend.close()


def throughput(bench: Bench) -> None:
    print("workers: demo.noop throughput (start-up excluded)", flush=True)
    n = int(3000 * bench.seconds / 4)
    simple = drain_rate(bench, "simple", n // 2, SIMPLE).rate
    # One and two processes alternate, round after round, and each round's two drains are compared:
    # this VM's speed drifts by ±20% within minutes (the CPU per job of identical drains with it), and
    # a pair run back to back shares the drift that a ratio of medians over all rounds would not.
    ones: list[Drain] = []
    twos: list[Drain] = []
    for round_ in range(WORKER_ROUNDS):
        ones.append(drain_rate(bench, f"procfile-1-{round_}", n * 2, ""))
        twos.append(drain_rate(bench, f"procfile-2-{round_}", n * 3, "", ""))
    ours = median([d.rate for d in ones])
    one_cost = sorted(ones, key=lambda d: d.rate)[len(ones) // 2]
    ratios = [two.rate / one.rate for one, two in zip(ones, twos, strict=True)]
    pair = ratios.index(median(ratios))
    paired_one, two_cost = ones[pair], twos[pair]
    celery = celery_rate(bench, n)
    line = "one Procfile worker process (ConcurrentWorker, WORKER_CONCURRENCY default)"
    bench.add(
        Figure("workers", line, ours, "jobs/s", "rq worker -w SimpleWorker", simple, ">= 2x", ours >= 2 * simple,
               f"median of 3; per job {one_cost.worker_us:.0f} us worker CPU, {one_cost.redis_us:.0f} us Redis CPU")
    )  # fmt: skip
    if celery is not None:
        bench.add(
            Figure("workers", line, ours, "jobs/s", "Celery --pool=solo, Redis result backend", celery, ">= 1x",
                   ours >= celery)
        )  # fmt: skip
    two, one = two_cost.rate, paired_one.rate
    bench.add(
        Figure("workers", "two Procfile worker processes", two, "jobs/s", "one process, same round", one, ">= 1.8x",
               two >= 1.8 * one,
               f"the round with the median ratio of {WORKER_ROUNDS}; per job {two_cost.worker_us:.0f} us worker CPU, "
               f"{two_cost.redis_us:.0f} us Redis CPU, {100 * two_cost.idle:.0f}% of the {os.cpu_count()} cores idle; "
               f"at that cost the cores, fully used, would give {two_cost.ceiling:,.0f} jobs/s = "
               f"{two_cost.ceiling / one:.2f}x one process")
    )  # fmt: skip
    bench.notes["workers_runs"] = "; ".join(
        f"{label}: {', '.join(f'{d.rate:,.0f}' for d in runs)} jobs/s"
        for label, runs in (("one process", ones), ("two processes", twos))
    ) + (
        f"; two / one per round: {', '.join(f'{ratio:.2f}' for ratio in ratios)}; ratio of the medians "
        f"{median([d.rate for d in twos]) / ours:.2f}"
    )


def io_bound(bench: Bench) -> None:
    print("workers: 200 jobs waiting 1 s on I/O each (100 asyncio.sleep, 100 time.sleep)", flush=True)
    bench.flush()
    client = bench.client()
    queue = Queue("default", connection=client, serializer=SERIALIZER)
    with client.pipeline() as pipe:
        for i in range(200):
            mode = "async" if i % 2 else "sync"
            queue.enqueue_call(
                "jobs.builtin.demo.sleep", kwargs={"seconds": 1, "mode": mode}, result_ttl=3600, pipeline=pipe
            )
        pipe.execute()
    registry = queue.finished_job_registry
    started = time.perf_counter()
    proc = bench.worker("io-concurrent", WORKER_CONCURRENCY="50")
    ok = wait_until(lambda: registry.count >= 200, 60, interval=0.02)
    elapsed = time.perf_counter() - started
    bench.stop(proc)
    if not ok:
        raise RuntimeError(f"io: only {registry.count}/200 finished")

    # The default `rq worker` (a forked horse per job, one at a time) on a sample, extrapolated.
    bench.flush()
    sample = 4
    with client.pipeline() as pipe:
        for _ in range(sample):
            queue.enqueue_call(
                "jobs.builtin.demo.sleep", kwargs={"seconds": 1, "mode": "sync"}, result_ttl=3600, pipeline=pipe
            )
        pipe.execute()
    t0 = time.perf_counter()
    proc = bench.worker("io-default", command=DEFAULT_RQ)
    wait_until(lambda: registry.count >= sample, 60, interval=0.02)
    per_job = (time.perf_counter() - t0) / sample
    bench.stop(proc)
    client.close()
    bench.add(
        Figure("workers", "200 x 1 s I/O jobs, one process, WORKER_CONCURRENCY=50 (incl. start-up)", elapsed, "s",
               "default rq worker (forking), 200 x measured per-job time", per_job * 200, "<= 8 s", elapsed <= 8,
               f"baseline measured on {sample} jobs, extrapolated")
    )  # fmt: skip
