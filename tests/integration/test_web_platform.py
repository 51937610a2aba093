"""The Procfile's web line behaves as the platforms need: WEB_CONCURRENCY, 0.0.0.0:$PORT, proxy headers.

(That the web is reachable from another host on its bound address is shown by test_multihost.)
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.support.procs import ProcessFactory, wait_for


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_web_concurrency_sets_the_number_of_web_processes(procs: ProcessFactory) -> None:
    proc, url = procs.web(WEB_CONCURRENCY="3")
    wait_for(lambda: proc.log().count("Application startup complete") == 3, 30, what="3 web processes started")
    log = proc.log()
    pids = {int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", log)}
    assert len(pids) == 3, log
    assert {_parent_of(pid) for pid in pids} == {proc.pid}, "uvicorn's supervisor runs them"
    assert f"Uvicorn running on http://0.0.0.0:{url.rsplit(':', 1)[1]}" in log
    with httpx.Client(base_url=url, timeout=10) as api:
        assert all(api.get("/readyz").status_code == 200 for _ in range(6))


def test_web_trusts_the_routers_forwarded_headers(procs: ProcessFactory) -> None:
    proc, url = procs.web()
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9", "Host": "jobs.example.com"}
    response = httpx.get(f"{url}/jobs/", headers=headers, follow_redirects=False, timeout=10)
    assert response.status_code == 307
    assert response.headers["location"] == "https://jobs.example.com/jobs", "the scheme the client used"
    wait_for(lambda: '203.0.113.9:0 - "GET /jobs/ HTTP/1.1" 307' in proc.log(), 10, what="access log line")
