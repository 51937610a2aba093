"""A job failed because its worker died ends like any other failure: its callback is delivered
(signed) and its live event stream closes on the final status."""

from __future__ import annotations

import json

import httpx

from core import signature
from tests.factories import steps_job
from tests.integration.test_callbacks import SECRET, WORKER_ENV, Receiver, receiver  # noqa: F401
from tests.integration.test_spine import submit, wait_status
from tests.reliability.conftest import ABANDONED_JOB_TIMEOUT
from tests.reliability.test_worker_deaths import HEADROOM, wait_running
from tests.support.procs import ProcessFactory


def final_status_on_the_stream(api: httpx.Client, job_id: str) -> str:
    """Read the job's event stream to its end (an ended job's stream closes at once)."""
    status = ""
    with api.stream("GET", f"/jobs/{job_id}/events", timeout=15) as stream:
        event = ""
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "status":
                status = json.loads(line.split(":", 1)[1])["status"]
    return status


def test_a_job_whose_worker_died_calls_back_failed_and_closes_its_stream(
    procs: ProcessFactory,
    receiver: Receiver,  # noqa: F811
    worker_mode: str,
) -> None:
    _, url = procs.web(**WORKER_ENV)  # the web checks callback_url too: loopback allowed here
    with httpx.Client(base_url=url, timeout=10) as api:
        job = submit(api, steps_job(steps=40, delay=0.25, callback_url=receiver.url))
        doomed = procs.worker(**WORKER_ENV)
        wait_running(api, job["id"])
        doomed.kill_group()
        procs.worker(**WORKER_ENV)  # a fresh worker: it sweeps the dead one's job and delivers the callback

        failed = wait_status(api, job["id"], {"failed"}, timeout=ABANDONED_JOB_TIMEOUT + HEADROOM)
        assert failed["error"] == "AbandonedJobError: worker died while running the job"
        [delivery] = receiver.wait(1, timeout=20)
        body = delivery.json()
        assert (body["id"], body["status"], body["error"]) == (job["id"], "failed", failed["error"])
        assert delivery.headers["X-Job-Id"] == job["id"]
        assert signature.verify(delivery.body, delivery.headers["X-Signature"], SECRET)
        assert final_status_on_the_stream(api, job["id"]) == "failed"
