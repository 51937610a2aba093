"""`workers.Worker` is the class the settings ask for; the two worker classes share no mode flag."""

from __future__ import annotations

import pytest

import workers
from core.settings import get_settings
from workers.backoff import Backoff
from workers.concurrent import ConcurrentWorker
from workers.worker import ServiceWorker


@pytest.mark.parametrize(("concurrency", "expected"), [("1", ServiceWorker), ("2", ConcurrentWorker)])
def test_the_procfile_worker_is_the_forking_one_at_concurrency_1_else_the_concurrent_one(
    monkeypatch: pytest.MonkeyPatch, concurrency: str, expected: type
) -> None:
    monkeypatch.setenv("WORKER_CONCURRENCY", concurrency)
    get_settings.cache_clear()
    try:
        assert workers.Worker is expected
    finally:
        get_settings.cache_clear()


def test_the_two_worker_classes_are_distinct_and_neither_is_the_other() -> None:
    assert not issubclass(ConcurrentWorker, ServiceWorker) and not issubclass(ServiceWorker, ConcurrentWorker)
    assert ConcurrentWorker.work is not ServiceWorker.work


def test_an_unknown_attribute_of_the_package_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        workers.NoSuchWorker  # noqa: B018


def test_backoff_doubles_up_to_its_cap_and_starts_over_on_reset() -> None:
    backoff = Backoff(0.25, 1.5)
    assert [backoff.next() for _ in range(5)] == [0.25, 0.5, 1.0, 1.5, 1.5]
    backoff.reset()
    assert backoff.next() == 0.25
