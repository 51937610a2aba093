"""Redis dies: queued jobs survive a kill -9 (append-only file), the web says 503, workers wait it out."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from core import keys
from stack.redis_server import EmbeddedRedis
from tests.factories import steps_job
from tests.integration.test_spine import submit, view, wait_status
from tests.reliability.conftest import ABANDONED_JOB_TIMEOUT, RELIABILITY_ENV, WORKER_MODES
from tests.support.procs import Proc, ProcessFactory, wait_for
from tests.support.replies import text

#: The issue's bound: workers must survive an outage at least this long.
OUTAGE = 62.0


@contextlib.contextmanager
def outage_stack(tmp_path: Path, **server_options: Any) -> Iterator[tuple[EmbeddedRedis, ProcessFactory]]:
    """A Redis server of the test's own (to kill and restart) and a factory of processes using it."""
    server = EmbeddedRedis(tmp_path / "valkey", **server_options).start()
    factory = ProcessFactory(server.url, tmp_path, RELIABILITY_ENV)
    try:
        yield server, factory
    finally:
        factory.stop_all()
        server.stop()


def test_kill9_keeps_200_queued_jobs_and_the_web_answers_503_meanwhile(tmp_path: Path) -> None:
    with outage_stack(tmp_path) as (server, factory):
        _, url = factory.web()
        with httpx.Client(base_url=url, timeout=10) as api:
            ids = {submit(api, steps_job(steps=1))["id"] for _ in range(200)}
            server.kill()

            for method, path in (("POST", "/jobs"), ("GET", "/readyz")):
                started = time.monotonic()
                response = api.request(method, path, json=steps_job() if method == "POST" else None)
                assert response.status_code == 503, response.text
                assert response.headers["content-type"] == "application/problem+json"
                assert time.monotonic() - started < 3

            server.start()  # same port, same data directory: the append-only file is replayed
            client = redis.Redis.from_url(server.url)
            assert client.llen("rq:queue:default") == 200
            assert {text(key).removeprefix("rq:job:") for key in client.keys("rq:job:*")} == ids
            assert client.zcard("jobsvc:index:all") == 200  # nothing half-written by the refused POST
            wait_for(lambda: api.get("/readyz").status_code == 200, 10, what="web to recover")

            factory.worker()
            factory.worker()
            wait_for(lambda: client.zcard("rq:finished:default") == 200, 120, interval=0.5, what="200 jobs finished")
            assert all(view(api, job_id)["status"] == "finished" for job_id in list(ids)[:20])
            assert api.post("/jobs", json=steps_job()).status_code == 202
            client.close()


@pytest.mark.parametrize("concurrency", list(WORKER_MODES.values()), ids=list(WORKER_MODES))
def test_workers_survive_a_long_outage_and_resume_without_restart(tmp_path: Path, concurrency: str) -> None:
    with outage_stack(tmp_path) as (server, factory):
        _, url = factory.web()
        worker = factory.worker(WORKER_CONCURRENCY=concurrency)
        client = redis.Redis.from_url(server.url)
        (worker_key,) = (text(key) for key in client.smembers("rq:workers"))
        with httpx.Client(base_url=url, timeout=10) as api:
            before = submit(api, steps_job(steps=1))
            wait_status(api, before["id"], {"finished"})

            server.kill()
            assert_stays_up(worker, OUTAGE)
            assert "Redis unreachable" in worker.log()  # it noticed, and waited
            server.start()

            wait_for(lambda: api.get("/readyz").status_code == 200, 10, what="web to recover")
            after = submit(api, steps_job(steps=1))
            assert wait_status(api, after["id"], {"finished"}, timeout=30)["result"] == {"steps": 1, "attempt": 1}
            assert worker.alive()
            ran_on = client.hget(f"rq:job:{after['id']}", "worker_name")
            assert ran_on is not None and worker_key.endswith(text(ran_on))  # the same worker, not a new one
            assert "quitting" not in worker.log()
        client.close()


