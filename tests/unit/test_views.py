from __future__ import annotations

import fakeredis
from rq import Queue
from rq.job import JobStatus

from app.views import job_view, summarize_exception
from core.queues import SERIALIZER


def test_view_of_a_queued_job(fake_redis: fakeredis.FakeRedis) -> None:
    queue = Queue("low", connection=fake_redis, serializer=SERIALIZER)
    job = queue.enqueue_call("jobs.builtin.demo.noop", description="hello", meta={"type": "demo.noop", "progress": 0})
    view = job_view(job, position=0)
    assert view["status"] == "queued" and view["queue"] == "low" and view["type"] == "demo.noop"
    assert view["position"] == 0 and view["result"] is None and view["error"] is None and view["callback"] is None
    assert view["created_at"].endswith("Z") and view["started_at"] is None
    assert set(view) == {
        "id", "type", "description", "queue", "status", "progress", "messages", "result", "error",
        "created_at", "enqueued_at", "started_at", "ended_at", "timeout", "retries_left", "position",
        "owner", "callback", "args", "attempt", "waiting",
    }  # fmt: skip
    assert view["args"] == {} and view["attempt"] == 0
    assert "messages" not in job_view(job, details=False)


def test_position_only_while_queued(fake_redis: fakeredis.FakeRedis) -> None:
    job = Queue("default", connection=fake_redis, serializer=SERIALIZER).enqueue_call("jobs.builtin.demo.noop")
    job.set_status(JobStatus.STARTED)
    assert job_view(job, position=3)["position"] is None


def test_errors_are_one_line_without_traceback() -> None:
    trace = (
        'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n    boom()\n'
        "jobs.builtin.demo.DemoFailure: failing at step 2 as asked (attempt 1)\n"
    )
    assert summarize_exception(trace) == "DemoFailure: failing at step 2 as asked (attempt 1)"
    timeout = "Traceback...\nrq.timeouts.JobTimeoutException: Task exceeded maximum timeout value (3 seconds)\n"
    assert summarize_exception(timeout) == "timed out: exceeded its 3 s run-time limit (JobTimeoutException)"
    assert summarize_exception("Work-horse terminated unexpectedly; waitpid returned 9 (signal 9); ").startswith(
        "Work-horse terminated unexpectedly"
    )
