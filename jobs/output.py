"""Streamed output: `write_output("tok1 ")` appends text to the running job's output.

    from jobs import report, write_output

What a job writes is readable at `GET /jobs/{id}/output` and arrives as `output` events on its
event stream (`core.output` stores it). Writes in quick succession are merged: a write goes out
at once when nothing went out in the last `FLUSH_INTERVAL` seconds, otherwise it waits in a
buffer that a thread of the job sends at the end of the interval (or sooner, at `FLUSH_BYTES`).
So a job writing a thousand chunks a second costs about 1/`FLUSH_INTERVAL` writes a second, and
a job writing now and then costs one write per chunk, sent at once. The worker runs each job in
an `OutputSession` (`workers.job`), which sends what is left before the job's end is recorded,
whether it returned or raised, and gives the output the job's TTL.

A run whose attempt was superseded (its worker was presumed dead, the job was started again
elsewhere) has its writes refused by the store; its session then drops what it is given.

Each write records the number of the job's newest progress report, read under WATCH of the job's
hash: a report that lands meanwhile makes the write try again, so output and progress events keep
one order (`core.events.interleave`) even when another thread reports.
Outside a worker `write_output` is a no-op, so job functions stay testable as plain functions.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType
from typing import Any

import redis
from rq import get_current_job
from rq.job import Job

from core import keys
from core import output as store
from core.meta import ATTEMPT
from core.settings import get_settings
from jobs.progress import newest_seq

__all__ = ["OutputSession", "write_output"]

logger = logging.getLogger("jobs.output")

#: Seconds a write may wait to be merged with the next ones.
FLUSH_INTERVAL = 0.04
#: Buffered characters that are sent without waiting for the interval.
FLUSH_BYTES = 64 * 1024
#: Tries of a write whose WATCH of the job's hash keeps failing before it gives up.
WATCH_ATTEMPTS = 100

#: Days an output is kept when the job's own TTL is unknown (RQ's default failure TTL is a year).
_DEFAULT_TTL = 365 * 86400

_sessions: dict[str, OutputSession] = {}
_sessions_lock = threading.Lock()


def write_output(text: str) -> None:
    """Append `text` to the running job's output; no-op outside a worker or with empty text."""
    if not text:
        return
    job = get_current_job()
    if job is None:
        return
    session = _sessions.get(job.id)
    if session is None:  # a job run without the worker's session (RQ's own worker): write through
        with OutputSession(job) as session:
            session.write(text)
        return
    session.write(text)


