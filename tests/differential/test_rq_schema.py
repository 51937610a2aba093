"""The service's workers leave in Redis what RQ's own worker leaves, job for job.

Each scenario (`scenarios.SCENARIOS`) runs once under RQ's forking `Worker` and once under each of the
service's workers, every run on a flushed database of a real server. The two snapshots of every key
(`snapshot.take`) must be equal but for the differences listed in `INTENDED`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis

import tests.differential.jobs  # noqa: F401  (registers the job types in this process)
from core import keys
from tests.differential import snapshot
from tests.differential.runner import WORKER_NAME, CliWorker, rq_worker, run, service_settings, service_worker
from tests.differential.scenarios import SCENARIOS, Scenario

pytestmark = pytest.mark.integration

#: Scenarios also run by the Procfile's `rq worker` line (a subprocess each: the command line's own path).
CLI_SCENARIOS = ["success", "stop", "final-failure"]

#: RQ's reference: its forking worker (the one `rq worker` starts), one work horse per job.
RQ_WORKER = "rq.worker.Worker"

#: The service's workers under test: (id, class path, WORKER_CONCURRENCY). The Procfile's `workers.Worker` is the
#: first at the default concurrency and the second (one forked work horse per job) at a concurrency of 1.
SERVICE_WORKERS = [
    ("concurrent", "workers.concurrent.ConcurrentWorker", 4),
    ("forking", "workers.worker.ServiceWorker", 1),
]


def matches(location: str, pattern: str) -> bool:
    """Whether `location` matches `pattern`, in which `*` is the only wildcard (brackets name hash fields)."""
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), location) is not None


@dataclass(frozen=True)
class Intended:
    """A difference the service means to make. `where` is a pattern (`*`: anything) of a difference's location:
    `key`, `key [field]` or `key TTL` (keys normalised). With `item`, only that item of the hash field's JSON
    object is taken out of our snapshot before comparing (so the rest of the field is still compared); with
    `worker` or `scenario`, the rule holds for that service worker or scenario only."""

    where: str
    reason: str
    item: str | None = None
    worker: str | None = None
    scenario: str | None = None

    def covers(self, difference: snapshot.Difference, worker: str, scenario: str) -> bool:
        return (
            self.item is None
            and self.worker in (None, worker)
            and self.scenario in (None, scenario)
            and matches(difference.where, self.where)
        )


#: Everything the service's workers write that RQ's does not, and why. Any other difference fails the suite.
INTENDED = [
    Intended("jobsvc:*", "the service's own keys (events, run-time metrics, claims, liveness): RQ has none"),
    Intended("rq:job:* [meta]", "each start counted in the job's meta (`core.meta.ATTEMPT`)", item="attempt"),
    Intended(
        f"rq:job:* [{keys.ATTEMPT_FIELD}]",
        "each start's number in a field of its own too, so a superseded run's progress report is refused by a "
        "field read (`core.rqadapter.jobdata.meta_write`)",
    ),
    Intended(
        "rq:worker:diff-worker* TTL",
        "the concurrent worker's heartbeat is periodic, with its idle TTL (worker_ttl + 60) while jobs run; RQ's "
        "forking worker shortens it to job_monitoring_interval + 60 while its horse runs (the worker's execution "
        "index gets the TTL of the worker's key on each heartbeat, in between the one its executions set)",
        worker="concurrent",
    ),
    *(
        Intended(
            where,
            "a job canceled because its parent failed expires after FAILURE_TTL like a failed one (its hash and "
            "dependency keys get that TTL, its canceled registry score says when, `ended_at` when it ended); "
            "RQ's `Job.cancel()` keeps it forever",
            scenario="dependent-of-failure",
        )
        for where in ("rq:job:orphan TTL", "rq:job:orphan [ended_at]", "rq:canceled:default")
    ),
    *(
        Intended(where, reason, worker="concurrent", scenario="stop")
        for where, reason in (
            *(
                (
                    f"rq:job:stopped [{field}]",
                    "the concurrent worker records a stop in the process that ran the job (a thread cannot be "
                    "killed, there is no work horse), with this field current; RQ's parent saves the copy of the "
                    "job it had at dequeue time, where it is empty",
                )
                for field in ("ended_at", "last_heartbeat", "worker_name")
            ),
            (
                "rq:results:stopped",
                "'Job stopped by request.' with `execution_ended_at`: no work horse was terminated; RQ's says "
                "'Job stopped by user, work-horse terminated.' and has no end time",
            ),
            (
                "rq:worker:diff-worker [total_working_time]",
                "the time the stopped job ran counts as working time; RQ adds none for a stopped job (no `ended_at`)",
            ),
        )
    ),
]


def without_intended_items(state: snapshot.Snapshot) -> snapshot.Snapshot:
    """`state` without the `INTENDED` items of JSON fields; an emptied field is dropped (RQ writes no `meta`
    field while the meta is empty)."""
    kept = dict(state)
    for rule in INTENDED:
        if rule.item is None:
            continue
        key_pattern, _, field = rule.where.partition(" [")
        field = field.rstrip("]")
        for key, entry in kept.items():
            value = entry.value.get(field) if isinstance(entry.value, dict) else None
            if matches(key, key_pattern) and isinstance(value, dict) and rule.item in value:
                fields = dict(entry.value)
                fields[field] = {k: v for k, v in value.items() if k != rule.item}
                if not fields[field]:
                    del fields[field]
                kept[key] = snapshot.Entry(entry.type, entry.ttl, fields)
    return kept


def ran_jobs(state: snapshot.Snapshot) -> bool:
    """Whether the worker of this snapshot counted any job it ran (so a comparison is not vacuous)."""
    counts = state.get(f"rq:worker:{WORKER_NAME}", snapshot.Entry("none", -2, {})).value
    return any(int(counts.get(field, 0)) > 0 for field in ("successful_job_count", "failed_job_count"))


_rq_snapshots: dict[str, dict[str, snapshot.Snapshot]] = {}


def rq_snapshots(connection: Redis, scenario: Scenario) -> dict[str, snapshot.Snapshot]:
    """RQ's snapshot of `scenario`, taken once per session."""
    if scenario.name not in _rq_snapshots:
        _rq_snapshots[scenario.name] = run(connection, scenario, rq_worker(RQ_WORKER), rq_side=True)
    return _rq_snapshots[scenario.name]


