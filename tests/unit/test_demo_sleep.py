"""`demo.sleep`: a plain function in `sync` mode, a coroutine in `async` mode; both report progress."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from pydantic import ValidationError

from jobs.builtin.demo import SleepArgs, sleep
from jobs.catalog import registry


def test_sync_mode_sleeps_and_returns() -> None:
    assert sleep(seconds=0.01, steps=2, mode="sync") == {"slept": 0.01, "mode": "sync"}


def test_async_mode_returns_a_coroutine_to_await() -> None:
    coroutine = sleep(seconds=0.01, steps=2, mode="async")
    assert inspect.iscoroutine(coroutine)
    assert asyncio.run(coroutine) == {"slept": 0.01, "mode": "async"}


def test_registered_with_validated_args() -> None:
    spec = registry.get("demo.sleep")
    assert spec.func_path == "jobs.builtin.demo.sleep" and spec.args_model is SleepArgs
    assert SleepArgs.model_validate({}).model_dump() == {"seconds": 1.0, "steps": 1, "mode": "async"}
    with pytest.raises(ValidationError):
        SleepArgs.model_validate({"mode": "thread"})
    with pytest.raises(ValidationError):
        SleepArgs.model_validate({"seconds": -1})
