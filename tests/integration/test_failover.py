"""A Redis failover under load, through Sentinel: a real primary, two replicas, three Sentinels, the
Procfile's web and worker processes, and ten clients submitting while the primary is SIGKILLed.

Shortened from 30 s of load with the kill at 10 s to 24 s with the kill at 8 s: the promotion takes
2-3 s here, so 16 s after the kill still shows the service back within the 15 s asked of it, and two
such runs stay near a minute each on a shared two-core machine. Two replicas: once one is promoted,
the other is left to acknowledge submissions (with one replica, REDIS_MIN_REPLICAS_ACK=1 could never
be met again after a failover).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from rq.job import Job
from rq.results import Result

from core.queues import SERIALIZER
from tests.factories import noop_job, steps_job
from tests.integration.conftest import TEST_ENV
from tests.support.procs import ProcessFactory, wait_for
from tests.support.sentinel import SentinelCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 10
LOAD_SECONDS = 24.0
KILL_AT = 8.0
BACK_WITHIN = 15.0
#: Jobs running while the primary dies: 8 steps of 0.5 s, started before the kill.
LONG_JOBS = 2


@dataclass
class Answer:
    at: float
    status: int
    job_id: str | None = None


@dataclass
class Load:
    """What the clients saw: every answer, and the ids of the jobs they were told were accepted."""

    answers: list[Answer] = field(default_factory=list)
    accepted: set[str] = field(default_factory=set)
    transport_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)
            if answer.status in (200, 202) and answer.job_id:
                self.accepted.add(answer.job_id)


def submit_until(base_url: str, load: Load, stop: threading.Event, started: float) -> None:
    """One client: submit, and after a 503 send the same request again with the same Idempotency-Key
    (as the Python client does), until `stop`."""
    with httpx.Client(base_url=base_url, timeout=15) as client:
        key = str(uuid.uuid4())
        while not stop.is_set():
            try:
                response = client.post("/jobs", json=noop_job(retries=2), headers={"Idempotency-Key": key})
            except httpx.HTTPError as exc:
                load.transport_errors.append(repr(exc))
                time.sleep(0.1)
                continue
            job_id = response.json().get("id") if response.status_code in (200, 202) else None
            load.record(Answer(time.monotonic() - started, response.status_code, job_id))
            if response.status_code == 503:
                time.sleep(0.1)  # shorter than Retry-After: the test wants to see the first 202 again
            else:
                key = str(uuid.uuid4())


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    sentinels = SentinelCluster(tmp_path / "redis", replicas=2).start()
    try:
        yield sentinels
    finally:
        sentinels.stop()


def start_service(cluster: SentinelCluster, tmp_path: Path, **env: str) -> tuple[ProcessFactory, str]:
    primary_url = f"redis://127.0.0.1:{cluster.primary.port}/0"
    factory = ProcessFactory(primary_url, tmp_path, {**TEST_ENV, **cluster.env(ABANDONED_JOB_TIMEOUT="5", **env)})
    _, base_url = factory.web()
    factory.worker()
    factory.worker()
    return factory, base_url


def start_long_jobs(base_url: str, client: redis.Redis) -> list[str]:
    """Jobs that are running (status started) when the primary dies."""
    with httpx.Client(base_url=base_url, timeout=10) as api:
        ids = []
        for _ in range(LONG_JOBS):
            response = api.post("/jobs", json=steps_job(steps=8, delay=0.5, retries=3))
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])

    def all_started() -> bool:
        return all(client.hget(Job.key_for(job_id), "status") == b"started" for job_id in ids)

    wait_for(all_started, 10, what="the long jobs started")
    return ids


def run_failover(cluster: SentinelCluster, base_url: str) -> tuple[Load, float, list[str]]:
    """Ten clients for LOAD_SECONDS; long jobs started and the primary SIGKILLed at KILL_AT."""
    load, stop = Load(), threading.Event()
    started = time.monotonic()
    clients = [
        threading.Thread(target=submit_until, args=(base_url, load, stop, started), daemon=True) for _ in range(CLIENTS)
    ]
    for thread in clients:
        thread.start()
    with cluster.node_client(cluster.primary) as primary:
        long_jobs = start_long_jobs(base_url, primary)
    wait_for(lambda: time.monotonic() - started >= KILL_AT, KILL_AT + 1, interval=0.05, what="the kill time")
    old = cluster.kill_primary()
    killed_at = time.monotonic() - started
    cluster.wait_failover(old.port)
    wait_for(lambda: time.monotonic() - started >= LOAD_SECONDS, LOAD_SECONDS, interval=0.1, what="the end of the load")
    stop.set()
    for thread in clients:
        thread.join(20)
    return load, killed_at, long_jobs


def job_runs(client: redis.Redis, ids: Iterable[str]) -> dict[str, tuple[str | None, int]]:
    """Each job's (status, number of results), read in pipelines: a job that ran to `finished` once
    has one result; a lost job is (None, 0)."""
    ids = list(ids)
    runs: dict[str, tuple[str | None, int]] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        with client.pipeline(transaction=False) as pipe:
            for job_id in chunk:
                pipe.hget(Job.key_for(job_id), "status")
                pipe.xlen(Result.get_key(job_id))
            replies = pipe.execute()
        for index, job_id in enumerate(chunk):
            status, results = replies[2 * index], replies[2 * index + 1]
            runs[job_id] = (status.decode() if status else None, int(results))
    return runs


def why_not_once(client: redis.Redis, job_id: str) -> str:
    """A job's latest result and progress messages, to say why it did not finish exactly once."""
    job = Job.fetch(job_id, connection=client, serializer=SERIALIZER)
    latest = job.latest_result()
    error = (latest.exc_string or "").strip().splitlines()[-1:] if latest is not None else []
    return f"{job_id}: {latest.type.name if latest else None} {error} {job.meta.get('messages', '')}"[:400]


