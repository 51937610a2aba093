"""The peers section of docs/BENCHMARKS.md (written in place, between its markers) and its SVG plot."""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import ROOT, Bench
from bench.peers import envs, notes, plot
from bench.peers.rounds import WEB_CONNECTIONS, Measured, Results
from bench.peers.stats import Spread, median, percentile
from bench.peers.systems import SERVICE, SERVICE_FEATURED, System

DOC = ROOT / "docs" / "BENCHMARKS.md"
SVG = ROOT / "docs" / "bench-peers.svg"
START, END = "<!-- bench:peers:start -->", "<!-- bench:peers:end -->"


@dataclass(frozen=True)
class Context:
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    elapsed: float
    server: str
    only: Sequence[str]
    finished: str = ""  # UTC, when the run ended


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    goal: str
    met: bool


def server_version(bench: Bench) -> str:
    with bench.client() as client:
        info = client.info("server")
    return f"{info.get('server_name', 'redis')} {info.get('valkey_version', info['redis_version'])}"


def replace_between_markers(document: str, block: str) -> str:
    """`document` with the text between START and END (markers included) replaced by `block`, which
    carries its own markers; `block` is appended when the markers are absent."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if pattern.search(document):
        return pattern.sub(lambda _: block, document, count=1)
    return document.rstrip("\n") + "\n\n" + block + "\n"


def write(text: str, svg_text: str) -> Path:
    SVG.write_text(svg_text)
    DOC.write_text(replace_between_markers(DOC.read_text() if DOC.exists() else "# Benchmarks\n", text))
    return DOC.relative_to(ROOT)


def _peers(results: Results) -> list[System]:
    return [s for s in results.systems if s.key != SERVICE_FEATURED.key]


def svg(results: Results) -> str:
    bars = [
        plot.Bar(s.label, Spread.of([d.rate for d in results.measured[s.key].a]), highlight=s.key == SERVICE.key)
        for s in _peers(results)
    ]
    bars.sort(key=lambda bar: -bar.spread.median)
    title = f"A: {results.plan.a_jobs:,} queued no-op jobs, one worker process ({results.plan.rounds} rounds)"
    if results.plan.quick:
        title = f"A (quick mode: {results.plan.a_jobs:,} jobs, {results.plan.rounds} round)"
    return plot.render(bars, title, "jobs/s")


def _a(m: Measured) -> Spread:
    return Spread.of([d.rate for d in m.a])


def targets(results: Results) -> list[Target]:
    """The issue's targets, as measured ratios (reported, never asserted)."""
    m = results.measured
    ours = _a(m[SERVICE.key]).median
    found: list[Target] = []
    python = [s for s in results.systems if s.peer not in ("service", "bullmq")]
    if python:
        best = max(python, key=lambda s: _a(m[s.key]).median)
        ratio = ours / _a(m[best.key]).median
        found.append(Target("A: the service's one process vs the best Python peer", f"{ratio:.2f}x ({best.label})",
                            ">= 1.2x", ratio >= 1.2))  # fmt: skip
    for system in (s for s in results.systems if s.peer == "bullmq"):
        ratio = ours / _a(m[system.key]).median
        found.append(Target(f"A: vs {system.label}", f"{ratio:.2f}x", ">= 0.5x", ratio >= 0.5))
    b = {s.key: median(m[s.key].b) for s in _peers(results) if m[s.key].b}
    fastest = min(b, key=lambda key: b[key])
    label = next(s.label for s in results.systems if s.key == fastest)
    measured = f"{b[SERVICE.key] / b[fastest]:.2f}x the time ({label}, {b[fastest]:.2f} s)"
    met = b[SERVICE.key] <= 1.1 * b[fastest]
    found.append(Target("B: the service vs the fastest system", measured, "<= 1.10x", met))
    redis_us = {s.key: median([d.redis_us for d in m[s.key].a]) for s in _peers(results) if s.results}
    lowest = min(redis_us, key=lambda key: redis_us[key])
    label = next(s.label for s in results.systems if s.key == lowest)
    found.append(Target("A: Redis CPU per job, lowest of the systems keeping results",
                        f"{redis_us[SERVICE.key]:.0f} us; lowest {redis_us[lowest]:.0f} us ({label})", "lowest",
                        lowest == SERVICE.key))  # fmt: skip
    p50 = median(m[SERVICE.key].d)
    found.append(Target("D: p50 latency of one job, idle system", f"{p50:.2f} ms", "<= 2 ms", p50 <= 2))
    return found


def _row(system: System, m: Measured) -> str:
    a = _a(m)
    worker = median([d.worker_us for d in m.a])
    redis_us = median([d.redis_us for d in m.a])
    b = Spread.of(m.b).text(2) if m.b else "— (one job at a time)"
    c = Spread.of(m.c).text() if m.c else ""
    d = f"{percentile(m.d, 0.5):.2f} / {percentile(m.d, 0.99):.2f} ({len(m.d)})" if m.d else "— (no result to wait on)"
    kept = "yes" if system.results else "no"
    cells = [system.label, system.setting, kept, a.text(), f"{worker:,.0f}", f"{redis_us:,.0f}", b, c, d]
    return "| " + " | ".join(cells) + " |"


def paired_ratio(base: Sequence[float], value: Sequence[float]) -> float:
    """The median over rounds of each round's `value / base` (both measured back to back in that round)."""
    return median([v / b for b, v in zip(base, value, strict=True)])