def test_startup_warns_about_a_redis_without_persistence(tmp_path: Path) -> None:
    with outage_stack(tmp_path, appendonly=False, extra_args=("--maxmemory-policy", "allkeys-lru")) as (_, factory):
        worker = factory.worker()
        web, _ = factory.web()
        for proc in (worker, web):
            wait_for(lambda proc=proc: "maxmemory-policy is 'allkeys-lru'" in proc.log(), 10, what="warning")  # type: ignore[misc]
            assert "Redis has no persistence (appendonly no, no snapshots)" in proc.log()


@pytest.mark.parametrize("concurrency", list(WORKER_MODES.values()), ids=list(WORKER_MODES))
def test_a_job_running_when_redis_dies_is_retried_once_it_returns(tmp_path: Path, concurrency: str) -> None:
    """Redis `kill -9` mid-job: the attempt's outcome cannot be saved; once Redis is back the worker
    (still the same process) settles it: the lost attempt is retried, and nothing stays claimed."""
    with outage_stack(tmp_path) as (server, factory):
        _, url = factory.web()
        worker = factory.worker(WORKER_CONCURRENCY=concurrency)
        with httpx.Client(base_url=url, timeout=10) as api:
            job = submit(api, steps_job(steps=12, delay=0.25, retries=1))
            wait_for(lambda: view(api, job["id"])["progress"] > 0, 20, interval=0.05, what="the job running")
            wait_on_disk(server)  # the started job is in the append-only file
            server.kill()
            # The attempt ends while Redis is away; its outcome waits, the worker retrying at the capped backoff.
            wait_for(lambda: retry_delays(worker, "could not record").count(BACKOFF_CAP) >= 3, 30, what="backoff")
            assert worker.alive(), worker.log()
            # it backs off while the outcome waits (0.25 s, doubling), instead of retrying in a busy loop
            delays = retry_delays(worker)
            assert delays[0] == 0.25 and max(delays) == BACKOFF_CAP, delays
            assert len(delays) < 60, f"{len(delays)} retries logged"
            server.start()
            wait_for(lambda: api.get("/readyz").status_code == 200, 10, what="web to recover")

            done = wait_status(api, job["id"], {"finished", "failed"}, timeout=60)
            assert done["status"] == "finished", done
            assert done["result"] == {"steps": 12, "attempt": 2}  # the attempt during the outage was lost
            assert worker.alive()
            client = redis.Redis.from_url(server.url)
            wait_for(lambda: client.hlen(keys.CLAIMS) == 0, 10, what="the claim released")  # just after finished
            client.close()


@pytest.mark.parametrize("concurrency", list(WORKER_MODES.values()), ids=list(WORKER_MODES))
def test_a_job_running_when_redis_fills_up_is_retried_once_memory_is_freed(tmp_path: Path, concurrency: str) -> None:
    """Redis reaches `maxmemory` (noeviction) mid-job: the job's next `report()` is refused, so the attempt
    fails, and its outcome cannot be saved either; the worker waits as in an outage, records it once memory
    is freed, and the retry finishes. The web refuses submissions meanwhile (503) and still answers reads."""
    with outage_stack(tmp_path) as (server, factory):
        _, url = factory.web()
        worker = factory.worker(WORKER_CONCURRENCY=concurrency)
        client = redis.Redis.from_url(server.url)
        with httpx.Client(base_url=url, timeout=10) as api:
            job = submit(api, steps_job(steps=12, delay=0.25, retries=1))
            wait_for(lambda: view(api, job["id"])["progress"] > 0, 20, interval=0.05, what="the job running")
            client.config_set("maxmemory", 1)  # the embedded server runs with noeviction, as the service asks
            try:
                # The attempt failed (its report() was refused) and its outcome was refused too: the worker waits.
                wait_for(lambda: retry_delays(worker, "could not record"), 20, what="the outcome refused, retried")
                assert worker.alive(), worker.log()
                assert api.post("/jobs", json=steps_job()).status_code == 503
                assert view(api, job["id"])["status"] == "started"  # the failed attempt is not recorded yet
            finally:
                client.config_set("maxmemory", 0)
            done = wait_status(api, job["id"], {"finished", "failed"}, timeout=60)
            assert done["status"] == "finished", done
            assert done["result"] == {"steps": 12, "attempt": 2}  # the attempt cut short by the full Redis
            assert worker.alive()
            assert 0 < worker.log().count("maxmemory") < 60, worker.log()  # backed off, not a busy loop
            # a forking worker releases the claim once its horse is gone, just after the job says finished
            wait_for(lambda: client.hlen(keys.CLAIMS) == 0, 10, what="the claim released")
        client.close()


