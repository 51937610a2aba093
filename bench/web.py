"""Submission and status over HTTP: the service vs the naive threadpool routes vs bare `/hello`."""

from __future__ import annotations

import json

import httpx
import redis

from bench import load
from bench.common import Bench, Figure, compact, median, wait_until

SUBMIT_BODY = json.dumps({"type": "demo.steps", "args": {"steps": 5, "delay": 0.1}}).encode()
CONNECTIONS = 32
RUNS = 3
APPS = {"hello": "bench.apps:hello_app", "service": "app.main:app", "naive": "bench.apps:naive_app"}


def _median(runs: list[load.LoadResult]) -> load.LoadResult:
    if any(r.errors for r in runs):
        raise RuntimeError(f"errors under load: {[r.errors for r in runs]}")
    best = sorted(runs, key=lambda r: r.rps)[len(runs) // 2]
    return load.LoadResult(median([r.rps for r in runs]), best.p50_ms, median([r.p99_ms for r in runs]), 0, best.tool)


def _finished_job(bench: Bench, base_url: str, redis_url: str) -> str:
    """A finished `demo.steps` job with 5 progress messages and a result: what a client polls for."""
    job_id: str = httpx.post(f"{base_url}/jobs", json={"type": "demo.steps", "args": {"steps": 5, "delay": 0}}).json()[
        "id"
    ]
    worker = bench.worker("web-prep-worker", "--burst", REDIS_URL=redis_url)
    worker.wait(60)
    if not wait_until(lambda: httpx.get(f"{base_url}/jobs/{job_id}").json()["status"] == "finished", 30):
        raise RuntimeError("preparing the status job failed")
    return job_id


def run(bench: Bench) -> None:
    """The three apps served at once (one process each, the Procfile's web line), measured in rounds:
    each round runs every path once, one after the other, and each figure is the median of its runs,
    so the machine's other load (this one is shared) hits each path and its baselines alike."""
    print(
        f"web: {CONNECTIONS} connections, {RUNS} rounds x {bench.seconds:g}s per path, load by {load.tool_name()}",
        flush=True,
    )
    # Submissions write to database 0, flushed before each submission run; the status routes read a
    # finished job kept in database 1, served by processes of their own.
    status_db = f"{bench.url.rsplit('/', 1)[0]}/1"
    with redis.Redis.from_url(status_db) as client:
        client.flushdb()
    bench.flush()
    urls = {name: bench.web(f"web-{name}", app)[1] for name, app in APPS.items()}
    for name in ("service", "naive"):
        urls[f"{name} status"] = bench.web(f"web-{name}-status", APPS[name], REDIS_URL=status_db)[1]
    job_id = _finished_job(bench, urls["service status"], status_db)
    paths = {
        "hello": (f"{urls['hello']}/hello", "GET", None),
        "service submit": (f"{urls['service']}/jobs", "POST", SUBMIT_BODY),
        "naive submit": (f"{urls['naive']}/jobs", "POST", SUBMIT_BODY),
        "service status": (f"{urls['service status']}/jobs/{job_id}", "GET", None),
        "naive status": (f"{urls['naive status']}/jobs/{job_id}", "GET", None),
    }
    for url, method, body in paths.values():
        load.run(url, seconds=1, connections=CONNECTIONS, method=method, body=body)  # warm-up
    runs: dict[str, list[load.LoadResult]] = {name: [] for name in paths}
    with bench.client() as client:
        for _ in range(RUNS):
            for name, (url, method, body) in paths.items():
                if method == "POST":
                    client.flushdb()
                    compact(client)  # no rewrite of the append-only file forked by earlier writes mid-run
                runs[name].append(load.run(url, seconds=bench.seconds, connections=CONNECTIONS, method=method,
                                           body=body))  # fmt: skip
    results = {name: _median(measured) for name, measured in runs.items()}
    bench.notes["web_runs"] = "; ".join(
        f"{name}: {', '.join(f'{r.rps:,.0f}' for r in measured)} req/s" for name, measured in runs.items()
    )
    bench.stop_all()

    hello = results["hello"].rps
    bench.add(Figure("web", "bare GET /hello", hello, "req/s", note=f"p99 {results['hello'].p99_ms:.1f} ms"))
    for verb, path, vs_naive, vs_hello in (
        ("submit", "POST /jobs", 2.5, 0.20),
        ("status", "GET /jobs/{id}", 2.0, 0.25),
    ):
        ours, naive = results[f"service {verb}"], results[f"naive {verb}"]
        bench.add(
            Figure("web", f"{path} (service)", ours.rps, "req/s", f"naive threadpool {path}", naive.rps,
                   f">= {vs_naive}x naive", ours.rps >= vs_naive * naive.rps,
                   f"naive p99 {naive.p99_ms:.1f} ms")
        )  # fmt: skip
        bench.add(
            Figure("web", f"{path} (service) vs /hello", ours.rps, "req/s", "bare GET /hello", hello,
                   f">= {vs_hello:.0%} of /hello", ours.rps >= vs_hello * hello)
        )  # fmt: skip
        p99_ok = ours.p99_ms <= 50 if verb == "submit" else None
        bench.add(
            Figure("web", f"{path} (service) p99 latency", ours.p99_ms, "ms", target="<= 50 ms" if p99_ok is not None
                   else "", met=p99_ok, note=f"p50 {ours.p50_ms:.2f} ms at {CONNECTIONS} connections")
        )  # fmt: skip
    bench.notes["load tool"] = results["hello"].tool
