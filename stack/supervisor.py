"""Run the Procfile's processes side by side, and stop them the way the workers need to be stopped.

Each process runs its Procfile line through `sh -c` (a simple command is exec'd, so the process
signalled and waited for is the program itself) in a session of its own: a terminal's Ctrl-C
reaches this supervisor only, and the supervisor decides what each process gets. Its stdout and
stderr come out through `stack.output`, each line prefixed with the process's name.

Stopping, on Ctrl-C, SIGTERM or SIGHUP to the supervisor, or when any process exits:
1. SIGTERM to every process group. Workers take no more jobs and let the running ones finish
   within `WORKER_SHUTDOWN_GRACE`, then requeue them without spending a retry; uvicorn stops
   accepting connections and lets open requests finish within `WEB_SHUTDOWN_GRACE`.
2. A second Ctrl-C (or SIGTERM), a second or more after the first, sends SIGINT: workers requeue
   their running jobs at once (no retry spent) and exit; uvicorn stops waiting for open
   connections. Signals closer together are one stop delivered twice (a SIGTERM sent to the
   group of `make run` reaches this process from the sender and again from make).
3. Whatever still runs `grace + margin` seconds after the first signal, or `margin` seconds after the
   second, gets SIGKILL (a job killed that way is recovered later as abandoned).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from stack.output import STACK, Output

#: Seconds between two looks at the processes when nothing wakes the supervisor sooner.
POLL = 0.1
#: Seconds past the longest grace before SIGKILL, for the requeue and the exit itself.
STOP_MARGIN = 10.0
#: Seconds within which further stop signals are the first one delivered twice, not a second stop.
#: The workers read theirs the same way (within 1 s), so a second stop is forwarded after that.
SAME_STOP = 1.2
#: Seconds to wait for the output of a process killed with SIGKILL before giving up on it.
OUTPUT_AFTER_KILL = 5.0

_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


class StopSignals:
    """Stop signals to this process, in order: the first asks for a stop, the next ones for haste."""

    def __init__(self) -> None:
        self.received: list[int] = []
        #: `time.monotonic()` of each signal received.
        self.times: list[float] = []

    def since(self, clock: float) -> int:
        """How many signals came at or after `clock`."""
        return sum(1 for when in self.times if when >= clock)

    def install(self) -> StopSignals:
        """Take over SIGINT, SIGTERM and SIGHUP (a closed terminal: its processes must not outlive it)."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # No lock may be taken here (an Event's included): the handler runs in the main thread, which
        # may hold that very lock. The supervisor sees the signal at its next look, within `POLL`.
        self.times.append(time.monotonic())
        self.received.append(signum)


def shell_command(line: str) -> list[str]:
    """How a Procfile line runs: `sh -c`, exec'ing a simple command so no shell stands in between."""
    return ["/bin/sh", "-c", f"exec {line}" if _is_simple(line) else line]


