"""`make run` stopped the way a person stops it: Ctrl-C in a terminal, plain and through `| tee`.

Each command runs in a process group of its own, as a terminal's foreground job, with `REDIS_URL`
unset (so the stack starts its embedded server, on a free port, with its data in the test's
directory). Ctrl-C is SIGINT to that whole group: make, `python -m stack`, `tee` alike. A running
job must finish within `WORKER_SHUTDOWN_GRACE` or go back to its queue with its retries intact,
never fail; every process the command started must be gone afterwards.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from rq.job import Job, JobStatus

from core.queues import SERIALIZER
from stack.redis_server import EmbeddedRedis, free_port
from stack.supervisor import SAME_STOP
from tests.factories import steps_job
from tests.support.procs import ROOT, wait_for

VENV = Path(sys.executable).parent.parent
#: The Makefile's `run` target, its venv prerequisite taken as made (`-o`): never a pip install here.
MAKE_RUN = ["make", "--no-print-directory", "-o", f"{VENV}/.runtime", f"VENV={VENV}", "run"]
RETRIES = 2


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process on the machine."""
    table: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
            table[int(entry)] = (int(ppid), state)
    return table


def process_tree(root: int) -> set[int]:
    """`root` and every live process below it."""
    table = process_table()
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = {pid for pid, (ppid, state) in table.items() if ppid == parent and state != "Z"}
        frontier.extend(children - tree)
        tree |= children
    return tree


def running(pid: int) -> bool:
    return process_table().get(pid, (0, "Z"))[1] not in ("Z", "X")


@dataclass
class RunningStack:
    popen: subprocess.Popen[bytes]
    out: Path
    err: Path
    base_url: str
    #: Every process seen under the command: none may outlive the test.
    seen: set[int] = field(default_factory=set)

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def tree(self) -> set[int]:
        tree = process_tree(self.popen.pid)
        self.seen |= tree
        return tree

    def ctrl_c(self) -> None:
        """What a terminal's Ctrl-C does: SIGINT to every process of the foreground job."""
        os.killpg(self.popen.pid, signal.SIGINT)

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.popen.poll() is not None:
                raise AssertionError(f"the stack exited with {self.popen.returncode}:\n{self.output()}")
            try:
                response = httpx.get(f"{self.base_url}/readyz", timeout=1)
            except httpx.HTTPError:
                return False
            return response.status_code == 200 and response.json()["workers"] >= 1

        wait_for(ready, 60, interval=0.2, what="the stack to be ready")

    def job(self, job_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.base_url}/jobs/{job_id}", timeout=5)
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view

    def wait_status(self, job_id: str, status: str, timeout: float) -> dict[str, Any]:
        views: list[dict[str, Any]] = []

        def reached() -> bool:
            views.append(self.job(job_id))
            assert views[-1]["status"] != "failed", views[-1]
            return bool(views[-1]["status"] == status)

        wait_for(reached, timeout, interval=0.1, what=f"job {job_id} {status}")
        return views[-1]

    def stop_and_wait_gone(self, stop: signal.Signals = signal.SIGINT, timeout: float = 60) -> set[int]:
        """Send `stop` to the whole job, wait for the command to exit and every process it started to
        be gone (none left behind); returns their pids."""
        tree = self.tree()
        os.killpg(self.popen.pid, stop)
        self.wait_gone(tree, timeout)
        return tree

    def wait_gone(self, tree: set[int], timeout: float) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout}s:\n{self.output()}") from None
        wait_for(lambda: not any(running(pid) for pid in tree), 10, what=f"every process of {tree} to exit")


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    stripped = ("PYTEST", "REDIS_", "RQ_", "MAKE", "MFLAGS", "EMBEDDED_REDIS", "WORKER", "WEB_", "API_KEYS")
    env = {key: value for key, value in os.environ.items() if not key.startswith(stripped)}
    env.update(
        PORT=str(free_port()),
        EMBEDDED_REDIS_PORT=str(free_port()),
        EMBEDDED_REDIS_DIR=str(tmp_path / "redis"),
        WORKERS="1",
        LOG_LEVEL="INFO",
    )
    return env


@pytest.fixture
def start_stack(tmp_path: Path, stack_env: dict[str, str]) -> Iterator[Any]:
    started: list[RunningStack] = []

    def start(command: list[str], name: str, **env: str) -> RunningStack:
        out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            popen = subprocess.Popen(
                command, cwd=ROOT, env={**stack_env, **env}, stdin=subprocess.DEVNULL,
                stdout=stdout, stderr=stderr, start_new_session=True,
            )  # fmt: skip
        stack = RunningStack(popen, out, err, f"http://127.0.0.1:{stack_env['PORT']}")
        started.append(stack)
        return stack

    yield start
    for stack in started:  # a failed test must not leave a stack behind
        left = (stack.tree() if stack.popen.poll() is None else set()) | stack.seen
        for pid in filter(running, left):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        stack.popen.wait(10)


def job_in_redis(data_dir: Path, job_id: str) -> tuple[JobStatus | None, int | None, Any]:
    """Status, retries left and result of the job as the stopped stack left it (its server's data,
    read by a server of our own)."""
    with EmbeddedRedis(data_dir) as server:
        job = Job.fetch(job_id, connection=server.client(), serializer=SERIALIZER)
        return job.get_status(refresh=True), job.retries_left, job.return_value()


