"""Submit over HTTP, run in real `rq worker` processes, read progress and results."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from tests.factories import noop_job, steps_job
from tests.support.procs import ProcessFactory, wait_for
from tests.support.replies import text


def submit(api: httpx.Client, payload: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/jobs", json=payload)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/jobs/{body['id']}"
    return body


def view(api: httpx.Client, job_id: str) -> dict[str, Any]:
    response = api.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_status(api: httpx.Client, job_id: str, statuses: set[str], timeout: float = 20) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(view(api, job_id))
        return seen["status"] in statuses

    wait_for(reached, timeout, interval=0.1, what=f"job {job_id} to reach {statuses} (last: {seen.get('status')})")
    return seen


def test_submit_shows_progress_mid_run_then_result(api: httpx.Client, procs: ProcessFactory) -> None:
    procs.worker()
    job = submit(api, steps_job(steps=5, delay=0.4, description="Generate learning path for python"))
    assert job["status"] == "queued" and job["type"] == "demo.steps" and job["progress"] == 0

    mid = wait_status(api, job["id"], {"started"})
    wait_for(lambda: 0 < view(api, job["id"])["progress"] < 100, 10, what="progress mid-run")
    mid = view(api, job["id"])
    assert mid["status"] == "started" and mid["started_at"] is not None and mid["ended_at"] is None
    assert mid["messages"][0]["message"] == "step 1/5"

    done = wait_status(api, job["id"], {"finished"})
    assert done["result"] == {"steps": 5, "attempt": 1}
    assert done["progress"] == 100 and done["error"] is None
    assert [m["message"] for m in done["messages"]] == [f"step {i}/5" for i in range(1, 6)]
    assert [m["progress"] for m in done["messages"]] == [20, 40, 60, 80, 100]
    assert all(m["time"].endswith("Z") for m in done["messages"])
    assert done["description"] == "Generate learning path for python"
    assert done["created_at"] <= done["enqueued_at"] <= done["started_at"] <= done["ended_at"]


def test_workers_take_high_before_default_before_low(api: httpx.Client, procs: ProcessFactory) -> None:
    low = submit(api, steps_job(steps=1, queue="low"))
    default = submit(api, steps_job(steps=1))
    high = submit(api, steps_job(steps=1, queue="high"))
    assert view(api, low["id"])["position"] == 0
    procs.worker()
    views = [wait_status(api, job["id"], {"finished"}) for job in (high, default, low)]
    assert [v["queue"] for v in views] == ["high", "default", "low"]
    started = [v["started_at"] for v in views]
    assert started == sorted(started), started


def _script_calls(rclient: redis.Redis, command: str) -> int:
    return int(rclient.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def test_queued_positions_come_from_the_pushes_counter_not_a_scan_of_the_queue(
    api: httpx.Client, rclient: redis.Redis
) -> None:
    ids = [submit(api, noop_job(queue="low"))["id"] for _ in range(20)]
    scans = _script_calls(rclient, "lpos")
    assert [view(api, job_id)["position"] for job_id in ids] == list(range(20))
    assert api.delete(f"/jobs/{ids[0]}").status_code == 200  # the head leaves: the rest move up, hints hold
    assert [view(api, job_id)["position"] for job_id in ids[1:]] == list(range(19))
    assert _script_calls(rclient, "lpos") == scans

    assert api.delete(f"/jobs/{ids[10]}").status_code == 200  # jobs 1-9 are now one place nearer the tail
    left = ids[1:10] + ids[11:]
    assert [view(api, job_id)["position"] for job_id in left] == list(range(18))
    assert _script_calls(rclient, "lpos") == scans + 9  # each of them scanned once, then anchored again
    assert [view(api, job_id)["position"] for job_id in left] == list(range(18))
    assert _script_calls(rclient, "lpos") == scans + 9
    assert rclient.lrange("rq:queue:low", 0, -1) == [job_id.encode() for job_id in left]


def test_a_queued_jobs_position_is_read_when_the_server_refuses_writes(api: httpx.Client, rclient: redis.Redis) -> None:
    ids = [submit(api, noop_job(queue="low"))["id"] for _ in range(3)]
    rclient.delete("jobsvc:pushes:low")  # every hint now misses: the reads would re-anchor them
    policy = text(rclient.config_get("maxmemory-policy")["maxmemory-policy"])
    rclient.config_set("maxmemory-policy", "noeviction")
    rclient.config_set("maxmemory", 1)
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            rclient.set("a write", "refused")
        assert [view(api, job_id)["position"] for job_id in ids] == [0, 1, 2]
    finally:
        rclient.config_set("maxmemory", 0)
        rclient.config_set("maxmemory-policy", policy)
    seqs = [int(rclient.hget(f"rq:job:{job_id}", "jobsvc_seq") or 0) for job_id in ids]
    assert seqs == [1, 2, 3]  # nothing was re-anchored while writes were refused ...
    assert [view(api, job_id)["position"] for job_id in ids] == [0, 1, 2]
    assert [int(rclient.hget(f"rq:job:{job_id}", "jobsvc_seq") or 0) for job_id in ids] == [-2, -1, 0]  # ... now


def test_a_worker_on_high_only_leaves_low_jobs_queued(api: httpx.Client, procs: ProcessFactory) -> None:
    procs.worker("high")
    low = submit(api, noop_job(queue="low"))
    high = submit(api, noop_job(queue="high"))
    assert wait_status(api, high["id"], {"finished"})["queue"] == "high"
    time.sleep(0.5)
    assert view(api, low["id"])["status"] == "queued"


def test_timeout_fails_the_job_and_says_so(api: httpx.Client, procs: ProcessFactory) -> None:
    procs.worker()
    job = submit(api, steps_job(steps=20, delay=0.5, timeout=1))
    assert job["timeout"] == 1
    failed = wait_status(api, job["id"], {"failed"})
    assert "timed out" in failed["error"] and "1 s" in failed["error"]
    assert "\n" not in failed["error"] and "Traceback" not in failed["error"]


def test_retries_exhausted_then_failed(api: httpx.Client, procs: ProcessFactory) -> None:
    procs.worker()
    job = submit(api, steps_job(steps=2, retries=2, args={"fail_at": 2}))
    assert job["retries_left"] == 2
    failed = wait_status(api, job["id"], {"failed"}, timeout=30)
    assert failed["retries_left"] == 0
    assert failed["error"] == "DemoFailure: failing at step 2 as asked (attempt 3)"
    # every attempt's progress is kept: RQ's failure and retry writes do not clobber meta
    assert [m["message"] for m in failed["messages"]] == ["step 1/2"] * 3


def test_retry_succeeds_on_second_attempt(api: httpx.Client, procs: ProcessFactory) -> None:
    procs.worker()
    job = submit(api, steps_job(steps=2, retries=1, args={"fail_at": 1, "fail_attempts": 1}))
    done = wait_status(api, job["id"], {"finished"}, timeout=30)
    assert done["result"] == {"steps": 2, "attempt": 2}
    assert done["retries_left"] == 0


def test_worker_refuses_a_job_naming_an_unregistered_function(
    rclient: redis.Redis, procs: ProcessFactory, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    queue = Queue("default", connection=rclient, serializer=JSONSerializer)
    planted = queue.enqueue_call("os.system", args=(f"touch {canary}",))
    procs.worker()
    wait_for(lambda: planted.get_status(refresh=True) == "failed", 15, what="planted job to fail")
    assert not canary.exists()
    result = planted.latest_result()
    assert result is not None and "'os.system' is not a registered job type" in (result.exc_string or "")


def test_listing_pages_newest_first_with_filters(api: httpx.Client) -> None:
    ids = [submit(api, steps_job(queue="low" if i % 2 else "default"))["id"] for i in range(7)]
    noop = submit(api, noop_job(queue="high"))["id"]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/jobs", params=params).json()
        pages += 1
        assert len(page["jobs"]) <= 3
        assert all("messages" not in job and "result" not in job for job in page["jobs"])
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [noop, *reversed(ids)] and pages == 3

    by_type = api.get("/jobs", params={"type": "demo.noop"}).json()
    assert [job["id"] for job in by_type["jobs"]] == [noop] and by_type["next_cursor"] is None
    by_queue = api.get("/jobs", params={"queue": "low"}).json()
    assert {job["id"] for job in by_queue["jobs"]} == {ids[i] for i in (1, 3, 5)}
    queued = api.get("/jobs", params={"status": "queued", "queue": "default", "type": "demo.steps"}).json()
    assert {job["id"] for job in queued["jobs"]} == {ids[i] for i in (0, 2, 4, 6)}
    assert api.get("/jobs", params={"status": "finished"}).json()["jobs"] == []


def test_stats_count_per_queue_and_workers(api: httpx.Client, procs: ProcessFactory) -> None:
    for queue in ("high", "default", "default", "low"):
        submit(api, noop_job(queue=queue))
    stats = api.get("/stats").json()
    assert {name: counts["queued"] for name, counts in stats["queues"].items()} == {"high": 1, "default": 2, "low": 1}
    assert stats["workers"] == {"count": 0, "busy": 0}

    procs.worker()
    wait_for(lambda: api.get("/stats").json()["queues"]["low"]["finished"] == 1, 15, what="all jobs finished")
    stats = api.get("/stats").json()
    assert {name: counts["finished"] for name, counts in stats["queues"].items()} == {"high": 1, "default": 2, "low": 1}
    assert all(counts["queued"] == 0 and counts["failed"] == 0 for counts in stats["queues"].values())
    assert stats["workers"]["count"] == 1


def test_readyz_counts_workers(api: httpx.Client, procs: ProcessFactory) -> None:
    assert api.get("/readyz").json()["workers"] == 0
    procs.worker()
    body = api.get("/readyz").json()
    assert body == {
        "status": "ready",
        "redis": "ok",
        "workers": 1,
        "workers_busy": 0,
        "redis_ping_ms": body["redis_ping_ms"],
    }
    assert 0 <= body["redis_ping_ms"] < 1000
