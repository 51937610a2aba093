"""Threads for the concurrent worker's plain (sync) job functions."""

from __future__ import annotations

import ctypes
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class JobThreads:
    """Daemon threads for sync jobs: one more is started whenever none is idle.

    A thread abandoned after a timeout stays busy until its job returns, without holding up
    later jobs; daemon threads never keep a shutting-down worker alive.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._started = 0

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            spawn = self._idle == 0
            if spawn:
                self._started += 1
            else:
                self._idle -= 1
        self._work.put((future, fn))
        if spawn:
            threading.Thread(target=self._serve, name=f"{self._name}-{self._started}", daemon=True).start()
        return future

    def _serve(self) -> None:
        while True:
            future, fn = self._work.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # noqa: B036  (the job's own exception, handed to the loop)
                    future.set_exception(exc)
            with self._lock:
                self._idle += 1


def raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> None:
    """Raise `exc_type` in the thread `thread_id` at its next Python instruction."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))
