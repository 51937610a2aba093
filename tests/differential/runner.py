"""Run a scenario's jobs with one worker (in this process, or the Procfile's `rq worker` line) against a flushed
database; snapshot the result."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from redis import Redis
from rq.utils import import_attribute

from core.settings import get_settings
from stack.procfile import procfile_command
from tests.differential import snapshot
from tests.differential.scenarios import WORKER_QUEUES, Scenario, enqueue_all
from tests.support.procs import ROOT, base_env

#: Every worker runs under this name, so its keys and the jobs' `worker_name` read the same on both sides.
WORKER_NAME = "diff-worker"

#: Seconds between a worker's heartbeats while a job runs: the service's workers derive it from
#: `ABANDONED_JOB_TIMEOUT` (10 by default); RQ's reference runs with the same (`rq worker
#: --job-monitoring-interval 10`), so the heartbeat TTLs compare like with like.
JOB_MONITORING_INTERVAL = 10

#: Longest a scenario's worker may run (its jobs take at most a few seconds).
RUN_TIMEOUT = 30.0

MakeWorker = Callable[[Redis], Any]


def run(
    connection: Redis, scenario: Scenario, make_worker: MakeWorker, *, rq_side: bool = False
) -> dict[str, snapshot.Snapshot]:
    """The snapshots of one run: `end` once the worker is done (and, on RQ's side, the scenario's `rq_also`),
    and any the scenario captured meanwhile."""
    connection.flushdb()
    normaliser = snapshot.Normaliser(int(time.time()), {})  # RQ's `current_timestamp()` scores are whole seconds
    states: dict[str, snapshot.Snapshot] = {}

    def capture(label: str) -> None:
        states[label] = snapshot.take(connection, normaliser)

    enqueue_all(connection, scenario)
    worker = make_worker(connection)
    helper = None
    if scenario.during is not None:
        helper = threading.Thread(target=scenario.during, args=(connection, capture), daemon=True)
        helper.start()
    worker.work(burst=True)
    if helper is not None:
        helper.join(RUN_TIMEOUT)
        assert not helper.is_alive(), f"{scenario.name}: the helper beside the worker did not finish"
    if rq_side and scenario.rq_also is not None:
        scenario.rq_also(connection)
    capture("end")
    connection.flushdb()
    return states


def rq_worker(class_path: str) -> MakeWorker:
    """One of RQ's own worker classes, built the way `rq worker --serializer json` builds it."""

    def make(connection: Redis) -> Any:
        from rq.serializers import JSONSerializer

        worker_class = import_attribute(class_path)
        return worker_class(
            WORKER_QUEUES,
            connection=connection,
            serializer=JSONSerializer,
            name=WORKER_NAME,
            job_monitoring_interval=JOB_MONITORING_INTERVAL,
        )

    return make


@contextmanager
def service_settings(monkeypatch: pytest.MonkeyPatch, redis_url: str, concurrency: int) -> Iterator[None]:
    """The environment an `rq worker -w <service worker>` process would read its settings from."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("WORKER_CONCURRENCY", str(concurrency))
    monkeypatch.setenv("JOB_MODULES", "tests.differential.jobs")
    get_settings.cache_clear()
    try:
        yield
    finally:
        get_settings.cache_clear()


def service_worker(class_path: str) -> MakeWorker:
    """One of the service's worker classes: it builds its own connection, serializer and job class from settings."""

    def make(connection: Redis) -> Any:
        worker = import_attribute(class_path)(WORKER_QUEUES, name=WORKER_NAME)
        assert worker.job_monitoring_interval == JOB_MONITORING_INTERVAL, "RQ's reference must run with the same"
        return worker

    return make


class CliWorker:
    """The Procfile's `rq worker` line as a subprocess, in burst mode, under `WORKER_NAME`.

    `--with-scheduler` is left out: RQ's reference runs no scheduler, and no scenario schedules anything."""

    def __init__(self, redis_url: str, log_path: Any, **env: str) -> None:
        line = procfile_command("worker").replace(" --with-scheduler", "")
        self.command = f"exec {line.replace('rq worker ', f'rq worker --burst --name {WORKER_NAME} ', 1)}"
        self.env = base_env(redis_url, JOB_MODULES="tests.differential.jobs", **env)
        self.log_path = log_path

    def work(self, burst: bool = True) -> None:
        assert burst
        with open(self.log_path, "wb") as log:
            done = subprocess.run(
                self.command, shell=True, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT, check=False,
            )  # fmt: skip
        assert done.returncode == 0, f"{self.command} exited {done.returncode}:\n{self.log_path.read_text()}"
