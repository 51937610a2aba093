"""The Procfile run as Heroku and Render run it: honcho, a runtime-only venv, PORT and REDIS_URL only.

The processes start from a copy of what git would deploy, with a venv that holds
`requirements.txt` and nothing else, and an environment of PORT, REDIS_URL and the PATH to
that venv. The worker is scaled to 2; jobs go in through the API and both workers run some.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from core.settings import Settings
from stack.redis_server import free_port
from tests.factories import steps_job
from tests.support.deploy import runtime_venv, slug
from tests.support.procs import wait_for
from tests.support.replies import text


@pytest.fixture(scope="session")
def venv() -> Path:
    return runtime_venv()


def test_runtime_venv_holds_requirements_only(venv: Path) -> None:
    python = str(venv / "bin" / "python")
    assert subprocess.run([python, "-c", "import rq, starlette, uvicorn, honcho, rq_dashboard"]).returncode == 0
    for dev_only in ("pytest", "fakeredis", "mypy", "ruff"):
        found = subprocess.run([python, "-c", f"import {dev_only}"], capture_output=True)
        assert found.returncode != 0, f"{dev_only} is a dev package and must not be in the runtime venv"


def test_procfile_under_honcho_with_two_workers(
    venv: Path, redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    app = slug(tmp_path / "app")
    assert not (app / ".env").exists() and (app / "Procfile").is_file()
    port = free_port()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "PORT": str(port), "REDIS_URL": redis_url}
    log_path = tmp_path / "honcho.log"
    with log_path.open("wb") as log:
        honcho = subprocess.Popen(
            ["honcho", "start", "-c", "web=1,worker=2"], cwd=app, env=env,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip

    def alive() -> bool:
        if honcho.poll() is not None:
            raise AssertionError(f"honcho exited with {honcho.returncode}:\n{log_path.read_text()}")
        return True

    try:
        wait_for(lambda: alive() and rclient.scard("rq:workers") == 2, 60, what="2 workers registered")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:

            def ready() -> bool:
                try:
                    return alive() and api.get("/readyz").status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(ready, 60, what="web /readyz")
            assert api.get("/readyz").json()["workers"] == 2
            # A worker holds at most WORKER_CONCURRENCY jobs (default settings: the env is PORT and
            # REDIS_URL only) and each runs 3 s, longer than submitting them all takes: one worker
            # cannot take every job, so the other runs some.
            count = 2 * Settings.model_fields["worker_concurrency"].default + 1
            ids = [api.post("/jobs", json=steps_job(steps=6, delay=0.5)).json()["id"] for _ in range(count)]

            def views() -> list[dict[str, Any]]:
                return [api.get(f"/jobs/{job_id}").json() for job_id in ids]

            wait_for(lambda: all(job["status"] == "finished" for job in views()), 60, what="every job")
            assert [job["result"] for job in views()] == [{"steps": 6, "attempt": 1}] * count
        workers = {text(name) for name in rclient.smembers("rq:workers")}
        ran_on = {rclient.hget(f"rq:job:{job_id}", "worker_name") for job_id in ids}
        assert {f"rq:worker:{text(name)}" for name in ran_on if name} == workers, (ran_on, workers)
    finally:
        if honcho.poll() is None:
            honcho.send_signal(signal.SIGTERM)  # honcho stops every process it started
            try:
                honcho.wait(30)
            except subprocess.TimeoutExpired:
                honcho.kill()
                honcho.wait()
    output = log_path.read_text()
    assert honcho.returncode is not None
    assert "web.1" in output and "worker.1" in output and "worker.2" in output, output
    wait_for(lambda: rclient.scard("rq:workers") == 0, 10, what="workers to deregister on SIGTERM")
