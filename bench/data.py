"""Redis-side figures: round trips and latency of `report()`, bytes per job, flat cost at 100k jobs,
and a profile of the submission path (one module per bench section; this one a little over 300 lines)."""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import statistics
import time
from collections import defaultdict
from typing import Any

import redis
from rq import Queue
from rq.job import Job, _current_job

from app.store import JobStore
from app.submission import Submission, parse_submission
from app.views import job_view
from bench import load
from bench.common import Bench, Figure, wait_until
from core import events
from core.connection import async_redis, sync_redis
from core.meta import MESSAGES, PROGRESS, TYPE
from core.queues import SERIALIZER
from core.rqadapter.jobdata import serialize_meta
from core.rqadapter.redis_private import send_together
from core.settings import Settings
from jobs import progress
from jobs.catalog import registry
from workers.job import RegisteredJob


class CountingConnection(redis.Connection):
    """Counts round trips: every command or pipeline goes out in one `send_packed_command`."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]  # unannotated in redis-py


def report_round_trips(bench: Bench) -> None:
    """`report()`'s round trips and latency; beside it, in alternating blocks of the same run, the unconditional
    HSET of the same meta (with the same announcement) that it sends a script instead of, so that a superseded
    run's report is refused."""
    print("progress: report() round trips and latency", flush=True)
    bench.flush()
    client = redis.Redis.from_url(bench.url, connection_class=CountingConnection)
    queued = Queue("default", connection=client, serializer=SERIALIZER).enqueue_call(
        "jobs.builtin.demo.steps", kwargs={"steps": 1, "delay": 0}
    )
    job = RegisteredJob.fetch(queued.id, connection=client, serializer=SERIALIZER)
    token = _current_job.set(job)
    samples: list[float] = []
    bare: list[float] = []
    calls, block = 2000, 200
    try:
        progress.report(0, "warm-up")
        CountingConnection.sent = 0
        for i in range(calls):
            started = time.perf_counter()
            progress.report(i % 100, f"step {i}/{calls}")
            samples.append(time.perf_counter() - started)
            if i % block == block - 1:
                sent = CountingConnection.sent
                bare += _bare_meta_writes(client, job, block)
                CountingConnection.sent = sent
    finally:
        _current_job.reset(token)
    trips = CountingConnection.sent / calls
    client.close()
    bench.add(Figure("progress", "Redis round trips per report()", trips, "round trips", target="= 1", met=trips == 1))
    latency = statistics.median(samples) * 1000
    p99 = statistics.quantiles(samples, n=100)[98] * 1000
    bench.add(Figure("progress", "report() median latency", latency, "ms", "unconditional HSET of the same meta",
                     statistics.median(bare) * 1000, target="<= 0.3 ms", met=latency <= 0.3,
                     note=f"p99 {p99:.3f} ms over {calls} calls"))  # fmt: skip


def _bare_meta_writes(client: redis.Redis, job: Job, count: int) -> list[float]:
    """Seconds per write of the job's meta by a plain HSET, with its announcement, in one round trip."""
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        send_together(client, ("HSET", job.key, "meta", serialize_meta(job)), events.announcement(job.id))
        samples.append(time.perf_counter() - started)
    return samples


# -- jobs through the service's own submission path ------------------------------------------


async def _enqueue(store: JobStore, submission: Submission) -> Job:
    """What `POST /jobs` does once the body is parsed: build the job and enqueue it (one round trip)."""
    job = store.build_job(
        func_path=submission.spec.func_path, kwargs=submission.args, queue=submission.queue,
        timeout=submission.timeout, retries=submission.retries, description=submission.description,
        meta={TYPE: submission.spec.name, PROGRESS: 0, MESSAGES: []},
    )  # fmt: skip
    await store.enqueue(job, submission.spec.name)
    return job


async def _submit(settings: Settings, count: int, body: dict[str, Any], concurrency: int = 64) -> list[str]:
    store = JobStore(settings, sync_redis(settings), async_redis(settings))
    await store.warm_up()
    ids: list[str] = []
    submission = parse_submission(body, registry, settings)

    async def one() -> None:
        ids.append((await _enqueue(store, submission)).id)

    for start in range(0, count, concurrency):
        await asyncio.gather(*[one() for _ in range(min(concurrency, count - start))])
    await store.aio.aclose()
    store.sync.close()
    return ids


def submit(bench: Bench, count: int, body: dict[str, Any]) -> list[str]:
    return asyncio.run(_submit(Settings(redis_url=bench.url), count, body))


def run_jobs(bench: Bench, expected_finished: int, processes: int = 2) -> None:
    client = bench.client()
    registry_ = Queue("default", connection=client).finished_job_registry
    workers = [bench.worker(f"data-worker-{i}", "--burst") for i in range(processes)]
    for proc in workers:
        proc.wait(600)
    if not wait_until(lambda: registry_.count >= expected_finished, 30):
        raise RuntimeError(f"only {registry_.count}/{expected_finished} jobs finished")
    client.close()