def settled(client: redis.Redis, ids: Iterable[str]) -> Callable[[], bool]:
    """Every job in `ids` that exists has reached an end (finished or failed)."""

    def check() -> bool:
        return all(status in (None, "finished", "failed") for status, _ in job_runs(client, ids).values())

    return check


def back_after(load: Load, killed_at: float) -> float | None:
    """Seconds from the kill to the first submission accepted after the first 503 it caused (answers
    already on their way when the primary died do not count); None if none was, or none failed."""
    refused = [a.at for a in load.answers if a.at > killed_at and a.status == 503]
    if not refused:
        return None
    back = [a.at for a in load.answers if a.at > min(refused) and a.status in (200, 202)]
    return round(min(back) - killed_at, 2) if back else None


def summary(load: Load, killed_at: float) -> dict[str, object]:
    statuses: dict[int, int] = {}
    for answer in load.answers:
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
    return {
        "statuses": dict(sorted(statuses.items())),
        "accepted": len(load.accepted),
        "back_after_s": back_after(load, killed_at),
        "transport_errors": len(load.transport_errors),
    }


def test_failover_with_replica_acks_loses_no_accepted_job(
    cluster: SentinelCluster, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    factory, base_url = start_service(cluster, tmp_path, REDIS_MIN_REPLICAS_ACK="1")
    try:
        load, killed_at, long_jobs = run_failover(cluster, base_url)
        seen = summary(load, killed_at)
        record_property("report", f"failover with REDIS_MIN_REPLICAS_ACK=1: {seen}")

        assert not load.transport_errors, load.transport_errors[:5]
        assert {a.status for a in load.answers} <= {200, 202, 503}, seen
        back = back_after(load, killed_at)
        assert back is not None and back <= BACK_WITHIN, seen
        assert any(a.status == 202 and a.at < killed_at for a in load.answers), "load before the kill"

        with cluster.node_client(cluster.primary) as primary:
            try:
                wait_for(settled(primary, load.accepted | set(long_jobs)), 60, interval=0.5, what="every job ended")
            finally:
                runs = job_runs(primary, load.accepted)
                unsettled = {i: r for i, r in runs.items() if r[0] not in (None, "finished", "failed")}
                record_property("report", f"not ended: {len(unsettled)} {list(unsettled.items())[:5]}")
            runs = job_runs(primary, load.accepted)
            long_runs = job_runs(primary, long_jobs)
        lost = sorted(job_id for job_id, (status, _) in runs.items() if status is None)
        assert not lost, f"{len(lost)} accepted jobs lost: {lost[:5]}"
        # The acknowledgement covers the submission. A job ending at the moment of the kill can lose its
        # outcome with the old primary (replication is asynchronous): it is then run again (at least once,
        # as without a failover), so the load jobs carry retries; every accepted job must end finished.
        not_finished = {job_id: run for job_id, run in runs.items() if run[0] != "finished"}
        assert not not_finished, f"{len(not_finished)} jobs did not finish: {Counter(not_finished.values())}"
        record_property("report", f"ran more than once: {sum(1 for _, n in runs.values() if n > 1)}")
        assert all(status == "finished" for status, _ in long_runs.values()), long_runs
        assert all(proc.alive() for proc in factory.procs), "web and workers rode out the failover"
    except BaseException:
        print(cluster.logs(), *(proc.log()[-3000:] for proc in factory.procs), sep="\n")
        raise
    finally:
        factory.stop_all()


def test_failover_without_replica_acks_is_measured(
    cluster: SentinelCluster, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """Without REDIS_MIN_REPLICAS_ACK a failover may lose what the primary had not yet replicated:
    counted and reported, not asserted. The service's own promises still hold: 503s only, back in time."""
    factory, base_url = start_service(cluster, tmp_path)
    try:
        load, killed_at, long_jobs = run_failover(cluster, base_url)
        seen = summary(load, killed_at)
        with cluster.node_client(cluster.primary) as primary:
            wait_for(settled(primary, load.accepted | set(long_jobs)), 60, interval=0.5, what="every job ended")
            runs = job_runs(primary, load.accepted | set(long_jobs))
        lost = sum(1 for status, _ in runs.values() if status is None)
        odd = [job_id for job_id, run in runs.items() if run[0] is not None and run != ("finished", 1)]
        not_once = Counter(runs[job_id] for job_id in odd)
        with cluster.node_client(cluster.primary) as primary:
            why = [why_not_once(primary, job_id) for job_id in odd[:3]]
        record_property(
            "report",
            f"failover without replica acks: {seen}; accepted jobs lost: {lost}; "
            f"not finished exactly once, by (status, results): {dict(not_once)}; examples: {why}",
        )
        assert not load.transport_errors, load.transport_errors[:5]
        assert {a.status for a in load.answers} <= {200, 202, 503}, seen
        back = back_after(load, killed_at)
        assert back is not None and back <= BACK_WITHIN, seen
        assert all(proc.alive() for proc in factory.procs), "web and workers rode out the failover"
    except BaseException:
        print(cluster.logs(), *(proc.log()[-3000:] for proc in factory.procs), sep="\n")
        raise
    finally:
        factory.stop_all()
