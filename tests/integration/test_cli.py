"""The `jobs` command in a pseudo-terminal (pexpect) and in pipes, against the real stack: the Procfile's
uvicorn web line and real `rq worker` processes. Ctrl-C cancels the real job (DELETE /jobs/{id} stops it in
the worker); the API key comes from JOBS_API_KEY against a web process with API_KEYS set."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator

import pexpect
import pytest
from jobs_client import JobsClient

from tests.integration.conftest import TEST_ENV
from tests.support.procs import BIN, ROOT, ProcessFactory, wait_for

JOBS = str(BIN / "jobs")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


API_KEY = "cli-key-0123456789"


def env(url: str | None = None, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "JOBS_"))}
    base.update(TERM="xterm-256color", COLUMNS="150", LINES="40", PYTHONUNBUFFERED="1", **extra)
    if url:
        base["JOBS_URL"] = url
    return base


def spawn(args: list[str], url: str | None, **extra: str) -> pexpect.spawn:
    return pexpect.spawn(
        JOBS, args, env=env(url, **extra), cwd=str(ROOT), dimensions=(40, 150), timeout=60, encoding="utf-8"
    )


def status_of(url: str, job_id: str, api_key: str | None = None) -> str:
    with JobsClient(url, api_key) as client:
        return client.get(job_id).status


def finish(child: pexpect.spawn) -> tuple[int, str]:
    child.expect(pexpect.EOF)
    output = ANSI.sub("", child.before or "")
    child.close()
    assert child.exitstatus is not None, f"killed by signal {child.signalstatus}"
    return child.exitstatus, output


@pytest.fixture(scope="module")
def secured_url(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One web process for this module that wants `Authorization: Bearer <API_KEY>` and allows 2 submissions
    a minute per key (Redis, and so the count, is flushed before each test)."""
    factory = ProcessFactory(redis_server_url, tmp_path_factory.mktemp("secured-web"), TEST_ENV)
    try:
        _, url = factory.web(API_KEYS=f"cli={API_KEY}", RATE_LIMIT="2/minute")
        yield url
    finally:
        factory.stop_all()