class OutputSession:
    """One attempt of one job: its output buffer, the thread that flushes it late, and its last flush.

    `with OutputSession(job): ...` around the job's call; `write` from any thread of the job."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.cap = get_settings().output_max_bytes
        self.attempt = int(job.meta.get(ATTEMPT, 1) or 1)
        self.wrote = False
        self.superseded = False
        self._pending: list[str] = []
        self._pending_chars = 0
        self._last_flush = 0.0
        self._closed = False
        self._lock = threading.Condition()
        self._flushing = threading.Lock()  # one flush at a time, so chunks land in the order written
        self._thread: threading.Thread | None = None
        self._watched = _Watched(job)

    def __enter__(self) -> OutputSession:
        with _sessions_lock:
            _sessions[self.job.id] = self
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        with _sessions_lock:
            if _sessions.get(self.job.id) is self:
                del _sessions[self.job.id]
        with self._lock:
            self._closed = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join()
        ttl = _ttl(self.job.result_ttl if error is None else self.job.failure_ttl)
        try:
            self.flush(ttl, final=True)
        except redis.RedisError:
            if error is None:
                raise
            logger.warning("job %s: the rest of its output could not be written", self.job.id, exc_info=True)
        finally:
            self._watched.close()

    def write(self, text: str) -> None:
        with self._lock:
            self._pending.append(text)
            self._pending_chars += len(text)
            now = time.monotonic()
            if self._pending_chars < FLUSH_BYTES and now - self._last_flush < FLUSH_INTERVAL and not self._closed:
                self._start_thread()
                self._lock.notify()
                return
        self.flush(self._running_ttl())

    def flush(self, ttl_ms: int, final: bool = False) -> None:
        """Send what is buffered (and, when `final` and anything was written, give the output `ttl_ms`)."""
        with self._flushing:
            with self._lock:
                text = "".join(self._pending)
                self._pending.clear()
                self._pending_chars = 0
                self._last_flush = time.monotonic()
            if self.superseded:
                return
            if text:
                self._append(text, ttl_ms)
                self.wrote = not self.superseded
            elif final and self.wrote:
                self._expire(ttl_ms)

    # -- the flusher thread ------------------------------------------------------------------

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"output:{self.job.id}", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while self._wait_until_due():
            try:
                self.flush(self._running_ttl())
            except redis.RedisError as exc:  # the next write or the session's end tries again
                logger.warning("job %s: writing its output failed (%s)", self.job.id, exc)
                with self._lock:
                    self._lock.wait(1.0)

    def _wait_until_due(self) -> bool:
        """Block until buffered text is due; False once the session ends (its end flushes the rest)."""
        with self._lock:
            while not self._closed:
                if not self._pending:
                    self._lock.wait()
                    continue
                delay = self._last_flush + FLUSH_INTERVAL - time.monotonic()
                if delay <= 0:
                    return True
                self._lock.wait(delay)
            return False

    # -- Redis -------------------------------------------------------------------------------

    def _running_ttl(self) -> int:
        """While the job runs: long enough for its timeout and whichever TTL its end gives it."""
        timeout = self.job.timeout if isinstance(self.job.timeout, int) and self.job.timeout > 0 else 3600
        ends = [_ttl(self.job.result_ttl), _ttl(self.job.failure_ttl)]
        return 0 if 0 in ends else timeout * 1000 + max(ends)

    def _append(self, text: str, ttl_ms: int) -> None:
        job = self.job
        marker = store.ATTEMPT_MARKER.format(attempt=self.attempt).encode()
        encoded = text.encode()
        data = store.newest_bytes(encoded, self.cap)
        cut = len(encoded) - len(data)
        ttl_ms = ttl_ms if not self.wrote or ttl_ms != self._running_ttl() else -1  # set once while it runs
        for _ in range(WATCH_ATTEMPTS):
            after = newest_seq(job.meta)  # read after the WATCH was armed: see `_Watched`
            args = [after, self.attempt, data, self.cap, ttl_ms, marker, keys.EVENTS_CHANNEL, job.id, cut]
            command = ("EVALSHA", store.APPEND_SHA, 3, *store.read_keys(job.id), job.key, *args)
            outcome = self._watched.transaction(command)
            if isinstance(outcome, redis.exceptions.NoScriptError):
                job.connection.script_load(store.APPEND)
            elif isinstance(outcome, Exception):
                raise outcome
            elif outcome == store.SUPERSEDED:
                self.superseded = True
                logger.warning(
                    "job %s: attempt %d was superseded by a newer one; its output is dropped", job.id, self.attempt
                )
                return
            elif outcome is not None:
                return
        raise redis.WatchError(f"job {job.id}: its hash kept changing; output not written")

    def _expire(self, ttl_ms: int) -> None:
        with self.job.connection.pipeline(transaction=False) as pipe:
            for key in store.read_keys(self.job.id):
                if ttl_ms:
                    pipe.pexpire(key, ttl_ms)
                else:
                    pipe.persist(key)
            pipe.execute()


class _Watched:
    """A connection of the job's pool, held while the session writes, that WATCHes the job's hash.

    A write is MULTI, the append, EXEC and WATCH again, in one round trip: the WATCH armed by each
    write guards the next one, so a report that lands between the read of the newest progress number
    and the append aborts the append (EXEC answers nil) and it is tried again."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._connection: Any = None

    def transaction(self, command: tuple[Any, ...]) -> Any:
        """The command's reply; None if the WATCH aborted it; an error reply as an exception object."""
        connection = self._connection or self._open()
        replies = self._send(connection, ("MULTI",), command, ("EXEC",), ("WATCH", self.job.key))
        for reply in (replies[0], replies[1], replies[3]):
            if isinstance(reply, Exception):
                return reply
        executed = replies[2]
        return executed[0] if isinstance(executed, list) else None

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._send(connection, ("UNWATCH",))
            self.job.connection.connection_pool.release(connection)

    def _open(self) -> Any:
        connection = self.job.connection.connection_pool.get_connection()
        self._connection = connection
        self._send(connection, ("WATCH", self.job.key))
        return connection

    def _send(self, connection: Any, *commands: tuple[Any, ...]) -> list[Any]:
        try:
            connection.send_packed_command(connection.pack_commands(commands))
            replies = []
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except redis.ResponseError as error:
                    replies.append(error)
            return replies
        except BaseException:
            self._connection = None
            connection.disconnect()
            self.job.connection.connection_pool.release(connection)
            raise


def _ttl(seconds: Any) -> int:
    """A job's TTL in milliseconds for PEXPIRE; 0 for one kept forever (-1)."""
    if seconds is None:
        return _DEFAULT_TTL * 1000
    return 0 if int(seconds) < 0 else max(1, int(seconds)) * 1000
