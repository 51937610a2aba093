"""Worker SIGTERM (a platform restart): finish the job within the grace, else requeue it; exit 0 in time."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx
import redis
from rq import Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry

from core.queues import QUEUE_NAMES, SERIALIZER
from core.settings import Settings
from tests.factories import steps_job
from tests.integration.test_spine import submit, view, wait_status
from tests.reliability.support import claims
from tests.reliability.test_worker_deaths import HEADROOM, wait_running
from tests.support.procs import ProcessFactory, wait_for

#: Heroku sends SIGKILL this many seconds after SIGTERM (Render's default is the same).
PLATFORM_KILL_AFTER = 30


def sigterm_and_wait(worker: subprocess.Popen[bytes]) -> tuple[int, float]:
    worker.send_signal(signal.SIGTERM)
    started = time.monotonic()
    code = worker.wait(PLATFORM_KILL_AFTER + 5)
    return code, time.monotonic() - started


def test_default_grace_leaves_time_before_the_platform_kill() -> None:
    grace = Settings.model_fields["worker_shutdown_grace"].default
    assert 0 < grace <= PLATFORM_KILL_AFTER - 5


def test_sigterm_lets_a_short_job_finish_then_exits_0(
    api: httpx.Client, procs: ProcessFactory, worker_mode: str
) -> None:
    worker = procs.worker()
    job = submit(api, steps_job(steps=6, delay=0.5))
    wait_running(api, job["id"])
    code, took = sigterm_and_wait(worker.popen)
    assert code == 0, worker.log()
    assert took < PLATFORM_KILL_AFTER
    done = view(api, job["id"])
    assert done["status"] == "finished" and done["result"] == {"steps": 6, "attempt": 1}


def test_sigterm_requeues_a_long_job_without_spending_a_retry(
    api: httpx.Client, procs: ProcessFactory, worker_mode: str
) -> None:
    """Default grace (what Heroku/Render deployments get): the job cannot finish, so it goes back."""
    worker = procs.worker()
    job = submit(api, steps_job(steps=120, delay=0.5, retries=2))
    wait_running(api, job["id"])
    code, took = sigterm_and_wait(worker.popen)
    assert code == 0, worker.log()
    assert took < PLATFORM_KILL_AFTER, took

    requeued = view(api, job["id"])
    assert requeued["status"] == "queued" and requeued["position"] == 0
    assert requeued["retries_left"] == 2  # no retry spent
    assert requeued["messages"][-1]["message"] == (
        "attempt 1 interrupted: the worker shut down before the job finished; requeued without spending a retry"
    )

    procs.worker(WORKER_SHUTDOWN_GRACE="0")  # requeues at once when the test stops it

    def ran_again() -> bool:
        messages = [m["message"] for m in view(api, job["id"])["messages"]]
        return "step 1/120" in messages[messages.index(requeued["messages"][-1]["message"]) :]

    wait_for(ran_again, 20, what="the requeued job to start again")
    again = view(api, job["id"])
    assert again["status"] == "started" and again["retries_left"] == 2


def test_forking_worker_sigterm_lets_the_job_finish_within_the_grace(
    api: httpx.Client, procs: ProcessFactory, rclient: redis.Redis, forking: None
) -> None:
    """The forking mirror of the concurrent worker's warm shutdown: the job ends within the grace, nothing new
    is taken after the signal, and the worker leaves no record, claim or started entry behind."""
    grace = 8.0
    worker = procs.worker(WORKER_SHUTDOWN_GRACE=str(grace))
    job = submit(api, steps_job(steps=4, delay=0.5))
    wait_running(api, job["id"])
    worker.signal(signal.SIGTERM)
    signalled_at = time.monotonic()
    wait_for(lambda: "warm shutdown; the running job may finish" in worker.log(), 5, what="the signal handled")
    queued_later = submit(api, steps_job(steps=1))
    code = worker.popen.wait(grace + HEADROOM)
    took = time.monotonic() - signalled_at
    assert code == 0, worker.log()
    assert took < grace, f"waited {took:.1f}s for a job of 2s"
    done = view(api, job["id"])
    assert done["status"] == "finished" and done["result"] == {"steps": 4, "attempt": 1}
    later = view(api, queued_later["id"])
    assert later["status"] == "queued" and later["position"] == 0  # taken by no one after the signal
    assert_left_nothing(rclient)


def test_forking_worker_requeues_a_job_outlasting_the_grace_at_its_end_without_spending_a_retry(
    api: httpx.Client, procs: ProcessFactory, rclient: redis.Redis, forking: None
) -> None:
    grace = 2.0
    worker = procs.worker(WORKER_SHUTDOWN_GRACE=str(grace))
    job = submit(api, steps_job(steps=24, delay=0.25, retries=2))
    wait_running(api, job["id"])
    behind = submit(api, steps_job(steps=1))
    worker.signal(signal.SIGTERM)
    signalled_at = time.monotonic()
    code = worker.popen.wait(grace + HEADROOM)
    took = time.monotonic() - signalled_at
    assert code == 0, worker.log()
    assert grace <= took <= grace + 1 + HEADROOM / 2, f"exited {took:.1f}s after SIGTERM with a {grace}s grace"

    requeued = view(api, job["id"])
    assert requeued["status"] == "queued" and requeued["position"] == 0  # at the front, ahead of `behind`
    assert view(api, behind["id"])["position"] == 1
    assert requeued["retries_left"] == 2  # no retry spent
    assert requeued["messages"][-1]["message"] == (
        "attempt 1 interrupted: the worker shut down before the job finished; requeued without spending a retry"
    )
    assert Job.fetch(job["id"], connection=rclient, serializer=SERIALIZER).results() == []  # no outcome recorded
    assert job["id"] not in FailedJobRegistry("default", connection=rclient).get_job_ids()
    assert_left_nothing(rclient)

    procs.worker()
    done = wait_status(api, job["id"], {"finished"}, timeout=30)
    assert done["result"] == {"steps": 24, "attempt": 2}  # `attempt` counts runs: the interrupted one was run 1
    assert done["retries_left"] == 2
    assert wait_status(api, behind["id"], {"finished"})["result"] == {"steps": 1, "attempt": 1}


def assert_left_nothing(client: redis.Redis) -> None:
    """A worker that exited cleanly: no RQ worker record, no claim, nothing in RQ's started registries."""
    assert Worker.all(connection=client) == []
    assert claims(client) == {}
    assert all(StartedJobRegistry(name, connection=client).count == 0 for name in QUEUE_NAMES)
