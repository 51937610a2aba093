"""Log lines for web and workers: one line per event, JSON on platforms, readable text locally.

`configure_logging(settings)` puts one handler on the root logger (RQ's and uvicorn's loggers
propagate to it). Event fields travel as `extra={...}`; only the names in `FIELDS` are written,
so what RQ attaches on its own (a failed job's `arguments` and `kwargs`) never reaches a log.
With tracing on (`core.tracing`), a line logged while a span is current carries its `trace_id`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

from core import tracing
from core.clock import iso_z
from core.settings import Settings

#: The event fields a log line may carry; anything else passed in `extra` is dropped.
FIELDS = (
    "job_id",
    "type",
    "queue",
    "attempt",
    "duration_s",
    "status",
    "outcome",
    "error",
    "retries_left",
    "method",
    "route",
    "status_code",
    "trace_id",
)
_HANDLER_NAME = "jobsvc"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    found = record.__dict__
    return {name: value for name in FIELDS if (value := found.get(name)) is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the event's fields, then any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": iso_z(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _ANSI.sub("", record.getMessage()),
            **event_fields(record),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`10:00:00.123 INFO app.submissions: job submitted job_id=… type=demo.steps queue=default`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The logging module's own format, the local time of each second formatted once (a busy worker
        logs two lines per job)."""
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if self._second[0] != second:
            self._second = (second, time.strftime(self.default_time_format, self.converter(record.created)))
        msec_format = self.default_msec_format
        return msec_format % (self._second[1], record.msecs) if msec_format else self._second[1]

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = "".join(f" {name}={value}" for name, value in event_fields(record).items())
        return super().formatMessage(record) + fields


#: The per-request and per-job lines: on a running event loop, written once per loop turn.
BATCHED_LOGGERS = frozenset({"uvicorn.access", "app.submissions", "workers.jobs"})


class StdoutHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stdout` is at the time (so a replaced or captured stdout is followed).

    Per-request and per-job lines (`BATCHED_LOGGERS`, below WARNING) logged on a running event loop
    are written together at the end of the loop's turn: one write for the dozens of lines a busy web
    process logs per turn, where a write per line cost each request ~35 us of system calls. Every
    other line (start-up, shutdown, warnings; lines from threads or RQ's forking worker) is written
    at once, after any batched lines, so a process that dies by its own signal (uvicorn re-raises
    the SIGTERM it drained for) has written all it logged. `flush()`, called at exit, writes the rest.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending: list[str] = []

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        loop = _running_loop() if record.name in BATCHED_LOGGERS and record.levelno < logging.WARNING else None
        if loop is None:
            self._write([*self._take_pending(), line])
            return
        if not self._pending:
            loop.call_soon(self.flush)
        self._pending.append(line)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # (Handler.createLock always made one)
            self._write(self._take_pending())

    def _take_pending(self) -> list[str]:
        pending, self._pending = self._pending, []
        return pending

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        try:
            stream = self.stream
            stream.write("".join(lines))
            stream.flush()
        except Exception:
            self.handleError(logging.makeLogRecord({"msg": "writing log lines failed"}))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def wants_json(settings: Settings) -> bool:
    if settings.log_format == "auto":
        return bool(settings.dyno or settings.render)
    return settings.log_format == "json"


def make_formatter(settings: Settings) -> logging.Formatter:
    return JsonFormatter() if wants_json(settings) else TextFormatter()


def configure_logging(settings: Settings) -> None:
    """Route every logger of the process through one handler; calling it again replaces that handler.

    Log records skip what no line here shows (source file and line, thread, process names): the
    logging module's own documented optimisation (a sixth of the cost of a line)."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = StdoutHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(make_formatter(settings))
    if tracing.enabled():  # lines logged while a span is current carry its trace_id
        from core.tracing.sdk import TraceIdFilter

        handler.addFilter(TraceIdFilter())
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "rq.worker", "rq.job", "rq.scheduler"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
