"""Stopping RQ's scheduler process is bounded: one that ignores SIGTERM is killed after the grace."""

from __future__ import annotations

import multiprocessing
import signal
import time
from typing import Any

import pytest

from workers import scheduling


def _ignore_sigterm_and_wait(ready: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as a child that took SIGTERM with the wrong handler
    ready.set()
    time.sleep(60)


def _stop_on_sigterm(ready: Any) -> None:
    # A fork inherits the test runner's Python-level handlers (pytest-xdist, coverage): put back the
    # default action, as RQ's scheduler installs its own handler that ends it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    ready.set()
    time.sleep(60)


@pytest.mark.parametrize(("target", "killed"), [(_ignore_sigterm_and_wait, True), (_stop_on_sigterm, False)])
def test_a_scheduler_process_is_gone_within_the_grace(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, target: Any, killed: bool
) -> None:
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    process = context.Process(target=target, args=(ready,), daemon=True)
    process.start()
    assert ready.wait(10)
    monkeypatch.setattr(scheduling, "scheduler_process", lambda scheduler: process)

    started = time.monotonic()
    scheduling.stop_scheduler_process(object(), grace=0.5)  # type: ignore[arg-type]

    assert not process.is_alive()
    assert process.exitcode == (-signal.SIGKILL if killed else -signal.SIGTERM)
    assert time.monotonic() - started < 5
    assert ("did not stop within" in caplog.text) is killed


def test_no_scheduler_process_is_nothing_to_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduling, "scheduler_process", lambda scheduler: None)
    scheduling.stop_scheduler_process(object())  # type: ignore[arg-type]
    scheduling.stop_scheduler_process(None)