@pytest.mark.parametrize("concurrency", list(WORKER_MODES.values()), ids=list(WORKER_MODES))
def test_sigterm_during_an_outage_stops_an_idle_worker(tmp_path: Path, concurrency: str) -> None:
    """A platform restart while Redis is down (SIGTERM, as Heroku and Render send it): the worker, waiting
    for Redis, leaves with code 0 instead of retrying until it is killed."""
    with outage_stack(tmp_path) as (server, factory):
        worker = factory.worker(WORKER_CONCURRENCY=concurrency)
        client = redis.Redis.from_url(server.url)
        # Its scheduler holds every queue's lock: start-up is over, the signal handlers are in place (they are
        # installed once the scheduler started; a kill between two locks would catch the worker before that).
        locks = [f"rq:scheduler-lock:{queue}" for queue in ("high", "default", "low")]
        wait_for(lambda: client.exists(*locks) == len(locks), 30, what="the worker's scheduler")
        client.close()
        server.kill()
        wait_for(lambda: "unreachable" in worker.log(), 30, what="the worker to miss Redis, log:\n" + worker.log())
        worker.signal(signal.SIGTERM)
        assert_exits_cleanly(worker)


def test_sigterm_during_an_outage_requeues_the_interrupted_job_once_redis_returns(tmp_path: Path) -> None:
    """Redis is down when the platform stops a concurrent worker mid-job: the job is interrupted at the end
    of the shutdown grace, and the worker waits for Redis to requeue it (no retry spent: the job has none)
    before it exits 0; the next worker runs it to the end."""
    with outage_stack(tmp_path) as (server, factory):
        _, url = factory.web()
        worker = factory.worker(WORKER_CONCURRENCY="20", WORKER_SHUTDOWN_GRACE="1")
        with httpx.Client(base_url=url, timeout=10) as api:
            # A job that does not touch Redis while it runs (one that does fails on its own when Redis goes).
            job = _running_job_on_disk(api, server, {"type": "demo.sleep", "args": {"seconds": 8}, "retries": 0})
            server.kill()
            worker.signal(signal.SIGTERM)
            wait_for(lambda: "shutting down, requeueing job" in worker.log(), 10, what="the job interrupted")
            # Two tries since: it has tried to record the requeue, in vain, and is waiting for Redis.
            wait_for(lambda: len(retry_delays(worker, "requeueing job")) >= 2, 10, what="tries to record the requeue")
            assert worker.alive(), worker.log()  # its outcome (requeue) is not recorded yet

            server.start()
            assert_exits_cleanly(worker)
            wait_for(lambda: api.get("/readyz").status_code == 200, 10, what="web to recover")
            assert view(api, job["id"])["status"] == "queued"
            factory.worker(WORKER_CONCURRENCY="20")
            done = wait_status(api, job["id"], {"finished", "failed"}, timeout=60)
            assert done["status"] == "finished", done
            _assert_no_claims(server.url)