def _featured(results: Results) -> list[str]:
    m = results.measured
    rows = []
    for name, base, value, unit in (
        ("A: one worker process drains no-ops", [d.rate for d in m[SERVICE.key].a],
         [d.rate for d in m[SERVICE_FEATURED.key].a], "jobs/s"),
        (f"web: `POST /jobs`, {WEB_CONNECTIONS} connections", results.web["plain"], results.web["featured"], "req/s"),
    ):  # fmt: skip
        ratio = paired_ratio(base, value)
        verdict = "PASS" if ratio >= 0.95 else "MISS"
        rows.append(
            f"| {name} | {Spread.of(base).text()} {unit} | {Spread.of(value).text()} {unit} | {ratio:.3f} "
            f"(of medians: {median(value) / median(base):.3f}) | >= 0.95 | {verdict} |"
        )
    return [
        "| figure | plain | features configured, unused | ratio, median of rounds | target | met |",
        "|---|---|---|---|---|---|",
        *rows,
    ]


def _machine(context: Context) -> list[str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    mhz = re.search(r"cpu MHz\s*:\s*(.*)", cpuinfo)
    mem_kb = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
    tuning = [f"`{k}={v}`" for k, v in sorted(os.environ.items()) if k.startswith(("BENCH_", "WORKER_", "PYTHON"))]

    def load(values: tuple[float, float, float]) -> str:
        return " / ".join(f"{v:.2f}" for v in values)

    speed = f", {float(mhz.group(1)):.0f} MHz" if mhz else ""
    peers = ("saq", "dramatiq", "arq", "taskiq", "celery", "bullmq")
    return [
        f"- CPU (/proc/cpuinfo): {model.group(1) if model else platform.processor()}, {os.cpu_count()} logical cores"
        f"{speed}; RAM {mem_kb / 1024 / 1024:.1f} GiB; {platform.platform()}",
        f"- Environment (`env`, the variables that tune a run): {', '.join(tuning) or 'none set'}",
        f"- Load average (1/5/15 min) before the run: {load(context.load_before)}; after: {load(context.load_after)} "
        "(the machine is shared: other helpers' test suites ran on the same 2 cores meanwhile)",
        f"- Server: {context.server} (the bench's own, started as `make run` starts it: loopback, append-only file "
        "on, everysec), shared by every system; each run starts on a flushed server with a freshly rewritten AOF",
        f"- Versions: Python {platform.python_version()} (service and Python peers); "
        + "; ".join(f"{peer}: {envs.versions(peer)}" for peer in peers),
    ]


def section(results: Results, context: Context) -> str:
    plan = results.plan
    mode = "quick mode (development figures)" if plan.quick else "full run"
    lines = [
        START,
        "## The service beside its peers",
        "",
        f"`python -m bench peers` — {mode}, ended {context.finished or 'at an unrecorded time'}: {plan.rounds} "
        f"round(s), interleaved (each round runs every system through A, then B, C and D), "
        f"{context.elapsed / 60:.0f} min." + (f" Peers run: {', '.join(context.only)}." if context.only else ""),
        "",
        *_machine(context),
        "",
        "![jobs/s per system on workload A](bench-peers.svg)",
        "",
        f"- **A**: {plan.a_jobs:,} queued no-op jobs drained by one worker process; jobs/s median [range of rounds]; "
        "CPU per job of the worker's process tree (/proc) and of valkey-server (`INFO cpu`) between 10% and 90% "
        "finished, medians.",
        f"- **B**: seconds for {plan.b_jobs:,} jobs that each wait 100 ms (async sleep; `time.sleep` in a thread for "
        "Dramatiq and Celery), one worker process at concurrency 50; first to last job seen finished + 0.1 s "
        f"(start-up excluded; ideal {plan.b_jobs / 50 * 0.1:.1f} s).",
        f"- **C**: jobs/s of one client making {plan.c_jobs:,} enqueue calls one after the other, each system's own "
        "call; the service's is its submission path in-process (what `POST /jobs` runs after parsing the body).",
        f"- **D**: enqueue → finished seen by the client, one job at a time on an idle, warm worker; p50 / p99 ms "
        f"over every round's samples (count in brackets; {plan.d_jobs} per round after 20 warm-up jobs).",
        "",
        "| system | setting (A, D) | results kept | A jobs/s | worker CPU us/job | Redis CPU us/job | B s | "
        "C jobs/s | D p50 / p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
        *(_row(s, results.measured[s.key]) for s in _peers(results)),
    ]
    if "one client" in results.web:
        lines.append(
            f"| this service, `POST /jobs` over HTTP | web line, one keep-alive connection | yes | | | | | "
            f"{Spread.of(results.web['one client']).text()} | |"
        )
    lines += ["", "### Targets (measured in this run, reported, not asserted)", "",
              "| target | measured | goal | met |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {t.name} | {t.measured} | {t.goal} | {'PASS' if t.met else 'MISS'} |" for t in targets(results)]
    lines += ["", "### No feature slows the hot path", "", *_featured(results), "", *notes.featured(results)]
    lines += ["", *notes.misses(), "", *notes.redis_limit(results), "", *notes.peers(), "", *notes.rerun(), END]
    return "\n".join(lines)
