"""Batches: a 10,000-member batch accepted in one request, against RQ's `Queue.enqueue_many` of the same
jobs; and how soon the batch's event stream shows its end after the last member ended."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC

import httpx
from rq import Queue
from rq.utils import utcparse

from bench.common import Bench, Figure, compact, median, wait_until
from core import keys
from core.queues import SERIALIZER
from core.settings import Settings
from tests.support.sse import events

MEMBERS = 10_000
ROUNDS = 3
NOOP = "jobs.builtin.demo.noop"


def _submit(base_url: str) -> tuple[float, str]:
    """Seconds from sending `POST /batches` (10,000 `demo.noop`) to its 202, and the batch id."""
    body = json.dumps({"jobs": [{"type": "demo.noop"}] * MEMBERS}).encode()
    with httpx.Client(base_url=base_url, timeout=120) as client:
        started = time.perf_counter()
        response = client.post("/batches", content=body, headers={"Content-Type": "application/json"})
        elapsed = time.perf_counter() - started
    if response.status_code != 202:
        raise RuntimeError(f"POST /batches answered {response.status_code}: {response.text[:300]}")
    batch_id: str = response.json()["id"]
    return elapsed, batch_id


def _enqueue_many(bench: Bench) -> float:
    """Seconds RQ's own `Queue.enqueue_many` takes for the same 10,000 jobs (as the service builds them)."""
    settings = Settings()
    with bench.client() as client:
        queue = Queue("default", connection=client, serializer=SERIALIZER)
        started = time.perf_counter()
        datas = [
            Queue.prepare_data(
                NOOP,
                kwargs={},
                timeout=180,
                result_ttl=settings.result_ttl,
                failure_ttl=settings.failure_ttl,
                description="demo.noop",
                meta={"type": "demo.noop", "progress": 0, "messages": [], "owner": "anonymous"},
            )
            for _ in range(MEMBERS)
        ]
        queue.enqueue_many(datas)
        return time.perf_counter() - started


def _end_latency(bench: Bench, base_url: str) -> float:
    """Milliseconds from the last member's end (its `ended_at`) to the final `status` event on the batch's stream."""
    _, batch_id = _submit(base_url)
    seen: list[float] = []

    def follow() -> None:
        with httpx.Client(base_url=base_url, timeout=300) as client:
            with client.stream("GET", f"/batches/{batch_id}/events") as response:
                for event in events(response):
                    if event.event == "status" and event.data["ended_at"]:
                        seen.append(time.time())
                        return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    time.sleep(0.5)  # the stream is open before the first member can end
    worker = bench.worker("worker-batches")
    try:
        if not wait_until(lambda: bool(seen), 300, interval=0.05):
            raise RuntimeError("the batch's end never reached its event stream")
    finally:
        bench.stop(worker)
    with bench.client() as client:
        members = [raw.decode() for raw in client.zrange(keys.batch_jobs(batch_id), 0, -1)]
        with client.pipeline(transaction=False) as pipe:
            for job_id in members:
                pipe.hget(f"rq:job:{job_id}", "ended_at")
            ends = [utcparse(raw.decode()).replace(tzinfo=UTC).timestamp() for raw in pipe.execute()]
    return (seen[0] - max(ends)) * 1000


def run(bench: Bench) -> None:
    print("batches:", flush=True)
    _, base_url = bench.web("web-batches", "app.main:app")
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(ROUNDS):
        bench.flush()
        with bench.client() as client:
            compact(client)
        ours.append(MEMBERS / _submit(base_url)[0])
        bench.flush()
        theirs.append(MEMBERS / _enqueue_many(bench))
    rate, baseline = median(ours), median(theirs)
    bench.notes["batches_runs"] = ", ".join(f"{a:,.0f} vs {b:,.0f}" for a, b in zip(ours, theirs, strict=True))
    bench.add(
        Figure(
            "batches", "POST /batches, 10,000 demo.noop in one request", rate, "jobs/s",
            "Queue.enqueue_many, same jobs", baseline, "≥ 1.0x", rate / baseline >= 1.0,
            note=f"median of {ROUNDS}",
        )
    )  # fmt: skip
    bench.flush()
    latency = _end_latency(bench, base_url)
    bench.add(
        Figure(
            "batches", "batch end seen on its event stream after the last member ended", latency, "ms",
            target="≤ 100 ms", met=latency <= 100,
        )
    )  # fmt: skip
