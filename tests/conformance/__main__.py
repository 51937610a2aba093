"""`python -m tests.conformance [pytest options]`: RQ's worker-related tests against RQ's worker and ours.

Fetches RQ's sdist for the installed RQ into `.data/conformance/` (once), starts a valkey-server on a
free port, and runs one pytest session in the extracted tree with `plugin.py`: every test class once
per worker variant. Exits with pytest's status: 0 when the only failures are those of `expected.toml`.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from stack.redis_server import EmbeddedRedis
from tests.conformance.source import extract_tests, fetch_sdist, rq_version

PROJECT = Path(__file__).resolve().parents[2]
CACHE = PROJECT / ".data" / "conformance"

#: RQ's test modules about workers and what they do with jobs.
MODULES = (
    "worker", "job", "retry", "callbacks", "dependencies", "timeouts", "commands", "registry", "scheduler",
    "results", "executions", "repeat", "job_dependency", "group", "intermediate_queue", "queue",
)  # fmt: skip


def main(args: list[str]) -> int:
    if importlib.util.find_spec("psutil") is None:
        print("make conformance: RQ's tests need psutil (requirements-dev.txt)", file=sys.stderr)
        return 2
    rq = rq_version()
    root = extract_tests(fetch_sdist(CACHE, rq), CACHE, rq)
    with EmbeddedRedis(CACHE / "redis", appendonly=False) as server:
        env = {
            **os.environ,
            # RQ's `tests` package first: it shadows ours, which this session never imports.
            "PYTHONPATH": os.pathsep.join(
                [str(root), str(Path(__file__).parent), str(PROJECT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "CONFORMANCE_REDIS_PORT": str(server.port),
            "RUN_SLOW_TESTS_TOO": "1",  # RQ skips its tests of signals, shutdowns and timeouts without it
            # The one setting off its default: RQ's tests expect a stop within 0.1 s, the service's
            # workers give a job JOB_STOP_GRACE (1 s) to stop itself first (docs/workers.md).
            "JOB_STOP_GRACE": "0",
        }
        command = [
            sys.executable, "-m", "pytest", "-c", str(root / "pyproject.toml"), "--rootdir", str(root),
            "-p", "plugin", "-p", "no:cacheprovider", "-q", "-rfEX",
            *[f"tests/test_{module}.py" for module in MODULES], *args,
        ]  # fmt: skip
        return subprocess.run(command, cwd=root, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
