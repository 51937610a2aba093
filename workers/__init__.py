"""The worker processes: `rq worker -c workers.settings -w workers.Worker`.

`workers.Worker` is the worker class the settings ask for, resolved on first use:
`workers.worker.ServiceWorker` (forking, one work horse per job) at `WORKER_CONCURRENCY=1`, else
`workers.concurrent.ConcurrentWorker` (that many jobs at once in one process). Both are built on
`workers.base.ServiceBase`; each module of this package holds one part:

    base         what both share: conventions, liveness and recovery, scheduler, outages, clean-up
    worker       the forking worker, and its stop signals
    dequeue      the forking worker's claim-based dequeue
    horse        the forking worker's supervision of its work horse
    concurrent   the concurrent worker, built in layers: running, runner, threads, starts,
                 outcomes, heartbeats, commands, loop
    claimed      claimed job ids -> jobs to run; an unreadable job failed once
    liveness     liveness keys: which workers are alive
    recovery     the abandoned-job sweep, settling claims
    outages      waiting out Redis outages
    scheduling   keeping RQ's scheduler going
    cleanup      RQ's registry clean-up, minus the started registry
    backoff      the one doubling delay
    announcing, lifecycle   status events and completion callbacks
    observe      log lines and run times
    stopping     stop grace, stop flags, dependents of failed jobs
    lifeline     children die with the worker; the horse's memory cap
    job          the job class: registered job types only, attempts counted
    settings     the `-c` module RQ reads

RQ's private names and RQ's Redis schema are reached through `core.rqadapter` only.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "Worker":
        from core.settings import get_settings

        if get_settings().worker_concurrency > 1:
            from workers.concurrent import ConcurrentWorker

            return ConcurrentWorker
        from workers.worker import ServiceWorker

        return ServiceWorker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
