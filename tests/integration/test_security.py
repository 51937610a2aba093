"""Security over real processes: keys, ownership and limits shared by two web processes, raw-socket body
limits against uvicorn, and a planted pickle that a real `rq worker` refuses without running it."""

from __future__ import annotations

import os
import pickle
import socket
import time
import zlib
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

import httpx
import redis
from rq.job import Job

from tests.factories import noop_job, steps_job
from tests.support.procs import ProcessFactory, wait_for

KEYS = {"alice": "alice-key-0123456789", "bob": "bob-key-0123456789", "ops": "ops-key-0123456789"}


class KeyedEnv(TypedDict):
    """The web's key settings, as environment variables (typed so that `**KEYED` fills only `**env`)."""

    API_KEYS: str
    ADMIN_KEYS: str


KEYED: KeyedEnv = {"API_KEYS": ",".join(f"{name}={key}" for name, key in KEYS.items()), "ADMIN_KEYS": "ops"}


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def post(url: str, who: str, payload: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(f"{url}/jobs", json=payload or noop_job(), headers=auth(who), timeout=10)


def test_keys_and_ownership_hold_across_web_processes(procs: ProcessFactory) -> None:
    web1, url1 = procs.web(**KEYED)
    _, url2 = procs.web(**KEYED)
    assert "OPEN" not in web1.log()
    assert httpx.get(f"{url1}/jobs").status_code == 401
    assert httpx.get(f"{url1}/jobs", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(f"{url1}/healthz").status_code == 200 and httpx.get(f"{url2}/readyz").status_code == 200

    created = post(url1, "alice")
    assert created.status_code == 202 and created.json()["owner"] == "alice"
    job_id = created.json()["id"]
    assert httpx.get(f"{url2}/jobs/{job_id}", headers=auth("alice")).status_code == 200
    theirs = httpx.get(f"{url2}/jobs/{job_id}", headers=auth("bob"))
    assert theirs.status_code == 404 and theirs.json()["type"] == "/problems/not-found"
    assert httpx.get(f"{url2}/jobs", headers=auth("bob")).json()["jobs"] == []
    assert httpx.get(f"{url1}/jobs/{job_id}", headers=auth("ops")).json()["owner"] == "alice"


def test_open_service_warns_loudly_at_start_up(procs: ProcessFactory) -> None:
    web, url = procs.web()
    assert httpx.post(f"{url}/jobs", json=noop_job()).status_code == 202
    assert "API_KEYS is empty: the service is OPEN" in web.log()


def test_rate_limit_is_shared_by_two_web_processes(procs: ProcessFactory) -> None:
    _, url1 = procs.web(**KEYED, RATE_LIMIT="4/minute")
    _, url2 = procs.web(**KEYED, RATE_LIMIT="4/minute")
    statuses = [post(url, "alice").status_code for url in (url1, url2, url1, url2)]
    assert statuses == [202] * 4
    for url in (url1, url2):
        refused = post(url, "alice")
        assert refused.status_code == 429 and refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert post(url2, "bob").status_code == 202


def test_active_jobs_quota_is_shared_and_frees_up_as_jobs_end(procs: ProcessFactory) -> None:
    _, url1 = procs.web(**KEYED, MAX_ACTIVE_JOBS="2")
    _, url2 = procs.web(**KEYED, MAX_ACTIVE_JOBS="2")
    first = [post(url, "alice", steps_job(steps=2, delay=0.3)) for url in (url1, url2)]
    assert [r.status_code for r in first] == [202, 202]
    refused = post(url1, "alice")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert post(url2, "alice").status_code == 429
    assert post(url2, "bob").status_code == 202

    procs.worker()
    for job in first:

        def finished(job: httpx.Response = job) -> bool:
            return bool(
                httpx.get(f"{url1}/jobs/{job.json()['id']}", headers=auth("alice")).json()["status"] == "finished"
            )

        wait_for(finished, 30, what="alice's jobs to finish")
    assert post(url2, "alice").status_code == 202


def raw_request(url: str, head: bytes, body_chunks: list[bytes] | None = None, pause: float = 0.0) -> bytes:
    """Send `head` then `body_chunks` on a raw socket (stopping once the server answers); return its answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head)
        for chunk in body_chunks or []:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and closed: it did not read the rest
            if pause:
                time.sleep(pause)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or len(answer) < 200:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
        return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def head_for(url: str, extra: str) -> bytes:
    host = urlsplit(url).netloc
    return (
        f"POST /jobs HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEYS['alice']}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


def test_body_limits_on_the_wire(procs: ProcessFactory) -> None:
    limit = 64 * 1024
    web, url = procs.web(**KEYED, MAX_BODY_BYTES=str(limit))
    opening = b'{"type": "demo.steps", "description": "'

    # Content-Length over the limit: 413 at once, without waiting for (or reading) a byte of body
    started = time.monotonic()
    answer = raw_request(url, head_for(url, f"Content-Length: {100 * 1024 * 1024}\r\n"), [opening])
    assert status_of(answer) == 413 and b"application/problem+json" in answer
    assert time.monotonic() - started < 5  # it never waited for the 100 MiB it was promised

    # chunked, no length: cut off once past the limit
    chunk = b"x" * 8192
    chunked = [b"%x\r\n%s\r\n" % (len(c), c) for c in [opening, *[chunk] * 64]] + [b"0\r\n\r\n"]
    answer = raw_request(url, head_for(url, "Transfer-Encoding: chunked\r\n"), chunked)
    assert status_of(answer) == 413

    # a lying Content-Length (smaller than what follows): only the declared bytes are the body, the rest is
    # refused as a malformed next request; nothing beyond the declared length ever reaches the app
    lying_body = opening + b"x" * (4 * limit) + b'"}'
    answer = raw_request(url, head_for(url, "Content-Length: 40\r\n"), [lying_body])
    assert 400 <= status_of(answer) < 500
    assert b"Internal Server Error" not in answer

    assert httpx.get(f"{url}/healthz").status_code == 200
    assert " 500 " not in web.log() and "Traceback" not in web.log()


class Canary:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


def test_planted_pickle_runs_nothing_in_a_real_worker(
    procs: ProcessFactory, rclient: redis.Redis, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    _, url = procs.web(**KEYED)
    in_data = post(url, "alice").json()["id"]
    in_meta = post(url, "alice").json()["id"]
    rclient.hset(
        Job.key_for(in_data),
        "data",
        zlib.compress(pickle.dumps(("jobs.builtin.demo.noop", None, (), {"x": Canary(canary)}))),
    )
    rclient.hset(Job.key_for(in_meta), "meta", pickle.dumps({"owner": "alice", "x": Canary(canary)}))

    worker = procs.worker()
    after = post(url, "alice", steps_job(steps=1))  # a healthy job after the planted ones
    wait_for(
        lambda: httpx.get(f"{url}/jobs/{after.json()['id']}", headers=auth("alice")).json()["status"] == "finished",
        30,
        what="the healthy job behind the planted ones",
    )
    assert not canary.exists()
    data_view = httpx.get(f"{url}/jobs/{in_data}", headers=auth("alice")).json()
    assert data_view["status"] == "failed" and data_view["error"].startswith("UnreadableJobError: ")
    meta_view = httpx.get(f"{url}/jobs/{in_meta}", headers=auth("ops")).json()  # owner unreadable: admin only
    assert meta_view["status"] == "failed" and "not JSON" in meta_view["error"]
    assert httpx.get(f"{url}/jobs/{in_meta}", headers=auth("alice")).status_code == 404
    assert worker.alive()
    log = worker.log()
    assert f"job {in_data}: data in Redis is not JSON; refusing to run it" in log
    assert f"job {in_meta}: meta in Redis is not JSON; refusing to run it" in log
    assert not canary.exists()
