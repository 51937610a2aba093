"""`python -m stack`: the whole stack on one machine, as `make run` starts it.

With `REDIS_URL` unset, an embedded server (append-only, data under `EMBEDDED_REDIS_DIR`,
default `.data/redis`) is started first and its URL exported. Then every Procfile process runs
under `stack.supervisor`, `PORT` (default 8000) and `WORKERS` (default 2 worker processes)
respected. Ctrl-C or SIGTERM stops them the way `stack.supervisor` describes (running jobs finish
within `WORKER_SHUTDOWN_GRACE` or are requeued, never failed), the embedded server last.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

from core.settings import get_settings
from stack.output import STACK, Output
from stack.procfile import procfile_processes
from stack.redis_server import EmbeddedRedis, free_port
from stack.supervisor import StopSignals, Supervisor

ROOT = Path(__file__).resolve().parent.parent
#: The Procfile's default for `WEB_SHUTDOWN_GRACE` (`--timeout-graceful-shutdown ${WEB_SHUTDOWN_GRACE:-20}`).
WEB_SHUTDOWN_GRACE = 20.0


def _embedded_port() -> int:
    wanted = int(os.environ.get("EMBEDDED_REDIS_PORT", "6379"))
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", wanted))
        return wanted
    except OSError:
        return free_port()


def _processes(workers: int) -> dict[str, str]:
    """Every Procfile line once, `worker` `workers` times, named as honcho and foreman name them."""
    processes: dict[str, str] = {}
    for kind, line in procfile_processes().items():
        for number in range(1, (workers if kind == "worker" else 1) + 1):
            processes[f"{kind}.{number}"] = line
    return processes


def _grace(env: dict[str, str]) -> float:
    """The longest shutdown grace of the processes: the workers' or uvicorn's."""
    web = float(env.get("WEB_SHUTDOWN_GRACE") or WEB_SHUTDOWN_GRACE)
    return max(get_settings().worker_shutdown_grace, web)


def main() -> int:
    signals = StopSignals().install()
    env = dict(os.environ)
    port = env.setdefault("PORT", "8000")
    workers = int(env.get("WORKERS", "2"))
    processes = _processes(workers)
    output = Output(list(processes))
    server: EmbeddedRedis | None = None
    if not env.get("REDIS_URL"):
        data_dir = Path(env.get("EMBEDDED_REDIS_DIR") or ROOT / ".data" / "redis")
        server = EmbeddedRedis(data_dir, port=_embedded_port()).start()
        env["REDIS_URL"] = server.url
        output.write(STACK, f"embedded {server.name} on {server.url} (pid={server.pid}, data in {server.data_dir})")
    else:
        output.write(STACK, "using REDIS_URL from the environment")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the console as they are written, not when a buffer fills
    try:
        if signals.received:  # stopped while the server was starting
            return 128 + signals.received[0]
        output.write(STACK, f"web on http://127.0.0.1:{port}  ({workers} workers)")
        supervisor = Supervisor(processes, env=env, cwd=ROOT, output=output, signals=signals, grace=_grace(env))
        return supervisor.run()
    finally:
        if server is not None:
            server.stop()
            output.write(STACK, "embedded server stopped")


def exit_as(code: int) -> None:
    """Exit with `code`; stopped by Ctrl-C, die of SIGINT, so a calling shell script stops too."""
    if code == 128 + signal.SIGINT:
        try:
            sys.stdout.flush()
        except OSError:
            pass
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    raise SystemExit(code)


if __name__ == "__main__":
    exit_as(main())