def test_submit_wait_draws_a_bar_then_prints_the_result(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    procs.worker()
    child = spawn(
        ["submit", "demo.steps", "--arg", "steps=20", "--arg", "delay=0.1", "--queue", "high", "--wait"], web_url
    )
    child.expect(r"job [\w-]+ \(demo.steps\) queued on high")
    child.expect(r"demo\.steps.*━.*\d+%.*0:00:\d\d.*step \d+/20")  # bar, percentage, elapsed, latest message
    child.expect("step 20/20")
    code, tail = finish(child)
    assert code == 0, tail
    assert '"steps": 20' in tail and '"attempt": 1' in tail and "finished in" in tail


def test_a_failed_job_exits_1(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    procs.worker()
    child = spawn(["submit", "demo.steps", "--args", '{"steps": 3, "delay": 0.05, "fail_at": 2}', "--wait"], web_url)
    code, output = finish(child)
    assert code == 1, output
    assert "failed" in output and "DemoFailure: failing at step 2" in output


def test_json_mode_without_a_tty_prints_one_line_per_message(
    web_url: str, redis_url: str, procs: ProcessFactory
) -> None:
    procs.worker()
    run = subprocess.run(
        [JOBS, "--url", web_url, "--json", "submit", "demo.steps", "--arg", "steps=4", "--arg", "delay=0.1", "--wait"],
        env=env(), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    view = json.loads(run.stdout)
    assert view["status"] == "finished" and view["result"] == {"steps": 4, "attempt": 1}
    lines = [line for line in run.stderr.splitlines() if line.startswith("[")]
    assert lines == ["[ 25.0%] step 1/4", "[ 50.0%] step 2/4", "[ 75.0%] step 3/4", "[100.0%] step 4/4"]
    assert "\x1b[" not in run.stderr, "no bar or escape codes without a terminal"


def test_status_list_types_and_errors_as_json(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    def jobs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([JOBS, *args], env=env(web_url), capture_output=True, text=True, timeout=30)

    submitted = jobs("submit", "demo.noop")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    status = json.loads(jobs("status", job_id, "--json").stdout)
    assert status["id"] == job_id and status["status"] == "queued"
    listed = json.loads(jobs("list", "--json", "--limit", "5").stdout)
    assert [item["id"] for item in listed] == [job_id]
    types = {item["type"] for item in json.loads(jobs("types", "--json").stdout)}
    assert {"text.characters", "text.summarize", "demo.steps"} <= types
    invalid = jobs("submit", "demo.steps", "--arg", "steps=0")
    assert invalid.returncode == 1 and "args.steps" in invalid.stderr
    missing = jobs("status", "nope")
    assert missing.returncode == 1 and "404" in missing.stderr
    table = jobs("types")
    assert table.returncode == 0 and "text.characters" in table.stdout


def test_ctrl_c_asks_and_no_leaves_the_job_running(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    procs.worker()
    child = spawn(["submit", "demo.steps", "--arg", "steps=30", "--arg", "delay=0.1", "--wait"], web_url)
    child.expect(r"job ([\w-]+) \(demo.steps\)")
    job_id = child.match.group(1)
    child.expect(r"step \d+/30")
    child.sendintr()
    child.expect(r"Cancel job [\w-]+\?")
    child.sendline("n")
    code, output = finish(child)
    assert code == 130, output
    assert f"jobs watch {job_id}" in output
    with JobsClient(web_url) as client:
        wait_for(lambda: client.get(job_id).status == "finished", 30, what="the job to go on and finish")


def test_ctrl_c_with_cancel_on_interrupt_stops_the_real_job(
    web_url: str, redis_url: str, procs: ProcessFactory
) -> None:
    procs.worker()
    child = spawn(
        ["submit", "demo.steps", "--args", '{"steps": 300, "delay": 0.1}', "--wait", "--cancel-on-interrupt"], web_url
    )
    child.expect(r"job ([\w-]+) \(demo.steps\)")
    job_id = child.match.group(1)
    child.expect(r"step \d+/300")  # the bar redraws 10 times a second, not at every step
    child.sendintr()
    code, output = finish(child)
    assert code == 130, output
    assert f"job {job_id}: " in output and "Cancel job" not in output, "no question with --cancel-on-interrupt"
    wait_for(lambda: status_of(web_url, job_id) == "stopped", 30, what="the worker to stop the job")


def test_ctrl_c_then_yes_cancels_and_watch_and_cancel_see_it_ended(
    web_url: str, redis_url: str, procs: ProcessFactory
) -> None:
    procs.worker()
    child = spawn(["submit", "demo.steps", "--args", '{"steps": 300, "delay": 0.1}', "--wait"], web_url)
    child.expect(r"job ([\w-]+) \(demo.steps\)")
    job_id = child.match.group(1)
    child.expect(r"step \d+/300")
    child.sendintr()
    child.expect(rf"Cancel job {job_id}\?")
    child.sendline("y")
    code, output = finish(child)
    assert code == 130, output
    watch = subprocess.run([JOBS, "watch", job_id], env=env(web_url), capture_output=True, text=True, timeout=60)
    assert watch.returncode == 1 and "stopped" in watch.stderr, watch.stderr
    assert status_of(web_url, job_id) == "stopped"
    again = subprocess.run([JOBS, "cancel", job_id], env=env(web_url), capture_output=True, text=True, timeout=30)
    assert again.returncode == 1 and "409" in again.stderr


def test_api_key_from_jobs_api_key_with_bar_and_json(secured_url: str, redis_url: str, procs: ProcessFactory) -> None:
    procs.worker()
    denied = subprocess.run([JOBS, "list"], env=env(secured_url), capture_output=True, text=True, timeout=30)
    assert denied.returncode == 1 and "401" in denied.stderr
    child = spawn(
        ["--json", "submit", "demo.steps", "--arg", "steps=5", "--arg", "delay=0.2", "--wait"],
        secured_url,
        JOBS_API_KEY=API_KEY,
    )
    child.expect(r"demo\.steps.*━.*\d+%.*step \d+/5")
    code, output = finish(child)
    assert code == 0, output
    view = json.loads(output[output.index("\n{") : output.rindex("}") + 1])
    assert view["status"] == "finished" and view["result"] == {"steps": 5, "attempt": 1}
    assert status_of(secured_url, view["id"], API_KEY) == "finished"
    jobs = [JOBS, "submit", "demo.noop"]
    second = subprocess.run(
        jobs, env=env(secured_url, JOBS_API_KEY=API_KEY), capture_output=True, text=True, timeout=30
    )
    assert second.returncode == 0, second.stderr
    third = subprocess.run(jobs, env=env(secured_url, JOBS_API_KEY=API_KEY), capture_output=True, text=True, timeout=30)
    assert third.returncode == 1 and "429" in third.stderr and "retry after" in third.stderr, third.stderr