def memory(bench: Bench) -> None:
    print("memory: Redis bytes per finished job with 20 progress messages", flush=True)
    with bench.client() as client:
        configured = int(client.config_get("stream-node-max-bytes")["stream-node-max-bytes"])
        _bytes_per_job(bench, "as `make run` starts the server", 4096)
        client.config_set("stream-node-max-bytes", 4096)
        try:
            _bytes_per_job(bench, "with Redis's default stream-node-max-bytes 4096 (managed servers)", None)
        finally:
            client.config_set("stream-node-max-bytes", configured)
    _bounded(bench)


def _bytes_per_job(bench: Bench, server: str, limit: int | None) -> None:
    bench.flush()
    sample = 300
    submit(bench, sample, {"type": "demo.steps", "args": {"steps": 20, "delay": 0}})
    run_jobs(bench, sample, processes=1)
    client = bench.client()
    by_kind: dict[str, int] = defaultdict(int)
    for key in client.scan_iter(count=1000):
        name = key.decode()
        kind = (
            "job hash" if name.startswith("rq:job:") else "result stream" if name.startswith("rq:results:")
            else "registries and listing indexes (shared)"
        )  # fmt: skip
        by_kind[kind] += int(client.memory_usage(key, samples=0) or 0)
    per_job = sum(by_kind.values()) / sample
    detail = ", ".join(f"{kind} {size / sample:,.0f} B" for kind, size in sorted(by_kind.items()))
    note = f"MEMORY USAGE over all {sample} jobs' keys: {detail}"
    target, met = (f"<= {limit}", per_job <= limit) if limit else ("", None)
    bench.add(Figure("memory", f"Redis bytes per finished job, 20 progress messages, {server}", per_job, "bytes",
                     target=target, met=met, note=note))  # fmt: skip
    client.close()


def _bounded(bench: Bench) -> None:
    bench.flush()
    client = bench.client()
    # Bounded whatever a job reports: the chattiest job possible keeps only the newest N capped messages,
    # and nothing else (every key in Redis is counted, not only the job hash).
    queued = Queue("default", connection=client, serializer=SERIALIZER).enqueue_call("jobs.builtin.demo.noop")
    job = RegisteredJob.fetch(queued.id, connection=client, serializer=SERIALIZER)
    token = _current_job.set(job)
    sizes = []
    try:
        for _ in range(2):
            for i in range(500):
                progress.report(i / 5, "x" * 5000)
            sizes.append(sum(int(client.memory_usage(key, samples=0) or 0) for key in client.scan_iter(count=1000)))
    finally:
        _current_job.reset(token)
    settings = Settings()
    bench.add(Figure("memory", "Redis bytes (all keys) of one job after 500 / 1000 reports of 5,000 characters",
                     sizes[1], "bytes",
                     "after 500 reports", sizes[0], "bounded (ratio 1)", sizes[1] <= sizes[0] * 1.05,
                     f"cap: newest {settings.progress_max_messages} messages of <= "
                     f"{settings.progress_max_message_chars} characters"))  # fmt: skip
    client.close()


# -- flat cost at scale -----------------------------------------------------------------------

PATHS = [
    "/stats",
    "/jobs?limit=50",
    "/jobs?limit=50&status=finished",
    "/jobs?limit=50&status=queued",
    "/jobs?limit=50&status=failed",
    "/jobs?limit=50&queue=default",
    "/jobs?limit=50&type=demo.noop",
    "/jobs?limit=50&queue=default&type=demo.noop",
    "/jobs?limit=50&queue=default&status=finished",
]


#: Rounds of the interleaved measurement, and requests per path per round (after a warm-up).
SCALE_ROUNDS, SCALE_REQUESTS = 3, 100


def _interleaved(bench: Bench, small: dict[str, str], big: dict[str, str]) -> dict[str, tuple[float, float]]:
    """Median latencies label -> (small, big): the two data sets are served side by side (database 1 and
    0) and measured in alternation, round after round, so a load change on this shared machine hits
    both sides alike instead of skewing the ratio."""
    small_url = bench.url.rsplit("/", 1)[0] + "/1"
    procs = [bench.web("web-scale-small", "app.main:app", REDIS_URL=small_url), bench.web("web-scale", "app.main:app")]
    try:
        (_, small_base), (_, big_base) = procs
        for label in small:
            load.latency_ms(small_base + small[label], 30)  # warm-up
            load.latency_ms(big_base + big[label], 30)
        samples: dict[str, tuple[list[float], list[float]]] = {label: ([], []) for label in small}
        for _ in range(SCALE_ROUNDS):
            for label, (small_ms, big_ms) in samples.items():
                small_ms.append(load.latency_ms(small_base + small[label], SCALE_REQUESTS))
                big_ms.append(load.latency_ms(big_base + big[label], SCALE_REQUESTS))
        return {
            label: (statistics.median(small_ms), statistics.median(big_ms))
            for label, (small_ms, big_ms) in samples.items()
        }
    finally:
        for proc, _ in procs:
            bench.stop(proc)


