"""Log lines for web and workers: one line per event, JSON on platforms, readable text locally.

`configure_logging(settings)` puts one handler on the root logger (RQ's and uvicorn's loggers
propagate to it). Event fields travel as `extra={...}`; only the names in `FIELDS` are written,
so what RQ attaches on its own (a failed job's `arguments` and `kwargs`) never reaches a log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from jobs.clock import iso_z
from jobs.settings import Settings

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
)
_HANDLER_NAME = "jobsvc"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: record.__dict__[name] for name in FIELDS if record.__dict__.get(name) is not None}


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

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = "".join(f" {name}={value}" for name, value in event_fields(record).items())
        return super().formatMessage(record) + fields


class StdoutHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stdout` is at the time (so a replaced or captured stdout is followed)."""

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


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
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "rq.worker", "rq.job", "rq.scheduler"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
