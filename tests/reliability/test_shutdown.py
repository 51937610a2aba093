"""Worker SIGTERM (a platform restart): finish the job within the grace, else requeue it; exit 0 in time."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx

from core.settings import Settings
from tests.factories import steps_job
from tests.integration.test_spine import submit, view
from tests.reliability.test_worker_deaths import wait_running
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
