"""`python -m tests.conformance [--variants a,b] [pytest options]`: RQ's worker-related tests against RQ's
worker and the service's.

Fetches RQ's sdist for the installed (pinned) RQ into `.data/conformance/` once, then runs one pytest
session per worker variant at the same time (their tests mostly wait), each on its own valkey-server,
with `plugin.py`. Prints each session's failures and a table of the figures; exits 0 only if every
session did (the only failures are those of `expected.toml`). Logs: `.data/conformance/logs/`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from stack.redis_server import EmbeddedRedis
from tests.conformance.source import extract_tests, fetch_sdist, rq_version
from tests.conformance.variants import VARIANTS

PROJECT = Path(__file__).resolve().parents[2]
CACHE = PROJECT / ".data" / "conformance"

#: RQ's test modules about workers and what they do with jobs.
MODULES = (
    "worker", "job", "retry", "callbacks", "dependencies", "timeouts", "commands", "registry", "scheduler",
    "results", "executions", "repeat", "job_dependency", "group", "intermediate_queue", "queue",
)  # fmt: skip
#: The figures per variant: passed; failed as `expected.toml` says; failed otherwise, or passed where a
#: failure was expected; skipped (by RQ, or `expected.toml`); not run (no worker in the test: the baseline's).
#: "of which refusals": expected failures that are the registered job class's refusals.
COLUMNS = ("passed", "expected", "of which refusals", "unexpected", "skipped", "not run")


def session_command(root: Path, variant: str, args: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "pytest", "-c", str(root / "pyproject.toml"), "--rootdir", str(root),
        "-p", "plugin", "-p", "no:cacheprovider", "-q", "-rfEX", "--variants", variant,
        # A test that hangs ends the session with every thread's stack (SIGALRM is RQ's death penalty).
        "--timeout", "180", "--timeout-method", "thread",
        *[f"tests/test_{module}.py" for module in MODULES], *args,
    ]  # fmt: skip


def session_env(root: Path, port: int, summary: Path) -> dict[str, str]:
    path = [str(root), str(Path(__file__).parent), str(PROJECT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(path),  # RQ's `tests` package first: it shadows ours, never imported there
        "CONFORMANCE_REDIS_PORT": str(port),
        "CONFORMANCE_SUMMARY": str(summary),
        "CONFORMANCE_TMP_LOCK": str(CACHE / "tmp.lock"),
        "RUN_SLOW_TESTS_TOO": "1",  # RQ skips its tests of signals, shutdowns and timeouts without it
        # The one setting off its default: RQ's tests expect a stop within 0.1 s; the service's workers give
        # a job JOB_STOP_GRACE (1 s) to stop itself first (docs/workers.md).
        "JOB_STOP_GRACE": "0",
    }


def split_variants(args: list[str]) -> tuple[list[str], list[str]]:
    """(`--variants` given, or all; the other arguments, for pytest)."""
    if "--variants" in args:
        at = args.index("--variants")
        return args[at + 1].split(","), args[:at] + args[at + 2 :]
    return list(VARIANTS), args


def main(argv: list[str]) -> int:
    if importlib.util.find_spec("psutil") is None:
        print("conformance: RQ's tests need psutil (requirements-dev.txt)", file=sys.stderr)
        return 2
    variants, args = split_variants(argv)
    rq = rq_version()
    root = extract_tests(fetch_sdist(CACHE, rq), CACHE, rq)
    logs = CACHE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with ExitStack() as stack:
        sessions = {}
        for variant in variants:
            server = stack.enter_context(EmbeddedRedis(CACHE / "redis" / variant, appendonly=False))
            summary = logs / f"{variant}.json"
            summary.unlink(missing_ok=True)
            with (logs / f"{variant}.log").open("wb") as log:
                sessions[variant] = subprocess.Popen(
                    session_command(root, variant, args), cwd=root, env=session_env(root, server.port, summary),
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
        stack.callback(_end_sessions, list(sessions.values()))  # interrupted: no session outlives the run
        codes = {variant: popen.wait() for variant, popen in sessions.items()}
    report(root, logs, codes, time.monotonic() - started)
    return 0 if all(code == 0 for code in codes.values()) else 1


def _end_sessions(sessions: list[subprocess.Popen[bytes]]) -> None:
    """Kill what is left of the sessions (each in its own process group: a test's worker, its horses)."""
    for popen in sessions:
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()


def report(root: Path, logs: Path, codes: dict[str, int], seconds: float) -> None:
    for variant, code in codes.items():
        text = (logs / f"{variant}.log").read_text(errors="replace")
        if code != 0:
            summary = text.rsplit("short test summary info", 1)[-1] if "short test summary" in text else text[-3000:]
            print(f"--- {variant}: pytest exited {code}; {logs / f'{variant}.log'}\n{summary.strip()}\n")
    print(f"RQ {rq_version()}'s tests ({len(MODULES)} modules), {seconds:.0f} s:")
    print(f"{'variant':24}" + "".join(f"{column:>19}" for column in COLUMNS))
    for variant in codes:
        path = logs / f"{variant}.json"
        outcomes = json.loads(path.read_text())["outcomes"].get(variant, {}) if path.is_file() else {}
        print(f"{variant:24}" + "".join(f"{outcomes.get(column, 0):>19}" for column in COLUMNS))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
