"""Shared pieces: the bench's own Redis, processes started from the Procfile's lines, figures."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from stack.procfile import procfile_command
from stack.redis_server import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOG_DIR = ROOT / ".data" / "bench"


@dataclass
class Figure:
    """One measured number, with the baseline it is divided by (both measured in this run)."""

    section: str
    name: str
    value: float
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


@dataclass
class Bench:
    server: EmbeddedRedis
    seconds: float
    figures: list[Figure] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def flush(self) -> None:
        with self.client() as client:
            client.flushdb()

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        ratio = f"  ratio {figure.ratio:.2f}" if figure.ratio is not None else ""
        base = f"  vs {figure.baseline_name} {figure.baseline:,.2f}" if figure.baseline is not None else ""
        verdict = "" if figure.met is None else ("  OK" if figure.met else "  MISSED")
        print(f"  {figure.name}: {figure.value:,.2f} {figure.unit}{base}{ratio}  {figure.target}{verdict}", flush=True)
        return figure

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "RQ_", "WORKER_"))}
        env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", REDIS_URL=self.url, PYTHONUNBUFFERED="1")
        env.update(extra)
        return env

    def spawn(self, name: str, command: str, **env: str) -> subprocess.Popen[bytes]:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with (LOG_DIR / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                f"exec {command}", shell=True, cwd=ROOT, env=self.env(**env), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs:
            self.stop(proc, 5)

    def web(self, name: str, app: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
        """`app` served by the Procfile's web command line (only the app path differs)."""
        port = free_port()
        command = procfile_command("web").replace("app.main:app", app).replace("${PORT:-8000}", str(port))
        proc = self.spawn(name, command, **env)
        wait_port(port, proc)
        return proc, f"http://127.0.0.1:{port}"

    def worker(self, name: str, *extra: str, command: str | None = None, **env: str) -> subprocess.Popen[bytes]:
        """The Procfile's worker line (or `command`), with `extra` options before the queue names."""
        line = command or procfile_command("worker")
        head, _, queues = line.rpartition(" high default low")
        return self.spawn(name, f"{head} {' '.join(shlex.quote(e) for e in extra)} high default low{queues}", **env)


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}; see {LOG_DIR}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port} after {timeout}s")


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def compact(client: redis.Redis) -> None:
    """Rewrite the server's append-only file now (after a flush: to almost nothing), so that a rewrite
    due to earlier sections' writes does not fork in the middle of the next timed run."""
    client.bgrewriteaof()

    def rewriting() -> bool:
        info = client.info("persistence")
        return bool(info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled"))

    wait_until(lambda: not rewriting(), 60, interval=0.05)
