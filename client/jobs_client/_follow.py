"""What `jobsvc submit --wait` and `jobsvc watch` show while a job runs: its progress and its streamed output.

With stderr on a terminal, a live bar (type, percentage, elapsed time, latest message) is drawn there;
otherwise one line per progress message goes to stderr. The text the job streams goes to stdout as
it arrives (to stderr with `--json`, whose stdout is the job view alone). When the bar and stdout
share the terminal, finished lines are printed above the bar and the line being written is shown
just above it, so neither overwrites the other.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO

from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from jobs_client._models import Job, OutputChunk, ProgressEvent


def progress_line(event: ProgressEvent) -> str:
    return f"[{event.progress:5.1f}%] {event.message or ''}".rstrip()


class Bar(Progress):
    """rich's progress bar with, above it, the line of output the job is writing (`tail`)."""

    tail = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        if self.tail:
            yield Text(self.tail, no_wrap=True, overflow="ellipsis")
        yield self.make_tasks_table(self.tasks)


def make_bar(console: Console, job: Job) -> tuple[Bar, TaskID]:
    bar = Bar(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[message]}", markup=False),
        console=console,
        redirect_stdout=False,  # stdout may be a pipe: its bytes are the job's, never the bar's
    )
    task = bar.add_task(job.type or job.id, total=100, message=job.status)
    bar.update(task, completed=job.progress)
    return bar, task


class ProgressSink:
    """`on_progress` of `wait()`: moves the bar, or prints one line per message."""

    def __init__(self, bar: Bar | None, task: TaskID | None) -> None:
        self.bar = bar
        self.task = task

    def __call__(self, event: ProgressEvent) -> None:
        if self.bar is None or self.task is None:
            print(progress_line(event), file=sys.stderr, flush=True)
        elif event.message:
            self.bar.update(self.task, completed=event.progress, message=event.message)
        else:
            self.bar.update(self.task, completed=event.progress)


class OutputSink:
    """`on_output` of `wait()`: the job's text, written as it arrives.

    Beside a live bar on the same terminal, whole lines are printed above the bar and the unfinished
    line is the bar's `tail` (cut at the terminal's width, as the terminal itself would wrap it)."""

    def __init__(self, stream: IO[str], bar: Bar | None) -> None:
        self.stream = stream
        self.bar = bar
        self.pending = ""
        self.wrote_any = False
        self.at_line_start = True

    @classmethod
    def for_terminal(cls, as_json: bool, bar: Bar | None) -> OutputSink:
        stream = sys.stderr if as_json else sys.stdout
        live = bar is not None and stream.isatty()
        return cls(stream, bar if live else None)

    def __call__(self, chunk: OutputChunk) -> None:
        if not chunk.text:
            return
        self.wrote_any = True
        if self.bar is None:
            self.stream.write(chunk.text)
            self.stream.flush()
            self.at_line_start = chunk.text.endswith("\n")
            return
        *lines, self.pending = (self.pending + chunk.text).split("\n")
        width = max(20, self.bar.console.width)
        while len(self.pending) > width:
            cut = self.pending.rfind(" ", 0, width) + 1 or width
            lines.append(self.pending[:cut].rstrip(" "))
            self.pending = self.pending[cut:]
        for line in lines:
            self._print(line)
        self.bar.tail = self.pending

    def _print(self, line: str) -> None:
        assert self.bar is not None
        self.bar.console.print(Text(line), soft_wrap=True, highlight=False)

    def close(self) -> None:
        """End the output on a line of its own (before the result or the outcome is printed)."""
        if self.bar is not None:
            if self.pending:
                self._print(self.pending)
            self.pending = self.bar.tail = ""
        elif not self.at_line_start:
            self.stream.write("\n")
            self.stream.flush()
            self.at_line_start = True

    def text(self, whole: str) -> None:
        """All the output at once (read with `GET /jobs/{id}/output` when nothing was streamed)."""
        self(OutputChunk(0, whole))
        self.close()