def _is_simple(line: str) -> bool:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: the shell will say so
        return False
    operators = set(lexer.punctuation_chars)
    return bool(tokens) and not _ASSIGNMENT.match(tokens[0]) and not any(set(t) <= operators for t in tokens)


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    reader: threading.Thread
    reported: bool = False

    def exited(self) -> bool:
        return self.popen.poll() is not None

    def done(self) -> bool:
        """Exited, and its output read to the end (nothing it started holds the pipe any more)."""
        return self.exited() and not self.reader.is_alive()

    def signal(self, signum: int) -> None:
        """`signum` to the process group: the program and whatever it started that stayed in it."""
        try:
            os.killpg(self.popen.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


class Supervisor:
    def __init__(
        self,
        processes: Mapping[str, str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        output: Output,
        signals: StopSignals,
        grace: float,
        margin: float = STOP_MARGIN,
    ) -> None:
        """`processes`: name -> command line. `grace`: the longest shutdown grace of any of them."""
        self.processes = dict(processes)
        self.env = dict(env)
        self.cwd = cwd
        self.output = output
        self.signals = signals
        self.grace = grace
        self.margin = margin
        self.children: list[Child] = []
        self._output_ended = threading.Event()
        self._hasty_signals = 0  # signals after the first stop already acted upon
        self._hurried = False
        self._stopping_since: float | None = None
        self._kill_at: float | None = None
        self._give_up_at: float | None = None
        self._first_exit: int | None = None

    def run(self) -> int:
        """Start every process, supervise them until all have exited; the exit code of the stack."""
        for name, line in self.processes.items():
            self._spawn(name, line)
        while not self._finished(time.monotonic()):
            self._output_ended.wait(POLL)
            self._output_ended.clear()
            self._turn(time.monotonic())
        self._report_exits()  # the last process may have ended between the last turn and the check
        for child in self.children:
            child.signal(signal.SIGKILL)  # anything left in a group whose program is gone
        return self.returncode()

    def returncode(self) -> int:
        """128 + the first stop signal; else the exit code of the first process that exited."""
        if self.signals.received:
            return 128 + self.signals.received[0]
        code = self._first_exit or 0
        return 128 - code if code < 0 else code

    def _spawn(self, name: str, line: str) -> None:
        try:
            popen = subprocess.Popen(
                shell_command(line), cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            self.output.write(STACK, f"{name} could not start: {exc}")
            self._first_exit = self._first_exit or 127
            return
        self.output.write(STACK, f"{name} started (pid={popen.pid})")
        assert popen.stdout is not None
        reader = threading.Thread(target=self._pump, args=(name, popen.stdout), name=f"{name} output", daemon=True)
        reader.start()
        self.children.append(Child(name, popen, reader))

    def _pump(self, name: str, pipe: IO[bytes]) -> None:
        with pipe:
            for raw in iter(pipe.readline, b""):
                self.output.write(name, raw.decode(errors="replace").rstrip("\r\n"))
        self._output_ended.set()

    def _finished(self, clock: float) -> bool:
        if self._give_up_at is not None and clock >= self._give_up_at:
            return all(child.exited() for child in self.children)
        return all(child.done() for child in self.children)

    def _turn(self, clock: float) -> None:
        self._report_exits()
        if self._stopping_since is None:
            if self.signals.received:
                self._stop(self.signals.times[0], f"{signal.Signals(self.signals.received[0]).name} received")
            elif self._first_exit is not None:
                self._stop(clock, "a process exited")
        else:
            later = self.signals.since(self._stopping_since + SAME_STOP)
            if later > self._hasty_signals:
                self._hasty_signals = later
                self._hurry(clock)
        if self._kill_at is not None and clock >= self._kill_at:
            self._kill(clock)

    def _report_exits(self) -> None:
        for child in self.children:
            if child.exited() and self._first_exit is None:
                self._first_exit = child.popen.returncode
            if child.done() and not child.reported:
                child.reported = True
                self.output.write(STACK, f"{child.name} stopped (rc={child.popen.returncode})")

    def _stop(self, clock: float, reason: str) -> None:
        self._stopping_since = clock
        self._kill_at = clock + self.grace + self.margin
        self.output.write(
            STACK,
            f"{reason}: stopping; running jobs may finish within WORKER_SHUTDOWN_GRACE, else they are requeued "
            f"(Ctrl-C again requeues them now); whatever runs in {self.grace + self.margin:g} s is killed",
        )
        self._send(signal.SIGTERM)

    def _hurry(self, clock: float) -> None:
        if self._hurried:
            left = max(0.0, (self._kill_at or clock) - clock)
            self.output.write(STACK, f"still stopping; whatever runs in {left:.0f} s is killed")
            return
        self._hurried = True
        self._kill_at = min(self._kill_at or clock, clock + self.margin)
        self.output.write(STACK, "stopping now: running jobs are requeued at once")
        self._send(signal.SIGINT)

    def _kill(self, clock: float) -> None:
        self._kill_at = None
        self._give_up_at = clock + OUTPUT_AFTER_KILL
        for child in self.children:
            if not child.done():
                self.output.write(STACK, f"{child.name} (pid={child.popen.pid}) did not stop in time: SIGKILL")
                child.signal(signal.SIGKILL)

    def _send(self, signum: int) -> None:
        for child in self.children:
            if not child.done():
                child.signal(signum)