def test_a_second_signal_during_an_outage_exits_and_leaves_the_job_to_the_sweep(tmp_path: Path) -> None:
    """The same, but the worker is told twice: it exits at once; the job, still claimed by it, is recovered
    by the next worker's abandoned-job sweep (as after a crash: one attempt lost) and runs to the end."""
    with outage_stack(tmp_path) as (server, factory):
        _, url = factory.web()
        worker = factory.worker(WORKER_CONCURRENCY="20", WORKER_SHUTDOWN_GRACE="30")
        with httpx.Client(base_url=url, timeout=10) as api:
            job = _running_job_on_disk(api, server, steps_job(steps=40, delay=0.25, retries=1))
            server.kill()
            worker.signal(signal.SIGTERM)
            # A second signal within a second counts as the same one: send it once the worker's own log shows
            # that more than a second has passed since it took the first.
            wait_for(lambda: logged_seconds_after(worker, "warm shutdown") > 1.2, 10, what="the first signal aged")
            worker.signal(signal.SIGTERM)
            assert_exits_cleanly(worker)
            assert "left to the abandoned-job sweep" in worker.log()

            server.start()
            wait_for(lambda: api.get("/readyz").status_code == 200, 10, what="web to recover")
            factory.worker(WORKER_CONCURRENCY="20")
            done = wait_status(api, job["id"], {"finished", "failed"}, timeout=90)
            assert done["status"] == "finished", done
            assert done["result"]["attempt"] == 2  # the interrupted attempt counts as lost
            _assert_no_claims(server.url)


def _running_job_on_disk(api: httpx.Client, server: EmbeddedRedis, body: dict[str, Any]) -> dict[str, Any]:
    job = submit(api, body)
    wait_for(lambda: view(api, job["id"])["status"] == "started", 20, interval=0.05, what="the job running")
    wait_on_disk(server)  # the started job and its claim are in the append-only file
    return job


def wait_on_disk(server: EmbeddedRedis) -> None:
    """Until everything the server took so far is in its append-only file, which a `kill -9` of the server
    keeps (the kernel holds what was written): a marker written now is found there. With `appendfsync everysec`
    the server may hold writes back for a moment while a background fsync runs."""
    marker = f"aof-marker-{uuid.uuid4().hex}".encode()
    client = redis.Redis.from_url(server.url)
    try:
        client.set("jobsvc:test:aof-marker", marker)
    finally:
        client.close()

    def written() -> bool:
        return any(marker in path.read_bytes() for path in server.data_dir.rglob("*.aof") if path.is_file())

    wait_for(written, 10, what="the append-only file to catch up")


#: The longest a worker waits between two tries while Redis is away: its liveness beat (ABANDONED_JOB_TIMEOUT / 6).
BACKOFF_CAP = max(0.5, ABANDONED_JOB_TIMEOUT / 6)
_RETRY = re.compile(r"Redis unreachable.*; retrying in (\d+\.\d+)s")
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", re.MULTILINE)


def retry_delays(worker: Proc, after: str = "") -> list[float]:
    """The delays the worker logged between its tries to reach Redis, after the first line containing `after`."""
    log = worker.log()
    start = log.find(after)
    return [] if start < 0 else [float(delay) for delay in _RETRY.findall(log, start)]


def logged_seconds_after(worker: Proc, line: str) -> float:
    """Seconds from the worker's first log line containing `line` to its latest log line, by their stamps."""
    log = worker.log()
    found = log.find(line)
    if found < 0:
        return 0.0
    first = _STAMP.search(log, log.rfind("\n", 0, found) + 1)
    stamps = _STAMP.findall(log)
    assert first is not None and stamps, log
    return (_parse_stamp(stamps[-1]) - _parse_stamp(first.group(1))).total_seconds()


def _parse_stamp(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")


def assert_stays_up(worker: Proc, seconds: float) -> None:
    """The worker is still running `seconds` from now; fails as soon as it exits."""
    try:
        code = worker.popen.wait(seconds)
    except subprocess.TimeoutExpired:
        return
    raise AssertionError(f"the worker exited with {code}:\n{worker.log()}")


def _assert_no_claims(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        wait_for(lambda: client.hlen(keys.CLAIMS) == 0, 10, what="every claim settled")
    finally:
        client.close()


def assert_exits_cleanly(worker: Proc) -> None:
    wait_for(lambda: not worker.alive(), 30, interval=0.2, what="the worker to exit")
    assert worker.popen.returncode == 0, worker.log()
