"""Tracing's cost: worker drains with tracing on against off, and `POST /jobs` with tracing unset
against the code before tracing existed (and with tracing on, for scale).

Spans go to a real OTLP/HTTP receiver in the bench process (`tests.support.otlp`); a drain with
tracing on counts only once the receiver holds a run span for every job. "Before" is the tree of
`BENCH_TRACING_BASE` (default: the commit that introduced `core/tracing`'s parent), exported with
`git archive` into a temporary directory and served by the same Procfile web line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

from bench import load
from bench.common import ROOT, Bench, Figure, compact, median, wait_port, wait_until
from bench.web import CONNECTIONS, SUBMIT_BODY
from bench.workers import drain_rate
from stack.procfile import procfile_command
from stack.redis_server import free_port
from tests.support.otlp import Receiver, serve

ROUNDS = 3
#: Worker classes and their drain sizes (the forking worker forks a horse per job: ~20x slower).
WORKERS = {"concurrent (Procfile default)": ("", 3000), "forking (WORKER_CONCURRENCY=1)": ("1", 300)}


def _on(receiver: Receiver) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}


def _base_commit() -> str:
    given = os.environ.get("BENCH_TRACING_BASE")
    if given:
        return given
    first = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "core/tracing/__init__.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return f"{first[-1]}^"


@contextmanager
def _tree_before() -> Iterator[Path]:
    """The repository as of the base commit, in a temporary directory (its `.venv` the same venv)."""
    archive = subprocess.run(["git", "archive", _base_commit()], cwd=ROOT, capture_output=True, check=True).stdout
    with tempfile.TemporaryDirectory(prefix="bench-before-") as directory:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(directory, filter="data")
        yield Path(directory)


def _web(bench: Bench, name: str, cwd: Path, **env: str) -> str:
    port = free_port()
    command = procfile_command("web").replace("${PORT:-8000}", str(port))
    proc = bench.spawn(name, f"env -C {cwd} {command}", **env)
    wait_port(port, proc)
    return f"http://127.0.0.1:{port}"


def drains(bench: Bench, receiver: Receiver) -> None:
    for label, (concurrency, count) in WORKERS.items():
        env = {"WORKER_CONCURRENCY": concurrency} if concurrency else {}
        offs, ons, ratios = [], [], []
        for round_ in range(ROUNDS):
            off = drain_rate(bench, f"tracing-off-{round_}", count, "", **env).rate
            before = receiver.count
            on = drain_rate(bench, f"tracing-on-{round_}", count, "", **env, **_on(receiver)).rate
            _all_received(receiver, before + count, label)
            offs.append(off)
            ons.append(on)
            ratios.append(on / off)
        pair = ratios.index(median(ratios))
        bench.add(
            Figure("tracing", f"worker drain, {label}, tracing on", ons[pair], "jobs/s", "tracing off, same round",
                   offs[pair], ">= 0.8x", ratios[pair] >= 0.8,
                   f"{count} demo.noop jobs; round with the median ratio of {ROUNDS}: "
                   f"{', '.join(f'{r:.2f}' for r in ratios)}; every job's run span received")
        )  # fmt: skip


def _all_received(receiver: Receiver, spans: int, label: str) -> None:
    if not wait_until(lambda: receiver.count >= spans, 30, interval=0.1):
        raise RuntimeError(f"{label}: {receiver.count} of {spans} run spans received")


def submissions(bench: Bench, receiver: Receiver) -> None:
    bench.flush()
    with _tree_before() as before:
        urls = {
            "before tracing": _web(bench, "web-before-tracing", before),
            "tracing unset": _web(bench, "web-tracing-unset", ROOT),
            "tracing on": _web(bench, "web-tracing-on", ROOT, **_on(receiver)),
        }
        for url in urls.values():
            load.run(f"{url}/jobs", seconds=1, connections=CONNECTIONS, method="POST", body=SUBMIT_BODY)  # warm-up
        runs: dict[str, list[float]] = {name: [] for name in urls}
        with bench.client() as client:
            for _ in range(ROUNDS):
                for name, url in urls.items():
                    client.flushdb()
                    compact(client)
                    result = load.run(f"{url}/jobs", seconds=bench.seconds, connections=CONNECTIONS, method="POST",
                                      body=SUBMIT_BODY)  # fmt: skip
                    if result.errors:
                        raise RuntimeError(f"{name}: {result.errors} errors under load")
                    runs[name].append(result.rps)
        bench.stop_all()
    rates = {name: median(values) for name, values in runs.items()}
    note = "; ".join(f"{name}: {', '.join(f'{v:,.0f}' for v in values)}" for name, values in runs.items())
    bench.add(
        Figure("tracing", "POST /jobs, tracing unset", rates["tracing unset"], "req/s", "before tracing",
               rates["before tracing"], ">= 0.95x", rates["tracing unset"] >= 0.95 * rates["before tracing"],
               f"medians of {ROUNDS} alternating rounds: {note}")
    )  # fmt: skip
    bench.add(
        Figure("tracing", "POST /jobs, tracing on", rates["tracing on"], "req/s", "tracing unset",
               rates["tracing unset"], note="every request a server span, batched to the receiver")
    )  # fmt: skip


def costs(bench: Bench) -> None:
    """What tracing off costs per job and per submission (its hooks), and what loading the SDK costs."""
    code = (
        "import timeit; from core import tracing; from core.submitting import initial_meta as initial;"
        "from workers.job import RegisteredJob; import redis;"
        "job = RegisteredJob('x', connection=redis.Redis());"
        "n = 200000;"
        "hook = min(timeit.repeat(lambda: tracing.job_run(job).__enter__(), number=n, repeat=5)) / n;"
        "meta = min(timeit.repeat(lambda: initial('demo.noop', 'k'), number=n, repeat=5)) / n;"
        "print(hook * 1e9, meta * 1e9)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    hook_ns, meta_ns = (float(x) for x in _python(code, env).split())
    sdk_ms = _import_ms("core.tracing.sdk", env)
    bench.add(Figure("tracing", "run hook with tracing off (per job)", hook_ns, "ns",
                     note=f"tracing.job_run; initial_meta with its carrier check: {meta_ns:.0f} ns"))  # fmt: skip
    bench.add(Figure("tracing", "loading the SDK and exporter (tracing on, once per process)", sdk_ms, "ms",
                     note="never imported with tracing off"))  # fmt: skip


def _python(code: str, env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


def _import_ms(module: str, env: dict[str, str]) -> float:
    """Median wall time of importing `module` in a fresh process, after `redis` (which the service imports anyway)."""
    code = f"import redis, time; t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1e3)"
    return median([float(_python(code, env)) for _ in range(5)])


def run(bench: Bench) -> None:
    print("tracing: worker drains on vs off, POST /jobs unset vs before, hook and import costs", flush=True)
    receiver_gen = serve(count_only=True)
    receiver = next(receiver_gen)
    try:
        costs(bench)
        drains(bench, receiver)
        submissions(bench, receiver)
    finally:
        receiver_gen.close()
