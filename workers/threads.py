"""Threads for the concurrent worker's plain (sync) job functions."""

from __future__ import annotations

import asyncio
import ctypes
import queue
import threading
from collections.abc import Callable
from typing import Any

#: What a thread hands back: the future awaiting it, and (True, the value returned) or (False, what was raised).
Handed = tuple["asyncio.Future[Any]", tuple[bool, Any]]


class JobThreads:
    """Daemon threads for sync jobs: one more is started whenever none is idle.

    A thread abandoned after a timeout stays busy until its job returns, without holding up
    later jobs; daemon threads never keep a shutting-down worker alive.

    `submit` returns a future of the caller's event loop. Threads hand their outcomes back in
    one mailbox per loop, which the loop empties in one callback: jobs ending together wake it
    once (a wake is a write to the loop's self-pipe and a turn of the loop), not once each. A
    future the loop cancelled meanwhile (the worker gave up on its job) drops the outcome.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._work: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[[], Any]]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._idle = 0
        self._started = 0
        self._mailboxes: dict[asyncio.AbstractEventLoop, list[Handed]] = {}

    def submit(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run `fn` in a thread; its outcome resolves the returned future (of the running loop)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            spawn = self._idle == 0
            if spawn:
                self._started += 1
            else:
                self._idle -= 1
        self._work.put((loop, future, fn))
        if spawn:
            threading.Thread(target=self._serve, name=f"{self._name}-{self._started}", daemon=True).start()
        return future

    def _serve(self) -> None:
        while True:
            loop, future, fn = self._work.get()
            try:
                outcome: tuple[bool, Any] = (True, fn())
            except BaseException as exc:  # noqa: B036  (the job's own exception, handed to the loop)
                outcome = (False, exc)
            self._hand_back(loop, future, outcome)
            del loop, future, fn, outcome  # hold nothing of a finished job while idle
            with self._lock:
                self._idle += 1

    def _hand_back(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], outcome: tuple[bool, Any]
    ) -> None:
        with self._lock:
            mailbox = self._mailboxes.setdefault(loop, [])
            mailbox.append((future, outcome))
            wake = len(mailbox) == 1
        if not wake:
            return  # the loop's delivery is already scheduled and takes this outcome too
        try:
            loop.call_soon_threadsafe(self._deliver, loop)
        except RuntimeError:  # the loop is closed: nothing awaits these jobs any more
            with self._lock:
                self._mailboxes.pop(loop, None)

    def _deliver(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            handed = self._mailboxes.pop(loop, [])
        for future, (returned, value) in handed:
            if future.done():  # cancelled: the worker gave up on the job, its outcome is discarded
                continue
            if returned:
                future.set_result(value)
            elif isinstance(value, StopIteration):  # which a future refuses to hold
                future.set_exception(RuntimeError(f"the job raised {value!r}"))
            else:
                future.set_exception(value)


def raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> None:
    """Raise `exc_type` in the thread `thread_id` at its next Python instruction."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))
