"""A worker that runs many jobs at once in one process: what `workers.Worker` is at `WORKER_CONCURRENCY` > 1.

RQ's workers run one job at a time, so a process waiting on an HTTP or LLM call sits idle.
`ConcurrentWorker` keeps up to `WORKER_CONCURRENCY` jobs running: coroutine jobs (an
`async def`, or a function returning a coroutine) as tasks on its event loop, plain
functions in threads. It stays an RQ worker: registered with RQ (rq-dashboard lists it),
one RQ `Execution` per running job in the `StartedJobRegistry` with heartbeats, RQ's results,
registries, retries, callbacks and `stop-job` commands.

It keeps every guarantee of the forking `ServiceWorker` that does not need a process per job
(`workers.base.ServiceBase`: claims, liveness and abandoned-job sweeps, Redis outages, status
events and callbacks, logs and run times, stop flags and dependents of failed jobs). Its layers,
each a module, each built on the one before:

- `workers.running`: the running jobs and the state the layers share;
- `workers.runner`: running one job (a task, or a thread of `workers.threads`), its timeout, its stop;
- `workers.starts`: claiming jobs for the free slots and starting them in one round trip; RQ's
  executions written for the jobs still running `EXECUTION_RECORD_DELAY` later;
- `workers.outcomes`: recording what ended (plain successes in one MULTI/EXEC), settling claims;
- `workers.heartbeats`: heartbeats, and abandoning a job whose claim was taken over;
- `workers.commands`: `stop-job` and the stop signals;
- `workers.loop`: the work loop.

What needs a process per job (`JOB_MAX_MEMORY`, surviving a segfault or the OOM killer, hard-
killing a job stuck in C past its timeout) needs the forking worker (`WORKER_CONCURRENCY=1`).
"""

from __future__ import annotations

from workers.loop import WorkLoopMixin


class ConcurrentWorker(WorkLoopMixin):
    """`rq worker -w workers.concurrent.ConcurrentWorker`: up to `concurrency` (default
    `WORKER_CONCURRENCY`) jobs at once, whatever `WORKER_CONCURRENCY` says."""
