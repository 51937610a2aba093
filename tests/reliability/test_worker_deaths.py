"""Workers and work horses die at the worst moments: no job is lost, stuck, or run twice at once."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import httpx
import redis

from tests.factories import steps_job
from tests.integration.test_spine import submit, view, wait_status
from tests.reliability.conftest import ABANDONED_JOB_TIMEOUT
from tests.reliability.jobs import EFFECTS
from tests.reliability.support import claims, horse_of, process_exists, wait_claims_settled
from tests.support.procs import ProcessFactory, wait_for
from tests.support.replies import text

#: Slack on top of the configured bound for a loaded 2-core CI machine (process start-up included).
HEADROOM = 4.0


def wait_running(api: httpx.Client, job_id: str) -> dict[str, Any]:
    """Until the job is `started` and has reported progress at least once."""
    seen: dict[str, Any] = {}

    def running() -> bool:
        seen.update(view(api, job_id))
        return seen["status"] == "started" and bool(seen["messages"])

    wait_for(running, 20, interval=0.05, what=f"job {job_id} running")
    return seen


def wait_left_started(api: httpx.Client, job_id: str, timeout: float) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    seen: dict[str, Any] = {}

    def moved() -> bool:
        seen.update(view(api, job_id))
        status: str = seen["status"]
        return status != "started"

    wait_for(moved, timeout, interval=0.05, what=f"job {job_id} to leave 'started'")
    return time.monotonic() - started, seen


def test_sigkill_whole_worker_mid_job_recovered_within_the_bound(
    api: httpx.Client, procs: ProcessFactory, worker_mode: str
) -> None:
    """Worker (+ horse) SIGKILLed; the only worker left was just (re)started. With and without retries."""
    with_retry = submit(api, steps_job(steps=40, delay=0.25, retries=1))
    first = procs.worker()
    wait_running(api, with_retry["id"])
    without_retry = submit(api, steps_job(steps=40, delay=0.25))
    second = procs.worker()
    wait_running(api, without_retry["id"])

    first.kill_group()
    second.kill_group()
    killed_at = time.monotonic()
    procs.worker()  # a fresh worker; it must recover jobs of workers it never met

    bound = ABANDONED_JOB_TIMEOUT + HEADROOM
    for job in (with_retry, without_retry):
        elapsed, _ = wait_left_started(api, job["id"], bound + 5)
        assert time.monotonic() - killed_at <= bound, f"recovered after {elapsed:.1f}s"

    done = wait_status(api, with_retry["id"], {"finished"}, timeout=60)
    assert done["result"] == {"steps": 40, "attempt": 2}
    assert done["retries_left"] == 0
    lost = [m["message"] for m in done["messages"] if "lost" in m["message"]]
    assert lost == ["attempt 1 lost: worker died while running the job; retrying (0 retries left)"]

    failed = wait_status(api, without_retry["id"], {"failed"}, timeout=5)
    assert failed["error"] == "AbandonedJobError: worker died while running the job"
    assert failed["messages"][-1]["message"] == "attempt 1 lost: worker died while running the job; no retries left"
    assert failed["ended_at"] is not None


def test_sigkill_between_dequeue_and_start_loses_nothing(
    api: httpx.Client, procs: ProcessFactory, rclient: redis.Redis, worker_mode: str
) -> None:
    """The test hook holds the worker between taking the job and starting it; it is killed there."""
    low = submit(api, steps_job(steps=1, queue="low"))
    high = submit(api, steps_job(steps=1, queue="high"))
    paused = procs.worker(WORKER_TEST_PAUSE_AFTER_DEQUEUE="60")
    wait_for(lambda: high["id"] in claims(rclient), 10, what="the high job to be claimed")
    if worker_mode == "forking":
        assert rclient.llen("rq:queue:high") == 0 and rclient.llen("rq:queue:low") == 1  # priority kept
    else:  # free slots: both taken in one step, each claimed on its own
        assert rclient.llen("rq:queue:high") == 0 and rclient.llen("rq:queue:low") == 0
        assert set(claims(rclient)) == {high["id"], low["id"]}
        assert view(api, low["id"])["status"] == "queued"
    assert view(api, high["id"])["status"] == "queued"  # in no queue and no registry: only the claim holds it
    assert rclient.zcard("rq:wip:high") == 0

    paused.kill_group()
    killed_at = time.monotonic()
    procs.worker()
    done = wait_status(api, high["id"], {"finished"}, timeout=ABANDONED_JOB_TIMEOUT + HEADROOM)
    assert time.monotonic() - killed_at <= ABANDONED_JOB_TIMEOUT + HEADROOM
    assert done["result"] == {"steps": 1, "attempt": 1}  # it never ran before: no attempt was spent
    assert done["messages"][0]["message"].startswith("requeued: ")
    low_done = wait_status(api, low["id"], {"finished"})
    assert low_done["result"] == {"steps": 1, "attempt": 1}
    wait_claims_settled(rclient)


def test_horse_sigkill_is_retried_then_failed_naming_the_signal(
    api: httpx.Client, procs: ProcessFactory, forking: None
) -> None:
    worker = procs.worker()
    job = submit(api, steps_job(steps=40, delay=0.25, retries=1))
    for attempt in (1, 2):
        wait_for(lambda: view(api, job["id"])["status"] == "started" and horse_of(worker.pid), 20, what="horse")
        horse = horse_of(worker.pid)
        assert horse is not None
        os.kill(horse, signal.SIGKILL)
        if attempt == 1:
            wait_for(lambda: view(api, job["id"])["retries_left"] == 0, 10, what="retry")
    failed = wait_status(api, job["id"], {"failed"}, timeout=15)
    reason = "work horse killed by SIGKILL (signal 9) (out of memory, or killed from outside)"
    assert failed["error"] == f"WorkHorseKilledError: {reason}"
    ended = [m["message"] for m in failed["messages"] if "ended" in m["message"]]
    assert ended == [f"attempt 1 ended: {reason}", f"attempt 2 ended: {reason}"]
    assert worker.alive()
    after = submit(api, steps_job(steps=1))
    assert wait_status(api, after["id"], {"finished"})["result"] == {"steps": 1, "attempt": 1}


def test_killing_only_the_worker_parent_never_runs_the_job_twice(
    api: httpx.Client, procs: ProcessFactory, rclient: redis.Redis, forking: None
) -> None:
    job = submit(api, {"type": "test.effect", "args": {"seconds": 4}, "retries": 1})
    first = procs.worker()
    wait_running(api, job["id"])
    horse = horse_of(first.pid)
    assert horse is not None
    procs.worker()  # idle, ready to take the retry

    first.signal(signal.SIGKILL)  # the parent only: RQ's horse lives in its own process group
    wait_for(lambda: not process_exists(horse), 3, what="the orphaned horse to die with its parent")
    done = wait_status(api, job["id"], {"finished"}, timeout=ABANDONED_JOB_TIMEOUT + HEADROOM + 10)
    # Every process that ran attempt 1 is gone (its horse was seen dead before the retry ended): none can
    # add a side effect later.
    assert not process_exists(first.pid) and not process_exists(horse)
    effects = [text(item) for item in rclient.lrange(EFFECTS.format(job_id=job["id"]), 0, -1)]
    assert len(effects) == 1, effects
    assert effects[0].startswith("2:") and done["result"] == 1


def test_a_job_ignoring_sigalrm_is_killed_and_reported_as_timed_out(
    api: httpx.Client, procs: ProcessFactory, forking: None
) -> None:
    worker = procs.worker()
    job = submit(api, {"type": "test.stubborn", "args": {"seconds": 60}, "timeout": 1})
    failed = wait_status(api, job["id"], {"failed"}, timeout=20)
    assert failed["error"] == "timed out: exceeded its 1 s run-time limit (JobTimeoutException)"
    assert "ignored the timeout signal" in failed["messages"][-1]["message"]
    assert worker.alive()
    after = submit(api, steps_job(steps=1))
    assert wait_status(api, after["id"], {"finished"})["status"] == "finished"


def test_memory_hog_fails_with_a_memory_error_and_the_worker_goes_on(
    api: httpx.Client, procs: ProcessFactory, forking: None
) -> None:
    worker = procs.worker(JOB_MAX_MEMORY="64")
    hog = submit(api, {"type": "test.hog", "args": {"megabytes": 512}})
    failed = wait_status(api, hog["id"], {"failed"}, timeout=20)
    assert failed["error"] == "JobMemoryLimitError: the job exceeded its memory limit of 64 MB (JOB_MAX_MEMORY)"
    small = submit(api, {"type": "test.hog", "args": {"megabytes": 16}})
    assert wait_status(api, small["id"], {"finished"})["result"] == 16
    assert worker.alive()
