"""The worker side of RQ's insides: the private methods a worker overrides, and the private state it reads.

`RQWorkerHooks` is the one mixin that overrides RQ worker methods by their private names; each override
hands over to a public method of the service's worker classes. The functions below name, one by one,
the private RQ state and methods the workers use.
"""

from __future__ import annotations

import contextvars
from datetime import datetime
from typing import Any

from rq.executions import Execution
from rq.job import Job, _current_job
from rq.queue import Queue
from rq.scheduler import RQScheduler
from rq.worker import BaseWorker, DequeueStrategy


class RQWorkerHooks(BaseWorker):
    """Overrides of RQ 3.0.0's private `BaseWorker` methods, each handing over to a public method."""

    def _shutdown(self) -> None:
        """Overrides `BaseWorker._shutdown`, which RQ's SIGTERM/SIGINT handler (`request_stop`) calls after
        `handle_warm_shutdown_request`: RQ's version writes to Redis inside the signal handler (a down Redis
        would raise there) and knows one job per worker. Hands over to `on_warm_shutdown`."""
        self.on_warm_shutdown()

    def on_warm_shutdown(self) -> None:
        """The first stop signal, once announced (`handle_warm_shutdown_request`): RQ's own by default."""
        super()._shutdown()  # type: ignore[no-untyped-call]

    def _finalize_success(self, job: Job, queue: Queue, execution: Execution, return_value: Any) -> None:
        """Overrides `BaseWorker._finalize_success` (the end of a job that returned: its heartbeat, success
        callback, `handle_job_success` or `handle_job_retry`): nothing of it unless `may_record_outcome`."""
        if self.may_record_outcome(job):
            super()._finalize_success(job, queue, execution, return_value)

    def _finalize_failure(self, job: Job, queue: Queue, execution: Execution, exc_info: Any) -> None:
        """Overrides `BaseWorker._finalize_failure` (the end of a job that raised: its heartbeat, failure
        callback, `handle_exception`, `handle_job_failure`): nothing of it unless `may_record_outcome`."""
        if self.may_record_outcome(job):
            super()._finalize_failure(job, queue, execution, exc_info)

    def may_record_outcome(self, job: Job) -> bool:
        """Whether this worker may record `job`'s outcome now (RQ's: always)."""
        return True

    def _pubsub_exception_handler(self, exc: Exception, pubsub: Any, pubsub_thread: Any) -> None:
        """Overrides `BaseWorker._pubsub_exception_handler`, which RQ hands to the thread listening for
        commands: RQ's version lets the thread die on a connection error. Hands over to `on_pubsub_error`."""
        if not self.on_pubsub_error(exc):
            super()._pubsub_exception_handler(exc, pubsub, pubsub_thread)

    def on_pubsub_error(self, exc: Exception) -> bool:
        """The command listener lost `exc`: True if handled (the thread goes on), False for RQ's handling."""
        return False


# -- the worker's private state -------------------------------------------------------------


def ordered_queues(worker: BaseWorker) -> list[Queue]:
    """The worker's queues in the order of its dequeue strategy (RQ's `_ordered_queues`)."""
    queues: list[Queue] = worker._ordered_queues
    return queues


def set_dequeue_strategy(worker: BaseWorker, strategy: DequeueStrategy) -> None:
    """Use `strategy` (`rq worker --dequeue-strategy`) from now on, as RQ's `work()` does."""
    worker._dequeue_strategy = strategy


def dequeue_strategy(worker: BaseWorker) -> DequeueStrategy:
    """The worker's dequeue strategy (RQ's `_dequeue_strategy`)."""
    return DequeueStrategy(worker._dequeue_strategy or DequeueStrategy.DEFAULT)


def stop_requested(worker: BaseWorker) -> bool:
    """Whether the worker was asked to stop taking jobs (RQ's `_stop_requested`)."""
    return bool(worker._stop_requested)


def request_stop(worker: BaseWorker) -> None:
    """Ask the worker to take no more jobs (what RQ's `_shutdown` sets while a job runs)."""
    worker._stop_requested = True


def shutdown_requested_at(worker: BaseWorker) -> datetime | None:
    """When the first stop signal came (RQ's `_shutdown_requested_date`), if one did."""
    requested: datetime | None = worker._shutdown_requested_date
    return requested


def stopped_job_id(worker: BaseWorker) -> str | None:
    """The job RQ's `stop-job` command stopped (RQ's `_stopped_job_id`): its failure is recorded `stopped`."""
    job_id: str | None = worker._stopped_job_id
    return job_id


def mark_stopped(worker: BaseWorker, job_id: str) -> None:
    """Record `job_id`'s coming failure as `stopped`, as RQ's `stop-job` command does."""
    worker._stopped_job_id = job_id


def install_signal_handlers(worker: BaseWorker) -> None:
    """RQ's SIGTERM/SIGINT handlers (`request_stop`, then `request_force_stop`)."""
    worker._install_signal_handlers()


def start_scheduler(
    worker: BaseWorker, burst: bool, logging_level: str | None, date_format: str, log_format: str
) -> None:
    """RQ's `--with-scheduler` start: take the scheduler locks, start the scheduler process if taken."""
    worker._start_scheduler(burst, logging_level, date_format, log_format)


def scheduler_process(scheduler: RQScheduler) -> Any:
    """The scheduler's process (a `multiprocessing.Process`), or None if it never started."""
    return scheduler._process


def horse_reaped(worker: BaseWorker) -> None:
    """The work horse was waited for: the worker has none (RQ's `_horse_pid = 0`)."""
    worker._horse_pid = 0


def handle_stopped_job(worker: BaseWorker, job: Job, queue: Queue, execution: Execution) -> None:
    """RQ's end of a job whose horse `stop-job` killed: stopped callback, then recorded `stopped`."""
    worker._handle_stopped_job(job, queue, execution)  # type: ignore[attr-defined]


def finalize_success(worker: BaseWorker, job: Job, queue: Queue, execution: Execution, value: Any) -> None:
    """RQ's handling of a job that returned `value` (a `Retry`, callbacks, dependents, webhooks...)."""
    worker._finalize_success(job, queue, execution, value)


def finalize_failure(worker: BaseWorker, job: Job, queue: Queue, execution: Execution, exc_info: Any) -> None:
    """RQ's handling of a job that raised: failure callback, exception handlers, retry or `failed`."""
    worker._finalize_failure(job, queue, execution, exc_info)


# -- the running job, as `rq.get_current_job()` sees it -----------------------------------


def bind_current_job(job: Job) -> contextvars.Token[Any]:
    """Make `job` what `rq.get_current_job()` returns in this context (`jobs.progress` relies on it)."""
    return _current_job.set(job)


def unbind_current_job(token: contextvars.Token[Any]) -> None:
    _current_job.reset(token)
