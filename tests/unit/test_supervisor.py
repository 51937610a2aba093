"""The stack's supervisor reports every process that stopped, however its last look falls."""

from __future__ import annotations

import io
import os
from pathlib import Path

from stack.output import Output
from stack.supervisor import StopSignals, Supervisor


class EndsRightAfterALook(Supervisor):
    """A supervisor whose process ends, output and all, between a look and the next check: the process
    waits for a file `go` that the supervisor's first look creates."""

    def _turn(self, clock: float) -> None:
        super()._turn(clock)
        (self.cwd / "go").touch()
        for child in self.children:
            child.popen.wait(10)
            child.reader.join(10)


def test_a_process_gets_its_stopped_line_even_when_it_ends_right_after_a_look(tmp_path: Path) -> None:
    processes = {"only.1": "sh -c 'until [ -e go ]; do sleep 0.01; done; echo done; exit 3'"}
    console = io.StringIO()
    supervisor = EndsRightAfterALook(
        processes, env=dict(os.environ), cwd=tmp_path, output=Output(list(processes), streams=(console,)),
        signals=StopSignals(), grace=1.0,
    )  # fmt: skip

    assert supervisor.run() == 3

    lines = console.getvalue()
    assert "only.1 | done" in lines, lines
    assert "only.1 stopped (rc=3)" in lines, lines
