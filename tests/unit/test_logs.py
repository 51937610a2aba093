"""Log lines: one per event, JSON or text, carrying job ids, never job arguments."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys

import fakeredis
import pytest
from starlette.testclient import TestClient

from core.logs import JsonFormatter, StdoutHandler, TextFormatter, configure_logging, wants_json
from core.settings import Settings
from tests.factories import steps_job
from tests.support.inprocess import run_jobs

#: A delay no log line has any other reason to contain.
MARK_DELAY = 0.001234


def record(message: str = "job started", level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    log_record = logging.LogRecord("workers.jobs", level, __file__, 1, message, None, None)
    log_record.__dict__.update(extra)
    return log_record


def test_json_line_has_event_fields_and_drops_everything_else() -> None:
    line = JsonFormatter().format(
        record(
            "\x1b[32mdefault\x1b[39;49;00m: job",
            job_id="j1",
            type="demo.steps",
            attempt=2,
            arguments=["secret-arg"],
            kwargs={"password": "hunter2"},
            func="jobs.builtin.demo.steps",
        )
    )
    entry = json.loads(line)
    assert entry["message"] == "default: job"  # RQ's colour codes stripped
    assert entry["job_id"] == "j1" and entry["type"] == "demo.steps" and entry["attempt"] == 2
    assert entry["level"] == "info" and entry["logger"] == "workers.jobs" and entry["time"].endswith("Z")
    assert "secret-arg" not in line and "hunter2" not in line and "func" not in entry


def test_json_line_keeps_a_traceback_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        log_record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = JsonFormatter().format(log_record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exc_info"]


def test_text_line_is_readable() -> None:
    line = TextFormatter().format(record("job submitted", job_id="j1", queue="high", kwargs={"a": 1}))
    assert line.endswith("INFO workers.jobs: job submitted job_id=j1 queue=high")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"dyno": "web.1"}, True),
        ({"render": "true"}, True),
        ({"log_format": "json"}, True),
        ({"log_format": "text", "dyno": "web.1"}, False),
    ],
)
def test_json_is_the_default_on_platforms(env: dict[str, str], expected: bool) -> None:
    assert wants_json(Settings(**env)) is expected  # type: ignore[arg-type]


def test_configure_logging_installs_one_handler_and_routes_uvicorn_through_it() -> None:
    root = logging.getLogger()
    level = root.level
    try:
        configure_logging(Settings(log_format="json", log_level="WARNING"))
        configure_logging(Settings(log_format="json", log_level="WARNING"))
        ours = [handler for handler in root.handlers if handler.get_name() == "jobsvc"]
        assert len(ours) == 1 and isinstance(ours[0].formatter, JsonFormatter)
        assert root.level == logging.WARNING
        assert logging.getLogger("uvicorn.access").propagate and not logging.getLogger("uvicorn.access").handlers
    finally:
        configure_logging(Settings())
        root.setLevel(level)


def test_submissions_and_job_events_are_logged_with_ids_not_args(
    client: TestClient, fake_redis: fakeredis.FakeRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    ok = client.post("/jobs", json=steps_job(steps=2, delay=MARK_DELAY, queue="high")).json()["id"]
    bad = client.post("/jobs", json=steps_job(steps=2, delay=MARK_DELAY, args={"fail_at": 1}, retries=1)).json()["id"]
    run_jobs(fake_redis)

    events = [
        (r.getMessage(), r.__dict__.get("job_id")) for r in caplog.records if r.name.startswith(("app.", "workers."))
    ]
    assert ("job submitted", ok) in events and ("job submitted", bad) in events
    submitted = next(r for r in caplog.records if r.getMessage() == "job submitted" and r.__dict__["job_id"] == ok)
    assert (submitted.__dict__["type"], submitted.__dict__["queue"]) == ("demo.steps", "high")

    def worker_events(job_id: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "workers.jobs" and r.__dict__["job_id"] == job_id]

    assert [(r.getMessage(), r.__dict__["attempt"]) for r in worker_events(ok)] == [
        ("job started", 1),
        ("job finished", 1),
    ]
    finished = worker_events(ok)[1]
    assert finished.__dict__["duration_s"] >= 2 * MARK_DELAY and finished.__dict__["type"] == "demo.steps"

    failed = [r for r in worker_events(bad) if r.getMessage() == "job failed"]
    assert [r.__dict__["status"] for r in failed] == ["scheduled"]  # first attempt failed, a retry is scheduled
    assert failed[0].__dict__["attempt"] == 1 and failed[0].__dict__["duration_s"] is not None
    assert "DemoFailure: failing at step 1" in failed[0].__dict__["error"]

    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records]
    assert all(json.loads(line) for line in lines)
    assert not any(str(MARK_DELAY) in line for line in lines), [line for line in lines if str(MARK_DELAY) in line]
    assert any(str(MARK_DELAY) in str(r.__dict__.get("kwargs")) for r in caplog.records), (
        "RQ attaches job kwargs to its failure record; the formatter must be what keeps them out"
    )


class CountingStdout(io.StringIO):
    """A stdout that counts the writes reaching it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _handler(monkeypatch: pytest.MonkeyPatch) -> tuple[StdoutHandler, CountingStdout]:
    out = CountingStdout()
    monkeypatch.setattr(sys, "stdout", out)
    handler = StdoutHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler, out


def test_lines_logged_in_one_loop_turn_are_written_together_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    handler, out = _handler(monkeypatch)

    async def one_turn() -> tuple[str, str]:
        for n in range(3):
            handler.handle(record(f"line {n}"))
        during = out.getvalue()
        await asyncio.sleep(0)  # the turn ends
        return during, out.getvalue()

    during, after = asyncio.run(one_turn())

    assert during == ""
    assert after == "line 0\nline 1\nline 2\n"
    assert out.writes == 1


def test_other_lines_on_a_loop_are_written_at_once_after_the_batched_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shutdown lines reach stdout even if the process dies in the same turn (by its own SIGTERM)."""
    handler, out = _handler(monkeypatch)

    async def one_turn() -> str:
        handler.handle(record("job finished"))
        lifecycle = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "Finished server process", None, None)
        handler.handle(lifecycle)
        handler.handle(record("job failed", level=logging.WARNING))
        return out.getvalue()

    assert asyncio.run(one_turn()) == "job finished\nFinished server process\njob failed\n"


def test_lines_logged_outside_an_event_loop_are_written_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    handler, out = _handler(monkeypatch)

    handler.handle(record("first"))
    assert out.getvalue() == "first\n"
    handler.handle(record("second"))
    assert (out.getvalue(), out.writes) == ("first\nsecond\n", 2)


def test_flush_writes_what_a_loop_left_pending(monkeypatch: pytest.MonkeyPatch) -> None:
    """A line logged in the loop's last turn (shutdown) is written by `flush()`, which exit calls."""
    handler, out = _handler(monkeypatch)
    loop = asyncio.new_event_loop()

    def log_and_stop() -> None:
        handler.handle(record("last words"))
        loop.stop()  # this turn is the last: the write it scheduled never runs

    loop.call_soon(log_and_stop)
    loop.run_forever()
    loop.close()
    assert out.getvalue() == ""

    handler.flush()
    assert out.getvalue() == "last words\n"
