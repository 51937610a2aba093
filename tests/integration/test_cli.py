"""The `jobs` command in a pseudo-terminal (pexpect) and in pipes, against the real stack; Ctrl-C with
cancelling against the loopback contract server (this branch's service has no DELETE yet)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator

import pexpect
import pytest
from jobs_client import JobsClient

from tests.support.contract_server import ContractServer, serve
from tests.support.procs import BIN, ROOT, ProcessFactory, wait_for

JOBS = str(BIN / "jobs")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def env(url: str | None = None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "JOBS_"))}
    base.update(TERM="xterm-256color", COLUMNS="150", LINES="40", PYTHONUNBUFFERED="1")
    if url:
        base["JOBS_URL"] = url
    return base


def spawn(args: list[str], url: str | None) -> pexpect.spawn:
    return pexpect.spawn(JOBS, args, env=env(url), cwd=str(ROOT), dimensions=(40, 150), timeout=60, encoding="utf-8")


def finish(child: pexpect.spawn) -> tuple[int, str]:
    child.expect(pexpect.EOF)
    output = ANSI.sub("", child.before or "")
    child.close()
    assert child.exitstatus is not None, f"killed by signal {child.signalstatus}"
    return child.exitstatus, output


@pytest.fixture
def contract() -> Iterator[ContractServer]:
    with serve() as server:
        yield server


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


def test_ctrl_c_with_cancel_on_interrupt_cancels(contract: ContractServer) -> None:
    child = spawn(
        ["submit", "demo.steps", "--args", '{"steps": 200, "delay": 0.05}', "--wait", "--cancel-on-interrupt"],
        contract.url,
    )
    child.expect(r"step \d+/200")  # via the SSE stream; the bar redraws 10 times a second, not every step
    child.sendintr()
    code, output = finish(child)
    assert code == 130, output
    (job,) = contract.jobs.values()
    assert job.status == "stopped" and contract.paths("DELETE") == [f"/jobs/{job.id}"]
    assert "stopped" in output


def test_ctrl_c_then_yes_cancels_and_watch_reports_stopped(contract: ContractServer) -> None:
    child = spawn(["submit", "demo.steps", "--args", '{"steps": 200, "delay": 0.05}', "--wait"], contract.url)
    child.expect(r"step \d+/200")
    child.sendintr()
    child.expect(r"Cancel job [\w-]+\?")
    child.sendline("y")
    code, output = finish(child)
    assert code == 130, output
    (job,) = contract.jobs.values()
    assert job.status == "stopped"
    watch = subprocess.run([JOBS, "watch", job.id], env=env(contract.url), capture_output=True, text=True, timeout=30)
    assert watch.returncode == 1 and "stopped by request" in watch.stderr
    again = subprocess.run([JOBS, "cancel", job.id], env=env(contract.url), capture_output=True, text=True, timeout=30)
    assert again.returncode == 1 and "409" in again.stderr
