"""Start the Procfile's processes (web, worker) as real subprocesses and stop them cleanly."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from stack.procfile import procfile_command

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.05, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def base_env(redis_url: str, **overrides: str) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "REDIS_", "RQ_", "COVERAGE_"))
    }
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.popen.pid, sig)

    def kill_group(self) -> None:
        """SIGKILL the process and everything it started (a work horse included)."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill_group()


class ProcessFactory:
    """Starts processes for one test and stops every one of them afterwards."""

    def __init__(self, redis_url: str, log_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.redis_url = redis_url
        self.log_dir = log_dir
        self.env = dict(env or {})
        self.procs: list[Proc] = []

    def spawn(self, name: str, command: str, env: Mapping[str, str]) -> Proc:
        log_path = self.log_dir / f"{name}-{len(self.procs)}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                command, shell=True, cwd=ROOT, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        return proc

    def worker(self, *queues: str, wait: bool = True, **env: str) -> Proc:
        """An `rq worker` started with the Procfile's worker line (optionally other queues)."""
        command = procfile_command("worker")
        if queues:
            command = command.rsplit(" high default low", 1)[0] + " " + " ".join(shlex.quote(q) for q in queues)
        full_env = base_env(self.redis_url, **{**self.env, **env})
        client = redis.Redis.from_url(self.redis_url)
        proc = self.spawn("worker", f"exec {command}", full_env)
        if wait:
            # Its own registration (by pid: `exec` keeps it), not the count, which a dead worker's cleanup
            # may lower at the same moment.
            wait_for(lambda: _registered(client, proc.popen.pid) or not proc.alive(), 30, what="worker registration")
            assert proc.alive(), proc.log()
        client.close()
        return proc

    def web(self, port: int | None = None, **env: str) -> tuple[Proc, str]:
        """The Procfile's web process on `port` (default: a free one); returns it and its base URL."""
        from stack.redis_server import free_port

        port = port or free_port()
        full_env = base_env(self.redis_url, **{**self.env, **env}, PORT=str(port))
        proc = self.spawn("web", f"exec {procfile_command('web')}", full_env)
        base_url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            if not proc.alive():
                raise AssertionError(f"web exited:\n{proc.log()}")
            try:
                return httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 30, what="web /healthz")
        return proc, base_url

    def stop_all(self, timeout: float = 5.0) -> None:
        """Stop every process as `Proc.stop` does, all at once: each gets SIGTERM, then up to `timeout`
        seconds to exit, then SIGKILL for what is left of its process group."""
        procs = list(reversed(self.procs))
        for proc in procs:
            proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            proc.kill_group()


@contextmanager
def web_process(redis_url: str, log_dir: Path, env: Mapping[str, str]) -> Iterator[str]:
    """A web process of its own, with `env`, for a fixture wider than one test: its base URL while in use,
    then it is stopped."""
    factory = ProcessFactory(redis_url, log_dir, env)
    try:
        _, url = factory.web()
        yield url
    finally:
        factory.stop_all()


def _registered(client: redis.Redis, pid: int) -> bool:
    """Whether a worker with process id `pid` is in RQ's set of workers."""
    with client.pipeline(transaction=False) as pipe:
        for name in client.smembers("rq:workers"):
            pipe.hget(name, "pid")
        return any(raw is not None and int(raw) == pid for raw in pipe.execute())
