"""What the concurrent worker knows of the jobs it runs, and the state its parts share.

`ConcurrentState` is the base of the concurrent worker's layers (`workers.runner`,
`workers.starts`, `workers.outcomes`, `workers.heartbeats`, `workers.commands`, `workers.loop`):
the running jobs, the outcomes waiting to be recorded, the claims waiting to be settled.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from rq import Queue
from rq.executions import Execution
from rq.job import Job

from core.settings import get_settings
from workers.base import ServiceBase
from workers.threads import JobThreads

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class JobInterruptedError(Exception):
    """Raised inside a job's thread once the worker gave up on it (timeout, stop, shutdown)."""


class JobStoppedError(Exception):
    """The job was stopped on request (`DELETE /jobs/{id}`, `send_stop_job_command`)."""


class JobKilledError(Exception):
    """The job was killed by RQ's `kill-horse` command (`rq` CLI, rq-dashboard): it fails as a killed horse's."""


@dataclass(eq=False)
class Running:
    """One job this worker runs."""

    job: Job
    queue: Queue
    execution: Execution
    #: `time.monotonic()` when it started.
    since: float = 0.0
    #: Whether its RQ execution is written (`BatchStartMixin._record_executions`)...
    recorded: bool = False
    #: ...or may be: a write of it went out, and its reply may have been lost.
    record_sent: bool = False
    task: asyncio.Task[None] | None = None
    thread_id: int | None = None
    #: Why the worker cancelled the job: "stop" (on request), "kill" (`kill-horse`: it fails), "shutdown"
    #: (requeue it) or "claim lost" (another worker recovered it: record nothing).
    cancelled_for: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(eq=False)
class RunOutcome:
    """How one run ended: the value it returned, or what it raised (`stopped`: on request; `killed`: by
    `kill-horse`)."""

    running: Running
    value: Any = None
    exc_info: ExcInfo | None = None
    stopped: bool = False
    killed: bool = False


class ConcurrentState(ServiceBase):
    """The state of a worker that runs up to `concurrency` (default `WORKER_CONCURRENCY`) jobs at once."""

    def __init__(
        self, queues: Sequence[str | Queue] | str | Queue, *args: Any, concurrency: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(queues, *args, **kwargs)
        self.concurrency = concurrency if concurrency is not None else get_settings().worker_concurrency
        self.running: dict[str, Running] = {}
        self._done: list[RunOutcome] = []
        #: Claims still to settle, each a call retried until Redis answers it.
        self._unsettled: list[Callable[[], object]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._threads = JobThreads(f"{self.name}-job")
        #: A second signal: stop even with outcomes Redis has not taken yet (the sweep settles them).
        self._forced_stop = False

    def _cancel(self, running: Running, reason: str) -> None:
        """Cancel a running job's task; `reason` says what its outcome becomes (see `Running.cancelled_for`)."""
        if running.task is not None and running.cancelled_for is None:
            running.cancelled_for = reason
            running.task.cancel()

    def _nudge(self) -> None:
        """Wake the loop from any thread (a signal, a command)."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)
