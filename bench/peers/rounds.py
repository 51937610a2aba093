"""Every system through every workload, in interleaved rounds (round 1: every system, round 2: every system
...), so load from elsewhere on this shared machine hits all of them alike; each round rotates the order."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis

from bench import load
from bench.common import Bench
from bench.peers import systems, workloads
from bench.peers.service import ServiceClient, web_submit_rate
from bench.peers.systems import SERVICE, SERVICE_FEATURED, Clients, PeerClient, System
from bench.peers.workloads import Client, Drain

#: What "configured but unused" defines: one schedule, due far from the run.
SCHEDULE = {"type": "demo.noop", "cron": "0 3 * * *", "description": "bench: defined, never due during a run"}
WEB_CONNECTIONS = 32


@dataclass(frozen=True)
class Plan:
    rounds: int
    a_jobs: int
    b_jobs: int
    c_jobs: int
    d_jobs: int  # per round; the percentiles pool every round's samples
    web_seconds: float
    quick: bool = False


FULL = Plan(rounds=3, a_jobs=20_000, b_jobs=1_000, c_jobs=2_000, d_jobs=334, web_seconds=4)
QUICK = Plan(rounds=1, a_jobs=2_000, b_jobs=200, c_jobs=300, d_jobs=50, web_seconds=2, quick=True)


@dataclass
class Measured:
    """One system's figures, round by round."""

    a: list[Drain] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    c: list[float] = field(default_factory=list)
    d: list[float] = field(default_factory=list)  # every sample of every round


@dataclass
class Results:
    plan: Plan
    systems: list[System]
    measured: dict[str, Measured]
    web: dict[str, list[float]] = field(default_factory=dict)  # POST /jobs: one client; 32 connections plain/featured

    def __getstate__(self) -> dict[str, object]:
        """Saved with each system's key (a system holds functions, which pickle cannot save)."""
        return {**self.__dict__, "systems": [s.key for s in self.systems]}

    def __setstate__(self, state: dict[str, Any]) -> None:
        known = {s.key: s for s in (SERVICE, SERVICE_FEATURED, *systems.PEERS)}
        self.__dict__.update(state, systems=[known[key] for key in state["systems"]])


def chosen(only: Sequence[str]) -> list[System]:
    """The service, then the peers named by `only` (a system's key or its peer's name; all when empty)."""
    peers = [s for s in systems.PEERS if not only or s.key in only or s.peer in only]
    unknown = set(only) - {s.key for s in systems.PEERS} - {s.peer for s in systems.PEERS}
    if unknown:
        raise SystemExit(f"unknown peers {sorted(unknown)}; choose from {[s.key for s in systems.PEERS]}")
    return [SERVICE, SERVICE_FEATURED, *peers]


class FeaturedClient(ServiceClient):
    """The service's client for the featured variant: defines the schedule on each flushed server."""

    def __init__(self, bench: Bench, web_url: str) -> None:
        super().__init__(bench)
        self.web_url = web_url

    def fill(self, kind: str, count: int) -> None:
        define_schedule(self.web_url)
        super().fill(kind, count)


def define_schedule(web_url: str) -> None:
    response = httpx.post(f"{web_url}/schedules", json=SCHEDULE, timeout=30)
    response.raise_for_status()


def run(bench: Bench, plan: Plan, only: Sequence[str] = ()) -> Results:
    chosen_systems = chosen(only)
    for system in chosen_systems:
        systems.install(system)
    base = bench.url.rsplit("/", 1)[0]
    clients = {db: redis.Redis.from_url(f"{base}/{db}") for db in (0, 1)}
    _, plain_url = bench.web("peers-web", "app.main:app")
    _, featured_url = bench.web("peers-web-featured", "app.main:app", **SERVICE_FEATURED.env)
    made: dict[str, Client] = {
        SERVICE.key: ServiceClient(bench),
        SERVICE_FEATURED.key: FeaturedClient(bench, featured_url),
    }
    for system in chosen_systems:
        made.setdefault(system.key, PeerClient(bench, system))
    results = Results(plan, chosen_systems, {s.key: Measured() for s in chosen_systems})
    try:
        for round_ in range(plan.rounds):
            rotating = [s for s in chosen_systems if s.key != SERVICE_FEATURED.key]
            order = rotating[round_ % len(rotating) :] + rotating[: round_ % len(rotating)]
            print(f"peers: round {round_ + 1} of {plan.rounds}", flush=True)
            _round(bench, clients, plan, order, made, results, round_, (plain_url, featured_url))
    finally:
        for client in clients.values():
            client.close()
    return results


