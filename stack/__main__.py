"""`python -m stack`: the whole stack on one machine, as `make run` starts it.

With `REDIS_URL` unset, an embedded server (append-only, data under `.data/redis`) is
started first and its URL exported. Then the Procfile's `web` and `worker` processes run
under honcho, `PORT` (default 8000) and `WORKERS` (default 2) respected. Ctrl-C or SIGTERM
stops every process started here, the embedded server last.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import FrameType

from stack.procfile import PROCFILE
from stack.redis_server import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent


def _embedded_port() -> int:
    wanted = int(os.environ.get("EMBEDDED_REDIS_PORT", "6379"))
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", wanted))
        return wanted
    except OSError:
        return free_port()


def main() -> int:
    env = dict(os.environ)
    server: EmbeddedRedis | None = None
    if not env.get("REDIS_URL"):
        server = EmbeddedRedis(ROOT / ".data" / "redis", port=_embedded_port()).start()
        env["REDIS_URL"] = server.url
        print(f"stack: embedded valkey-server on {server.url} (data in {server.data_dir})", flush=True)
    else:
        print("stack: using REDIS_URL from the environment", flush=True)
    port = env.setdefault("PORT", "8000")
    workers = env.get("WORKERS", "2")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    command = [sys.executable, "-m", "honcho", "-f", str(PROCFILE), "-d", str(ROOT), "-e", os.devnull,
               "start", "-p", port, "-c", f"web=1,worker={workers}"]  # fmt: skip
    print(f"stack: web on http://127.0.0.1:{port}  ({workers} workers)", flush=True)
    honcho = subprocess.Popen(command, env=env, cwd=ROOT)

    def forward(signum: int, frame: FrameType | None) -> None:
        if honcho.poll() is None:
            honcho.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        code = honcho.wait()
    finally:
        if honcho.poll() is None:
            honcho.kill()
        if server is not None:
            server.stop()
            print("stack: embedded server stopped", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
