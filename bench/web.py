"""Submission and status over HTTP: the service vs the naive threadpool routes vs bare `/hello`."""

from __future__ import annotations

import json

import httpx

from bench import load
from bench.common import Bench, Figure, median, wait_until

SUBMIT_BODY = json.dumps({"type": "demo.steps", "args": {"steps": 5, "delay": 0.1}}).encode()
CONNECTIONS = 32
RUNS = 3


def _measure(bench: Bench, url: str, method: str = "GET", body: bytes | None = None) -> load.LoadResult:
    load.run(url, seconds=1, connections=CONNECTIONS, method=method, body=body)  # warm-up
    runs = [
        load.run(url, seconds=bench.seconds, connections=CONNECTIONS, method=method, body=body) for _ in range(RUNS)
    ]
    if any(r.errors for r in runs):
        raise RuntimeError(f"{method} {url}: errors under load: {[r.errors for r in runs]}")
    best = sorted(runs, key=lambda r: r.rps)[len(runs) // 2]
    return load.LoadResult(median([r.rps for r in runs]), best.p50_ms, median([r.p99_ms for r in runs]), 0, best.tool)


def _finished_job(bench: Bench, base_url: str) -> str:
    """A finished `demo.steps` job with 5 progress messages and a result: what a client polls for."""
    job_id: str = httpx.post(f"{base_url}/jobs", json={"type": "demo.steps", "args": {"steps": 5, "delay": 0}}).json()[
        "id"
    ]
    worker = bench.worker("web-prep-worker", "--burst")
    worker.wait(60)
    if not wait_until(lambda: httpx.get(f"{base_url}/jobs/{job_id}").json()["status"] == "finished", 30):
        raise RuntimeError("preparing the status job failed")
    return job_id


def run(bench: Bench) -> None:
    print(
        f"web: {CONNECTIONS} connections, {RUNS} runs x {bench.seconds:g}s each, load by {load.tool_name()}", flush=True
    )
    results: dict[str, load.LoadResult] = {}
    bench.flush()
    proc, url = bench.web("web-hello", "bench.apps:hello_app")
    results["hello"] = _measure(bench, f"{url}/hello")
    bench.stop(proc)

    for name, app in (("service", "app.main:app"), ("naive", "bench.apps:naive_app")):
        bench.flush()
        proc, url = bench.web(f"web-{name}", app)
        results[f"{name} submit"] = _measure(bench, f"{url}/jobs", "POST", SUBMIT_BODY)
        bench.stop(proc)

    bench.flush()
    proc, url = bench.web("web-service", "app.main:app")
    job_id = _finished_job(bench, url)
    results["service status"] = _measure(bench, f"{url}/jobs/{job_id}")
    bench.stop(proc)
    proc, url = bench.web("web-naive", "bench.apps:naive_app")
    results["naive status"] = _measure(bench, f"{url}/jobs/{job_id}")
    bench.stop(proc)

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