def _round(
    bench: Bench,
    clients: Clients,
    plan: Plan,
    order: list[System],
    made: dict[str, Client],
    results: Results,
    round_: int,
    urls: tuple[str, str],
) -> None:
    # The service's plain and featured drains run back to back (their order alternating), so both see the same
    # machine; the other systems' order rotates from round to round.
    pair = [SERVICE, SERVICE_FEATURED] if round_ % 2 == 0 else [SERVICE_FEATURED, SERVICE]
    for system in (member for s in order for member in (pair if s.key == SERVICE.key else [s])):
        count = min(plan.a_jobs, system.drain_jobs or plan.a_jobs)
        drain = workloads.throughput(bench, clients, system, made[system.key], count, f"A-{system.key}-{round_}")
        results.measured[system.key].a.append(drain)
        cost = f"{drain.worker_us:,.0f} us worker + {drain.redis_us:,.0f} us Redis"
        _say("A", system, f"{drain.rate:,.0f} jobs/s, {cost}")
    for system in order:
        if not system.io:
            continue
        seconds = workloads.io_bound(bench, clients, system, made[system.key], plan.b_jobs, f"B-{system.key}-{round_}")
        results.measured[system.key].b.append(seconds)
        _say("B", system, f"{seconds:.2f} s")
    for system in order:
        rate = workloads.submission(bench, clients, made[system.key], plan.c_jobs)
        results.measured[system.key].c.append(rate)
        _say("C", system, f"{rate:,.0f} jobs/s")
    _web(bench, clients, plan, results, urls, featured_first=round_ % 2 == 1)
    for system in order:
        if not system.results:  # without results, no client can see a job finish
            continue
        samples = workloads.latency(bench, clients, system, made[system.key], plan.d_jobs, f"D-{system.key}-{round_}")
        results.measured[system.key].d.extend(samples)
        _say("D", system, f"median {sorted(samples)[len(samples) // 2]:.2f} ms of {len(samples)}")


def _web(
    bench: Bench, clients: Clients, plan: Plan, results: Results, urls: tuple[str, str], featured_first: bool
) -> None:
    """`POST /jobs`: one client on one connection (workload C), then 32 connections on the plain and the
    featured web processes, back to back (which goes first alternates from round to round)."""
    plain_url, featured_url = urls
    workloads.prepare(bench, clients)
    one = web_submit_rate(plain_url, plan.web_seconds)
    results.web.setdefault("one client", []).append(one)
    print(f"  C POST /jobs, one client: {one:,.0f} jobs/s", flush=True)
    runs = [("plain", plain_url), ("featured", featured_url)]
    for label, url in reversed(runs) if featured_first else runs:
        workloads.prepare(bench, clients)
        if label == "featured":
            define_schedule(featured_url)
        rate = load.run(
            f"{url}/jobs", seconds=plan.web_seconds, connections=WEB_CONNECTIONS, method="POST",
            body=b'{"type": "demo.noop"}',
        ).rps  # fmt: skip
        results.web.setdefault(label, []).append(rate)
        print(f"  web POST /jobs x{WEB_CONNECTIONS}, {label}: {rate:,.0f} req/s", flush=True)


def _say(workload: str, system: System, text: str) -> None:
    print(f"  {workload} {system.label}: {text}", flush=True)


def node_version() -> str:
    return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
