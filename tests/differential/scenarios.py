"""What the differential suite runs: the jobs of each scenario, enqueued the same way for every worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from rq import Callback, Queue, Retry
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from tests.differential import jobs

#: Every job goes to this queue; the workers listen on the service's three.
QUEUE = "default"
WORKER_QUEUES = ["high", "default", "low"]

_JOBS = "tests.differential.jobs"


def func(name: str) -> str:
    return f"{_JOBS}.{name}"


@dataclass(frozen=True)
class Enqueue:
    """One `Queue.enqueue_call`: a fixed job id (the same in both runs), the function, RQ's options."""

    job_id: str
    function: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


Capture = Callable[[str], None]


@dataclass(frozen=True)
class Scenario:
    name: str
    enqueues: tuple[Enqueue, ...]
    #: What the service's workers do beyond RQ's, done on RQ's side after its worker, through RQ's public API:
    #: the comparison is then with what RQ itself writes for it.
    rq_also: Callable[[Redis], None] | None = None
    #: Run beside the worker while it works, given the connection and `capture(label)`, which snapshots the
    #: database then (compared with RQ's snapshot of the same label): e.g. a stop command.
    during: Callable[[Redis, Capture], None] | None = None


def enqueue_all(connection: Redis, scenario: Scenario) -> None:
    queue = Queue(QUEUE, connection=connection, serializer=JSONSerializer)
    for item in scenario.enqueues:
        queue.enqueue_call(func(item.function), kwargs=item.kwargs, job_id=item.job_id, **item.options)


def stop_when_started(job_id: str, timeout: float = 15.0) -> Callable[[Redis, Capture], None]:
    """Snapshots the database as `running` once `job_id` runs with its RQ execution written, then sends RQ's
    `stop-job` command, again until the worker acts on it (a command that arrives before the worker knows the
    job is its own is ignored)."""

    def stop(connection: Redis, capture: Capture) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (
            connection.get(jobs.CALLS.format(job_id=job_id)) and connection.keys(f"rq:execution:{job_id}:*")
        ):
            time.sleep(0.02)
        capture("running")
        while time.monotonic() < deadline:
            job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
            status = job.get_status(refresh=False)
            if status not in (JobStatus.QUEUED, JobStatus.STARTED, None):
                return
            if status == JobStatus.STARTED and connection.get(jobs.CALLS.format(job_id=job_id)):
                try:
                    send_stop_job_command(connection, job_id, serializer=JSONSerializer)
                except InvalidJobOperation:
                    pass
            time.sleep(0.1)

    return stop


def cancel(job_id: str) -> Callable[[Redis], None]:
    """RQ's own `Job.cancel()`: what the service's workers do to the jobs deferred on a parent that failed."""

    def cancel_job(connection: Redis) -> None:
        Job.fetch(job_id, connection=connection, serializer=JSONSerializer).cancel()

    return cancel_job


SCENARIOS = [
    Scenario(
        "success",
        (
            Enqueue("ok", "value", {"value": {"answer": [1, 2]}}),
            Enqueue("none", "value"),
            Enqueue("kept", "unserializable", options={"result_ttl": -1}),  # RQ's "unserializable" result, forever
            Enqueue("expiring", "value", {"value": 3}, {"ttl": 900, "result_ttl": 600}),  # TTL while queued
            Enqueue("longer", "sleep", {"seconds": 0.3}),  # runs past the concurrent worker's execution record delay
        ),
    ),
    Scenario(
        "failure-then-retry",
        (Enqueue("flaky", "flaky", {"failures": 1}, {"retry": Retry(max=1)}),),
    ),
    Scenario(
        "final-failure",
        (Enqueue("doomed", "flaky", {"failures": 5}, {"retry": Retry(max=1)}),),
    ),
    Scenario("timeout", (Enqueue("slow", "sleep", {"seconds": 5}, {"timeout": 1}),)),
    Scenario("stop", (Enqueue("stopped", "sleep", {"seconds": 20}),), during=stop_when_started("stopped")),
    Scenario(
        "dependent",
        (
            Enqueue("parent", "value", {"value": "parent"}),
            Enqueue("child", "value", {"value": "child"}, {"depends_on": "parent"}),
        ),
    ),
    Scenario(
        "dependent-of-failure",
        (
            Enqueue("broken", "flaky", {"failures": 5}),
            Enqueue("orphan", "value", {"value": "never"}, {"depends_on": "broken"}),
        ),
        rq_also=cancel("orphan"),
    ),
    Scenario(
        "callbacks",
        (
            Enqueue("cb-ok", "value", {"value": 7}, {"on_success": Callback(func("record_success"))}),
            Enqueue("cb-fail", "flaky", {"failures": 1}, {"on_failure": Callback(func("record_failure"))}),
        ),
    ),
    Scenario("result-ttl-0", (Enqueue("forgotten", "value", {"value": 1}, {"result_ttl": 0}),)),
    Scenario("returns-retry", (Enqueue("again", "retry"),)),
]