def submit_and_wait_running(stack: RunningStack, steps: int, delay: float) -> str:
    response = httpx.post(f"{stack.base_url}/jobs", json=steps_job(steps, delay, retries=RETRIES), timeout=5)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    wait_for(lambda: stack.job(job_id)["progress"] > 0, 30, interval=0.1, what=f"job {job_id} under way")
    return job_id


def follow_events(base_url: str, job_id: str) -> tuple[threading.Thread, list[str]]:
    """The job's event stream held open, as a browser page showing the job holds it."""
    lines: list[str] = []

    def read() -> None:
        try:
            with httpx.stream("GET", f"{base_url}/jobs/{job_id}/events", timeout=httpx.Timeout(5, read=None)) as events:
                lines.extend(events.iter_lines())
        except httpx.HTTPError as exc:  # cut by the server instead of ended
            lines.append(f"cut: {exc!r}")

    thread = threading.Thread(target=read, name="event stream", daemon=True)
    thread.start()
    wait_for(lambda: any(line.startswith("event:") for line in lines), 10, what="the job's event stream")
    return thread, lines


def assert_stopped_in_order(output: str) -> None:
    """Every process stopped on its own (none killed), the embedded server after them."""
    assert "SIGKILL" not in output, output
    assert re.search(r"web\.1 stopped \(rc=-?\d+\)", output), output
    worker = re.search(r"worker\.1 stopped \(rc=0\)", output)
    server = output.find("embedded server stopped")
    assert worker and server > worker.end(), output


def test_ctrl_c_on_make_run_requeues_a_job_past_the_grace_then_it_finishes_after_a_restart(
    start_stack: Any, stack_env: dict[str, str]
) -> None:
    stack = start_stack(MAKE_RUN, "first", WORKER_SHUTDOWN_GRACE="1")
    stack.wait_ready()
    job_id = submit_and_wait_running(stack, steps=40, delay=0.25)

    tree = stack.stop_and_wait_gone(signal.SIGINT)
    assert len(tree) >= 5, tree  # make, python -m stack, valkey-server, web, worker
    assert_stopped_in_order(stack.output())
    assert job_in_redis(Path(stack_env["EMBEDDED_REDIS_DIR"]), job_id) == (JobStatus.QUEUED, RETRIES, None)

    again = start_stack(MAKE_RUN, "again")
    again.wait_ready()
    view = again.wait_status(job_id, "finished", timeout=60)
    assert view["retries_left"] == RETRIES
    assert view["result"] == {"steps": 40, "attempt": 2}  # interrupted once, run again: no retry spent
    assert any("interrupted" in message["message"] for message in view["messages"]), view["messages"]
    again.stop_and_wait_gone(signal.SIGTERM)  # SIGTERM to the group: from the sender, and make forwards it


def test_ctrl_c_on_make_run_piped_to_tee_lets_the_running_job_finish_and_stops_everything(
    start_stack: Any, stack_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "stack.log"
    command = ["bash", "-c", f"{shlex.join(MAKE_RUN)} | tee {shlex.quote(str(log))}"]
    stack = start_stack(command, "tee", WORKER_SHUTDOWN_GRACE="20")
    stack.wait_ready()
    job_id = submit_and_wait_running(stack, steps=8, delay=1)  # longer than honcho's 5 s before SIGKILL
    stream, _ = follow_events(stack.base_url, job_id)

    tree = stack.stop_and_wait_gone(signal.SIGINT)
    stream.join(5)
    assert not stream.is_alive()
    # The web did not wait out its grace for the open stream: it stopped while the job still ran.
    output = stack.output()
    assert -1 < output.find("web.1 stopped") < output.find(f"job finished job_id={job_id}"), output
    assert len(tree) >= 6, tree  # bash, tee, make, python -m stack, valkey-server, web, worker
    # tee died at once: what the stack wrote after it, its own stopping lines among them, went to stderr.
    assert "embedded server stopped" not in log.read_text()
    assert "web on http://" in log.read_text()
    assert_stopped_in_order(stack.output())
    assert "embedded server stopped" in stack.err.read_text()
    finished = (JobStatus.FINISHED, RETRIES, {"steps": 8, "attempt": 1})  # within the grace, at its first attempt
    assert job_in_redis(Path(stack_env["EMBEDDED_REDIS_DIR"]), job_id) == finished


def test_a_second_ctrl_c_requeues_the_running_job_at_once(start_stack: Any, stack_env: dict[str, str]) -> None:
    stack = start_stack(MAKE_RUN, "twice", WORKER_SHUTDOWN_GRACE="120")
    stack.wait_ready()
    job_id = submit_and_wait_running(stack, steps=400, delay=0.25)
    tree = stack.tree()

    stack.ctrl_c()
    first = time.monotonic()
    wait_for(lambda: "warm shutdown" in stack.output(), 10, what="the worker's warm shutdown")
    wait_for(lambda: time.monotonic() > first + SAME_STOP, 5, what="a second Ctrl-C, not the first one twice")
    stack.ctrl_c()
    stack.wait_gone(tree, timeout=30)  # far within the 120 s grace

    assert_stopped_in_order(stack.output())
    assert "stopping now" in stack.output()
    assert job_in_redis(Path(stack_env["EMBEDDED_REDIS_DIR"]), job_id) == (JobStatus.QUEUED, RETRIES, None)
