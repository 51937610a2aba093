"""The prose of the peers section: what each system does per job, the Redis limit, how to rerun."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.peers.stats import median

if TYPE_CHECKING:
    from bench.peers.rounds import Results


def featured(results: Results) -> list[str]:
    plain = results.web["plain"]
    spread = max(plain) / min(plain) - 1 if min(plain) else 0.0
    band = "wider than" if spread > 0.05 else "within"
    return [
        "Both variants run in the same rounds, one after the other: the Procfile's worker line and web line",
        "as they are, and the same with `TYPE_CONCURRENCY=demo.sleep=4` (a limit on another job type) and one",
        "cron schedule defined through `POST /schedules` (never due during a run). Tracing is off and streamed",
        "output unused, their defaults. Neither addition is read by the submission path (it writes the same",
        "fair-index entries with and without limits; the schedule is read only by workers' schedulers), so the",
        "web ratio measures how alike two identical web processes are on this machine: the plain process alone",
        f"gave {min(plain):,.0f} to {max(plain):,.0f} req/s from round to round, a spread ({spread:.0%}) {band} the",
        "5% band.",
    ]


def redis_limit(results: Results) -> list[str]:
    service = results.measured["service"]
    redis_us = median([d.redis_us for d in service.a])
    rate = median([d.rate for d in service.a])
    cap = 1e6 / redis_us
    return [
        "### Against the Redis limit",
        "",
        f"The service's worker cost the server {redis_us:.0f} us of CPU per job on A (RQ's bookkeeping and the",
        "service's: the claim, the job hash, the started and finished registries, the result stream, the status",
        f"events), so one Redis core, fully used, caps this design near {cap:,.0f} jobs/s (at 60–90 us per job,",
        f"11–16k jobs/s). One worker process reached {rate:,.0f} jobs/s, {rate / cap:.0%} of that cap: the worker,",
        "not Redis, is the limit of one process; more worker processes scale until Redis's core is spent, and on",
        "this 2-core machine the workers and Redis share the same two cores long before that.",
    ]


def misses() -> list[str]:
    return [
        "### Where the service stands",
        "",
        "- **A** — the worker's own CPU per job (the column beside the rate) is what sets its rate: one process",
        "  spends most of a core on Python (redis-py packing and parsing RQ's bookkeeping commands, `Job`",
        "  restore, the log lines, the hand-off to job threads), where BullMQ's Node worker runs its bookkeeping",
        "  inside Lua scripts and spends a fraction of that per job. Closing that gap means fewer, larger",
        "  commands per job from Python (docs/workers.md, where the worker's time goes).",
        "- **B** — every system waits the same 100 ms per job; the service's time above the ideal 2.0 s is",
        "  its per-job work at concurrency 50 in one process: the claim and the batched start and finish",
        "  records (as on A), plus the progress report `demo.sleep` writes after its wait (one round trip and",
        "  one event per job, which the peers' sleep jobs do not do). Not profiled in this run.",
        "- **D** — an idle worker of the service waits on a wake-up channel that every push of the service",
        "  publishes on (`workers/wake.py`), so a job sent to an idle system is claimed at once (before, it",
        "  polled every 50 ms: a p50 of 54 ms). What is left is the chain of round trips one job takes through",
        "  the worker: the wake-up, the claim, loading the job, the start record, the hand-off to a job thread,",
        "  the outcome record (WATCH, read, MULTI/EXEC) and the finished event, each ~0.1–0.3 ms on this",
        "  machine; BullMQ's worker finishes a job and fetches the next in one Lua call. Under 2 ms takes fewer",
        "  round trips on that path: a claim script that returns the job's hash and writes its start.",
    ]


def peers() -> list[str]:
    return [
        "### What each system does per job",
        "",
        "- **This service** — RQ's full bookkeeping (job hash, started/finished registries, execution records,",
        "  the result in a stream, worker heartbeats, RQ's scheduler on), plus its own: listing indexes, one",
        "  event per status change on pub/sub, retries and timeouts as declared per job type; results kept",
        "  for `RESULT_TTL`. Its jobs are submitted through its own path (validation, the listing indexes).",
        "- **SAQ** — a job hash (JSON) per job, queued/active lists and an incomplete set, result kept in the",
        "  job for `ttl` (3,600 s here; `ttl=0` deletes it), worker stats and heartbeats; retries opt-in.",
        "- **Dramatiq** — a message hash and a queue list, acks per worker, heartbeats; the Retries middleware",
        "  (20 retries by default) is on; results only with the Results middleware (a key per result).",
        "- **arq** — a job key and a sorted-set queue, an in-progress key, a result key (kept an hour here,",
        "  `keep_result=0` keeps none); the worker polls the queue (`poll_delay`), no blocking pop; retries",
        "  on request (`Retry`); health-check key.",
        "- **taskiq + taskiq-redis** — a list queue (one `LPUSH`/`BRPOP` per job) and one result key; no",
        "  registries, no heartbeats, no retries unless its middleware is added.",
        "- **Celery** — kombu's Redis transport (a list queue, unacked hash and index for visibility), one",
        "  result key per task; gossip, mingle and heartbeat events off (`--without-*`), as the existing",
        "  `workers` section ran it; retries on request.",
        "- **BullMQ** — a job hash, wait/active lists, the completed set (the job and its return value kept;",
        "  `removeOnComplete` deletes it), an events stream entry per state change, a lock per active job",
        "  renewed while it runs, all in Lua scripts; retries on request (`attempts`).",
        "- **Not run** — Celery without results (`ignore_result`) and taskiq without a result backend: both",
        "  have such a mode, but neither leaves anything the bench can count finished jobs by.",
    ]


def rerun() -> list[str]:
    return [
        "### Rerun",
        "",
        "```sh",
        "flock /tmp/heavy.lock .venv/bin/python -m bench peers             # full: 3 rounds, writes this section",
        "flock /tmp/heavy.lock .venv/bin/python -m bench peers --quick     # development: fewer jobs, 1 round",
        "flock /tmp/heavy.lock .venv/bin/python -m bench peers --only dramatiq   # the service beside one peer",
        "make bench BENCH_ARGS='peers --only bullmq --quick'",
        "```",
        "",
        "Peers are installed on first use: each Python peer into its own venv `.venv-bench/<peer>` from",
        "`bench/peers/requirements-<peer>.txt` (every package pinned; separate venvs because arq pins redis-py",
        "5 and the others 8), BullMQ with `npm ci` into `.data/bench/bullmq` from `bench/peers/bullmq/`",
        "(package.json and package-lock.json; Debian's nodejs and npm). Nothing goes into the service's venv.",
        "`--only` runs print their figures and leave this document alone unless `--write` is given.",
    ]