def _last_and_middle(client: redis.Redis) -> tuple[str, str]:
    """The ids of the last job in the default queue and of the one in its middle, as the queue holds them."""
    key = Queue("default", connection=client).key
    last, middle = client.lindex(key, -1), client.lindex(key, client.llen(key) // 2)
    assert isinstance(last, bytes) and isinstance(middle, bytes), (last, middle)  # a bytes client, a full queue
    return last.decode(), middle.decode()


def scale(bench: Bench) -> None:
    print("scale: latency with 150 jobs, then with 100,000 finished + 1,000 failed + 10,000 queued", flush=True)
    bench.flush()
    noop = {"type": "demo.noop"}
    # 50 + 50 + 50: every filtered page measured is as full with 150 jobs as with 111,000 (a ratio of a
    # 9-job page against a 50-job page would measure the page size, not the scale)
    failing = {"type": "demo.steps", "args": {"steps": 1, "delay": 0, "fail_at": 1}, "retries": 0}
    finished_small = submit(bench, 50, noop)
    submit(bench, 50, failing)  # `status=failed` pages hold jobs at both sizes
    run_jobs(bench, 50, processes=1)
    submit(bench, 50, noop)
    with bench.client() as client:
        queued_small = _last_and_middle(client)
        client.swapdb(0, 1)  # the 150 jobs move to database 1; the big set grows in an empty database 0

    started = time.perf_counter()
    big_finished, big_queued = 100_000, 10_000
    finished_big = submit(bench, big_finished, noop)
    submit(bench, 1_000, failing)
    run_jobs(bench, big_finished)
    submit(bench, big_queued, noop)
    with bench.client() as client:
        queued_big = _last_and_middle(client)
    print(f"  populated in {time.perf_counter() - started:.0f} s", flush=True)
    small = {f"GET {path}": path for path in PATHS}
    big = dict(small)
    small["GET /jobs/{id} (finished)"], big["GET /jobs/{id} (finished)"] = (
        f"/jobs/{finished_small[-1]}", f"/jobs/{finished_big[-1]}"
    )  # fmt: skip
    for where, small_id, big_id in zip(("last in", "middle of"), queued_small, queued_big, strict=True):
        label = f"GET /jobs/{{id}} (queued, {where} queue)"
        small[label], big[label] = f"/jobs/{small_id}", f"/jobs/{big_id}"
    try:
        measured = _interleaved(bench, small, big)
    finally:
        with bench.client() as client:
            client.swapdb(0, 1)
            client.flushdb()  # the 150 jobs; database 0 keeps the big set, as before
            client.swapdb(0, 1)
    for name, (small_ms, big_ms) in measured.items():
        bench.add(Figure("scale", f"{name} at 100k + 1k + 10k jobs", big_ms, "ms", "same with 150 jobs", small_ms,
                         "<= 1.5x", big_ms <= 1.5 * small_ms))  # fmt: skip


# -- where the time goes ----------------------------------------------------------------------


def profile_submission(bench: Bench) -> None:
    """cProfile of the POST /jobs work in-process (validation, RQ job build, one EVALSHA, view, JSON)."""
    print("profile: POST /jobs handler work, in-process", flush=True)
    bench.flush()
    settings = Settings(redis_url=bench.url)
    body = {"type": "demo.steps", "args": {"steps": 5, "delay": 0.1}}

    async def many(count: int) -> None:
        store = JobStore(settings, sync_redis(settings), async_redis(settings))
        await store.warm_up()
        from starlette.responses import JSONResponse

        for _ in range(count):
            job = await _enqueue(store, parse_submission(body, registry, settings))
            JSONResponse(job_view(job)).render(job_view(job))
        await store.aio.aclose()

    asyncio.run(many(200))
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(many(2000))
    profiler.disable()
    stats = pstats.Stats(profiler)
    by_area: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, _, func), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        total += tottime
        by_area[_area(filename, func)] += tottime
    top = sorted(by_area.items(), key=lambda item: -item[1])[:8]
    bench.notes["profile"] = "; ".join(f"{area} {share / total:.0%}" for area, share in top)
    bench.notes["profile_per_request_ms"] = f"{total / 2000 * 1000:.2f}"


def _area(filename: str, func: str) -> str:
    for marker, area in (
        ("/redis/asyncio/", "redis.asyncio client (send/parse)"), ("/redis/", "redis-py command packing"),
        ("/rq/", "RQ job build and serialize"), ("pydantic", "pydantic validation"), ("/json/", "json"),
        ("/uuid", "uuid"), ("/starlette/", "Starlette response"), ("/app/", "app code"), ("/jobs/", "jobs code"),
        ("asyncio", "asyncio event loop"), ("uvloop", "asyncio event loop"), ("datetime", "datetime"),
    ):  # fmt: skip
        if marker in filename or marker in func:
            return area
    if filename == "~" and any(word in func for word in ("select", "poll", "recv", "send", "socket")):
        return "socket calls and waiting for Redis's replies"
    return "other (builtins)"
