"""Streamed output: chunk latency from `write_output()` to an SSE client, and the Redis CPU a job streaming
1,000 chunks a second costs against the same job writing none.

`python -m bench output` runs it as a section of the full report; `python -m bench.output` runs it alone
on a private server and only prints its figures (docs/BENCHMARKS.md is left as it is).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.common import Bench, Figure, median, wait_until
from core.events import FINAL_STATUSES
from stack.redis_server import EmbeddedRedis

ENV = {"JOB_MODULES": "bench.output_jobs"}
#: Seconds each Redis CPU run streams (at 1,000 chunks a second), and rounds of (without, with) output.
CPU_SECONDS = 8
CPU_ROUNDS = 2


def run(bench: Bench) -> None:
    print("output: chunk latency to an SSE client; Redis CPU of 1,000 chunks/s vs none", flush=True)
    bench.flush()
    _, url = bench.web("web-output", "app.main:app", **ENV)
    with bench.client() as client:
        before = client.scard("rq:workers")
        bench.worker("worker-output", **ENV)
        if not wait_until(lambda: client.scard("rq:workers") > before, 30):
            raise RuntimeError("the output bench's worker did not start")
    with httpx.Client(base_url=url, timeout=30) as api:
        _latency(bench, api, rate=20, count=300, name="chunk latency, 20 chunks/s (each sent at once)", target=True)
        _latency(bench, api, rate=1000, count=5000, name="chunk latency, 1,000 chunks/s (merged)", target=False)
        _redis_cpu(bench, api)
    bench.stop_all()


def _submit(api: httpx.Client, **args: Any) -> str:
    response = api.post("/jobs", json={"type": "bench.paced_output", "args": args})
    response.raise_for_status()
    job_id: str = response.json()["id"]
    return job_id


def _events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    kind, data = "message", list[str]()
    for line in response.iter_lines():
        if line == "":
            if data:
                yield kind, json.loads("\n".join(data))
            kind, data = "message", list[str]()
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def _follow(api: httpx.Client, job_id: str, on_output: Any = None) -> None:
    """Read the job's event stream to its final status, calling `on_output(text, received_at)` per chunk."""
    with api.stream("GET", f"/jobs/{job_id}/events", timeout=httpx.Timeout(30, read=120)) as response:
        for kind, data in _events(response):
            if kind == "output" and on_output is not None:
                on_output(data["text"], time.time())
            if kind == "status" and data["status"] in FINAL_STATUSES:
                return


def _latency(bench: Bench, api: httpx.Client, *, rate: float, count: int, name: str, target: bool) -> None:
    """Each chunk is the wall-clock time of its `write_output` call; the client subtracts it on receipt."""
    latencies: list[float] = []

    def seen(text: str, received_at: float) -> None:
        latencies.extend((received_at - float(stamp)) * 1000 for stamp in text.split())

    job_id = _submit(api, count=count, rate=rate, start_after=1.0, stamped=True)
    _follow(api, job_id, seen)
    if len(latencies) < count * 0.9:
        raise RuntimeError(f"only {len(latencies)} of {count} chunks were received live")
    ordered = sorted(latencies)
    p50, p99 = median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    note = f"{len(latencies)} chunks"
    bench.add(Figure("output", f"{name} p50", p50, "ms", target="≤ 50 ms" if target else "", met=p50 <= 50 if target
                     else None, note=note))  # fmt: skip
    bench.add(Figure("output", f"{name} p99", p99, "ms", target="≤ 200 ms" if target else "",
                     met=p99 <= 200 if target else None, note=note))  # fmt: skip


def _redis_cpu_seconds(bench: Bench) -> float:
    with bench.client() as client:
        info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _cpu_run(bench: Bench, api: httpx.Client, *, write: bool, listen: bool) -> float:
    """Redis CPU (ms per second of the job's run) while one job paces 1,000 chunks a second."""
    count = CPU_SECONDS * 1000
    job_id = _submit(api, count=count, rate=1000, write=write, start_after=0.5)
    listener = threading.Thread(target=_follow, args=(api, job_id)) if listen else None
    if listener is not None:
        listener.start()
    with bench.client() as client:
        key = f"rq:job:{job_id}"
        wait_until(lambda: client.hget(key, "status") == b"started", 30, interval=0.002)
        time.sleep(0.5)  # the job's own pause before its first chunk: measure the loop only
        started, cpu_before = time.monotonic(), _redis_cpu_seconds(bench)
        wait_until(lambda: client.hget(key, "status") != b"started", CPU_SECONDS + 60, interval=0.2)
        elapsed, cpu_after = time.monotonic() - started, _redis_cpu_seconds(bench)
    if listener is not None:
        listener.join(30)
    return (cpu_after - cpu_before) * 1000 / elapsed


def _redis_cpu(bench: Bench, api: httpx.Client) -> None:
    for listen in (False, True):
        runs: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(CPU_ROUNDS):
            for write in (False, True):
                runs[write].append(_cpu_run(bench, api, write=write, listen=listen))
        with_output, without = median(runs[True]), median(runs[False])
        who = "one SSE client following the job" if listen else "no client following it"
        bench.add(
            Figure(
                "output",
                f"Redis CPU, job streaming 1,000 chunks/s, {who}",
                with_output,
                "ms/s",
                "same job, no output",
                without,
                target="≤ 2x",
                met=with_output <= 2 * without,
                note=f"runs: {_listed(runs[True])} vs {_listed(runs[False])}",
            )
        )


def _listed(values: list[float]) -> str:
    return ", ".join(f"{value:.1f}" for value in values)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as data_dir:
        server = EmbeddedRedis(Path(data_dir)).start()
        bench = Bench(server, 0)
        try:
            run(bench)
        finally:
            bench.stop_all()
            server.stop()
    return 0 if all(figure.met is not False for figure in bench.figures) else 1


if __name__ == "__main__":
    sys.exit(main())
