"""Operations over real processes: metrics, readiness, JSON logs, graceful web shutdown, dashboard auth."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stack.redis_server import EmbeddedRedis, free_port
from tests.factories import noop_job, steps_job
from tests.integration.conftest import TEST_ENV
from tests.support.procs import ProcessFactory, base_env, wait_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def metric(samples: Samples, name: str, default: float | None = None, /, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    if default is not None:
        return samples.get(key, default)
    return samples[key]


def submit(client: httpx.Client, payload: dict[str, Any]) -> str:
    response = client.post("/jobs", json=payload)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def wait_ended(client: httpx.Client, job_ids: list[str], timeout: float = 30) -> None:
    def ended() -> bool:
        return all(client.get(f"/jobs/{job_id}").json()["status"] in ("finished", "failed") for job_id in job_ids)

    wait_for(ended, timeout, interval=0.1, what="jobs to end")


def test_metrics_move_as_jobs_run_and_run_times_survive_a_web_restart(api: httpx.Client, procs: ProcessFactory) -> None:
    before = scrape(api)
    accepted_before = metric(before, "jobsvc_submissions_total", 0.0, type="demo.steps", outcome="accepted")
    assert metric(before, "jobsvc_queue_depth", queue="default") == 0

    ids = [submit(api, steps_job(steps=2, delay=0.05)) for _ in range(3)]
    ids.append(submit(api, steps_job(steps=2, args={"fail_at": 2})))
    queued = scrape(api)
    assert metric(queued, "jobsvc_queue_depth", queue="default") == 4
    assert metric(queued, "jobsvc_jobs", queue="default", status="queued") == 4
    assert metric(queued, "jobsvc_submissions_total", type="demo.steps", outcome="accepted") == accepted_before + 4
    assert metric(queued, "jobsvc_workers", state="idle") == 0

    worker = procs.worker()
    wait_ended(api, ids)
    ran = scrape(api)
    assert metric(ran, "jobsvc_queue_depth", queue="default") == 0
    assert metric(ran, "jobsvc_jobs", queue="default", status="finished") == 3
    assert metric(ran, "jobsvc_jobs", queue="default", status="failed") == 1
    ok = {"type": "demo.steps", "status": "finished"}
    assert metric(ran, "jobsvc_job_run_seconds_count", **ok) == 3
    assert metric(ran, "jobsvc_job_run_seconds_sum", **ok) >= 3 * 2 * 0.05
    assert metric(ran, "jobsvc_job_run_seconds_count", type="demo.steps", status="failed") == 1
    assert metric(ran, "jobsvc_http_request_duration_seconds_count", method="POST", route="/jobs", status="202") >= 4

    long_job = submit(api, steps_job(steps=100, delay=0.1))
    wait_for(lambda: api.get(f"/jobs/{long_job}").json()["status"] == "started", 20, what="long job start")
    busy = scrape(api)
    assert (metric(busy, "jobsvc_workers", state="busy"), metric(busy, "jobsvc_workers", state="idle")) == (1, 0)

    _, restarted_url = procs.web()
    with httpx.Client(base_url=restarted_url, timeout=10) as restarted:
        after_restart = scrape(restarted)
    assert metric(after_restart, "jobsvc_job_run_seconds_count", **ok) == 3  # kept in Redis by the workers
    assert metric(after_restart, "jobsvc_submissions_total", -1.0, type="demo.steps", outcome="accepted") == -1.0
    worker.kill_group()  # rather than wait for the long job to finish


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "valkey").start()
    try:
        yield server
    finally:
        if server.process is not None and server.is_running():
            server.process.send_signal(signal.SIGCONT)
        server.stop()


def test_readyz_counts_workers_and_is_a_prompt_503_when_redis_is_frozen_or_down(
    own_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    factory = ProcessFactory(own_redis.url, tmp_path, TEST_ENV)
    try:
        _, url = factory.web(READYZ_TIMEOUT="0.5", REDIS_SOCKET_TIMEOUT="10")
        worker = factory.worker()
        with httpx.Client(base_url=url, timeout=20) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["workers"] == 1 and ready.json()["redis"] == "ok"
            worker.stop()
            wait_for(lambda: client.get("/readyz").json()["workers"] == 0, 10, what="worker to deregister")

            assert own_redis.process is not None
            own_redis.process.send_signal(signal.SIGSTOP)  # Redis accepts connections but never answers
            started = time.monotonic()
            frozen = client.get("/readyz")
            elapsed = time.monotonic() - started
            assert frozen.status_code == 503, frozen.text
            assert frozen.headers["content-type"] == "application/problem+json"
            assert elapsed < 5, f"readyz took {elapsed:.1f}s with READYZ_TIMEOUT=0.5 (socket timeout 10s)"
            assert client.get("/healthz", timeout=2).json() == {"status": "ok"}
            own_redis.process.send_signal(signal.SIGCONT)
            wait_for(lambda: client.get("/readyz").status_code == 200, 10, what="readyz back after SIGCONT")

            own_redis.stop()
            down = client.get("/readyz")
            assert down.status_code == 503 and down.json()["title"] == "Service unavailable"
            assert client.get("/healthz").status_code == 200
            own_redis.start()
            wait_for(lambda: client.get("/readyz").status_code == 200, 10, what="readyz back after restart")
    finally:
        factory.stop_all()


def test_json_logs_parse_and_carry_job_ids_but_no_arguments(procs: ProcessFactory) -> None:
    mark = 0.004321  # a delay no log line has any other reason to show
    web, url = procs.web(LOG_FORMAT="json")
    worker = procs.worker(LOG_FORMAT="json")
    with httpx.Client(base_url=url, timeout=10) as client:
        ok = submit(client, steps_job(steps=2, delay=mark, queue="high"))
        bad = submit(client, steps_job(steps=2, delay=mark, args={"fail_at": 1}))
        wait_ended(client, [ok, bad])
    worker.stop()
    web.stop()

    entries: list[dict[str, Any]] = []
    for proc in (web, worker):
        for line in proc.log().splitlines():
            if line.strip():
                entries.append(json.loads(line))  # every line is one JSON event
            assert str(mark) not in line, line
    by_event = {(e["message"], e.get("job_id")): e for e in entries}
    for job_id in (ok, bad):
        submitted = by_event[("job submitted", job_id)]
        assert submitted["type"] == "demo.steps" and submitted["logger"] == "app.submissions"
        assert by_event[("job started", job_id)]["attempt"] == 1
    assert submitted["queue"] == "default" and by_event[("job submitted", ok)]["queue"] == "high"
    finished = by_event[("job finished", ok)]
    assert finished["attempt"] == 1 and finished["duration_s"] >= 2 * mark and finished["queue"] == "high"
    failed = by_event[("job failed", bad)]
    assert failed["level"] == "warning" and failed["status"] == "failed" and failed["duration_s"] >= 0
    assert "DemoFailure: failing at step 1" in failed["error"]
    assert any(e["logger"] == "uvicorn.access" for e in entries), "uvicorn's lines go through the same formatter"
    assert any(e["logger"] == "rq.worker" for e in entries), "RQ's lines go through the same formatter"


def test_sigterm_drains_an_in_flight_request_then_exits(procs: ProcessFactory) -> None:
    web, url = procs.web()
    body = json.dumps(noop_job()).encode()
    halfway = threading.Event()
    outcome: dict[str, Any] = {}

    def slow_body() -> Iterator[bytes]:
        yield body[:5]
        halfway.set()
        time.sleep(1.5)  # SIGTERM arrives while the request is still being sent
        yield body[5:]

    def send() -> None:
        with httpx.Client(base_url=url, timeout=20) as client:
            try:
                outcome["response"] = client.post(
                    "/jobs", content=slow_body(), headers={"content-type": "application/json"}
                )
            except httpx.HTTPError as exc:
                outcome["error"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    assert halfway.wait(10)
    time.sleep(0.2)
    web.signal(signal.SIGTERM)
    sender.join(20)
    assert "error" not in outcome, outcome
    assert outcome["response"].status_code == 202, outcome["response"].text
    code = web.popen.wait(20)
    assert code in (0, -signal.SIGTERM), code  # uvicorn re-raises the SIGTERM it drained for
    log = web.log()
    assert "Waiting for connections to close" in log or "Shutting down" in log, log
    assert "Finished server process" in log, log
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)


def test_dashboard_in_the_web_process_needs_basic_auth(procs: ProcessFactory) -> None:
    _, url = procs.web(DASHBOARD_USERNAME="ops", DASHBOARD_PASSWORD="pw", API_KEYS="app=k1")
    with httpx.Client(base_url=url, timeout=10) as client:
        for path in ("/dashboard/", "/dashboard/0/data/queues.json", "/dashboard/static/js/jquery-3.5.1.min.js"):
            assert client.get(path).status_code == 401
            assert client.get(path, auth=("ops", "nope")).status_code == 401
            assert client.get(path, auth=("ops", "pw")).status_code == 200, path
        assert client.post("/dashboard/queue/default/compact").status_code == 401


def test_dashboard_as_a_service_of_its_own(procs: ProcessFactory, redis_url: str) -> None:
    """The start command README gives for a separate Render service."""
    port = free_port()
    env = base_env(redis_url, DASHBOARD_USERNAME="ops", DASHBOARD_PASSWORD="pw", PORT=str(port))
    service = procs.spawn("dashboard", "exec uvicorn app.dashboard_service:app --host 127.0.0.1 --port $PORT", env)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert service.alive(), service.log()
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 30, what="dashboard service")
    assert httpx.get(f"{url}/dashboard/").status_code == 401
    queues = httpx.get(f"{url}/dashboard/0/data/queues.json", auth=("ops", "pw")).json()["queues"]
    assert sorted(queue["name"] for queue in queues) == ["default", "high", "low"]