@pytest.mark.parametrize("worker", SERVICE_WORKERS, ids=[w[0] for w in SERVICE_WORKERS])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_our_worker_leaves_what_rqs_leaves(
    scenario: Scenario, worker: tuple[str, str, int], rclient: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker_id, class_path, concurrency = worker
    with service_settings(monkeypatch, redis_url, concurrency):
        ours = run(rclient, scenario, service_worker(class_path))
    assert_same_as_rqs(rclient, scenario, worker_id, ours)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.name in CLI_SCENARIOS], ids=CLI_SCENARIOS)
def test_the_procfile_worker_leaves_what_rqs_leaves(
    scenario: Scenario, rclient: Redis, redis_url: str, tmp_path: Path
) -> None:
    worker_id, _, concurrency = SERVICE_WORKERS[0]
    cli = CliWorker(redis_url, tmp_path / "worker.log", WORKER_CONCURRENCY=str(concurrency))
    ours = run(rclient, scenario, lambda connection: cli)
    assert_same_as_rqs(rclient, scenario, worker_id, ours)


def assert_same_as_rqs(
    connection: Redis, scenario: Scenario, worker_id: str, ours: dict[str, snapshot.Snapshot]
) -> None:
    expected = rq_snapshots(connection, scenario)
    assert ran_jobs(expected["end"]), f"RQ's run of {scenario.name} ran no job: nothing to compare"
    assert sorted(ours) == sorted(expected), "both runs take the same snapshots"
    report: list[str] = []
    for label in sorted(expected):
        found = [
            difference
            for difference in snapshot.differences(expected[label], without_intended_items(ours[label]))
            if not any(rule.covers(difference, worker_id, scenario.name) for rule in INTENDED)
        ]
        report += [f"{label}: {difference}" for difference in found]
    assert not report, f"{scenario.name}: ours differs from RQ's in {len(report)} places:\n" + "\n".join(report)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_rqs_worker_matches_itself(scenario: Scenario, rclient: Redis) -> None:
    """RQ's worker run again leaves what it left the first time, with no rule at all: whatever the suite
    reports is the service's, not run-to-run noise the normalisation missed."""
    first = rq_snapshots(rclient, scenario)
    again = run(rclient, scenario, rq_worker(RQ_WORKER), rq_side=True)
    report = [f"{label}: {d}" for label in sorted(first) for d in snapshot.differences(first[label], again[label])]
    assert sorted(again) == sorted(first) and not report, "\n".join(report)
