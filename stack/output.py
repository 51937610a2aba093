"""The stack's console: every process's lines, prefixed with the time and its name, coloured on a terminal.

Lines go to stdout. Once stdout is gone (a `make run | tee stack.log` whose `tee` the same Ctrl-C
killed) they go to stderr, and once that is gone too they are dropped: the supervisor keeps
reading every process's output whatever happens to it, so no process ever blocks on a full pipe
while it shuts down.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from itertools import cycle
from typing import TextIO

#: The name on the stack's own lines (plain, never coloured).
STACK = "stack"
#: ANSI colours given to the processes in turn.
COLOURS = ("36", "33", "32", "35", "34", "31", "96", "93", "92", "95", "94", "91")
RESET = "\033[0m"


class Output:
    def __init__(self, names: list[str], streams: tuple[TextIO, ...] | None = None) -> None:
        """`names`: the processes whose lines this prints, besides the stack's own."""
        self.width = max(map(len, [STACK, *names]))
        self.colours = dict(zip(names, cycle(COLOURS), strict=False))
        self._streams = list(streams if streams is not None else (sys.stdout, sys.stderr))
        self._lock = threading.Lock()

    def write(self, name: str, text: str) -> None:
        """One line of `name`'s, prefixed: `12:00:01 web.1  | text`."""
        prefix = f"{time.strftime('%H:%M:%S')} {name:<{self.width}} | "
        with self._lock:
            while self._streams:
                stream = self._streams[0]
                colour = self.colours.get(name) if _colour_wanted(stream) else None
                line = f"\033[{colour}m{prefix}{RESET}{text}\n" if colour else f"{prefix}{text}\n"
                try:
                    stream.write(line)
                    stream.flush()
                    return
                except (OSError, ValueError):  # a broken pipe, or closed
                    self._streams.pop(0)
                    _silence(stream)


def _colour_wanted(stream: TextIO) -> bool:
    try:
        return stream.isatty() and "NO_COLOR" not in os.environ
    except (OSError, ValueError):
        return False


def _silence(stream: TextIO) -> None:
    """Point a dead standard stream at /dev/null, so what is still buffered, and the interpreter's
    flush at exit, go nowhere instead of raising `BrokenPipeError` again."""
    try:
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except (OSError, ValueError):
        pass
