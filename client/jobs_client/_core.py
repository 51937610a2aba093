"""What the sync and asyncio clients share: request shapes, answer checks, the SSE decoder and
the wait state machine (dedup of progress reports, poll backoff, deadline). No I/O here. About 330
lines of small pieces, each used by both clients: one module keeps the two from drifting apart."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from jobs_client._exceptions import (
    AmbiguousJobId,
    APIError,
    RateLimited,
    ServiceUnavailable,
    TransportError,
    UnknownJobId,
    WaitTimeout,
    error_for,
    parse_retry_after,
)
from jobs_client._models import Job, OutputChunk, ProgressEvent, parse_time

__version__ = "0.1.0"
DEFAULT_TIMEOUT = 10.0
EVENT_STREAM = "text/event-stream"

ProgressCallback = Callable[[ProgressEvent], Any]
OutputCallback = Callable[[OutputChunk], Any]
#: How many of the newest jobs `resolve()` looks through for ids starting with a prefix.
RESOLVE_SCAN = 1000
#: Most candidates an ambiguous prefix names.
RESOLVE_CANDIDATES = 10
#: The name the service gives its result reuse in `Cache-Status` (RFC 9211).
CACHE_NAME = "jobsvc"


def client_headers(api_key: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    headers = {"User-Agent": f"jobs-client/{__version__}", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    headers.update(extra or {})
    return headers


def submit_request(
    job_type: str, args: Mapping[str, Any] | None, options: dict[str, Any]
) -> tuple[Any, dict[str, str]]:
    """Body and headers of `POST /jobs`; `idempotency_key=` becomes the `Idempotency-Key` header and
    `refresh=True` `Cache-Control: no-cache` (a new job even where an identical one could be reused).

    Python values become the API's: a `datetime` (with a UTC offset) ISO 8601, a `timedelta` seconds
    (whole ones for `cache_ttl`), `depends_on` one id or `Job` or a list of them -> a list of ids."""
    headers: dict[str, str] = {}
    key = options.pop("idempotency_key", None)
    if key is not None:
        headers["Idempotency-Key"] = str(key)
    if options.pop("refresh", False):
        headers["Cache-Control"] = "no-cache"
    body: dict[str, Any] = {"type": job_type, "args": dict(args or {})}
    for name, value in options.items():
        if value is None:
            continue
        if name == "cache_ttl" and isinstance(value, timedelta):
            value = int(value.total_seconds())
        elif name == "depends_on":
            parents = [value] if isinstance(value, str | Job) else list(value)
            value = [parent.id if isinstance(parent, Job) else parent for parent in parents]
        elif isinstance(value, datetime):
            value = value.isoformat().replace("+00:00", "Z")
        elif isinstance(value, timedelta):
            value = value.total_seconds()
        body[name] = value
    return body, headers


def reused(cache_status: str | None) -> bool:
    """True when a `Cache-Status` header (RFC 9211) says the service's cache answered: `jobsvc; hit`."""
    for member in (cache_status or "").split(","):
        name, *params = (part.strip() for part in member.split(";"))
        if name == CACHE_NAME:
            return any(param.partition("=")[0] == "hit" and param.partition("=")[2] in ("", "?1") for param in params)
    return False


def submitted(response: httpx.Response) -> Job:
    """The job a `POST /jobs` answer names, `reused` set from its `Cache-Status`; the typed exception otherwise."""
    job = Job.from_json(checked(response))
    return dataclasses.replace(job, reused=reused(response.headers.get("cache-status")))


def list_params(status: str | None, queue: str | None, job_type: str | None, limit: int | None) -> dict[str, Any]:
    params = {"status": status, "queue": queue, "type": job_type, "limit": limit}
    return {name: value for name, value in params.items() if value is not None}


def checked(response: httpx.Response) -> Any:
    """The JSON body of a successful answer; the typed exception otherwise."""
    if response.is_success:
        return response.json()
    raise error_for(response)


def checked_text(response: httpx.Response) -> str:
    """The text body of a successful answer; the typed exception otherwise."""
    if response.is_success:
        return response.text
    raise error_for(response)


def retry_after_header(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("retry-after"))


def job_path(job_id: str) -> str:
    if not job_id or "/" in job_id:
        raise ValueError(f"not a job id: {job_id!r}")
    return f"/jobs/{job_id}"


class PrefixMatch:
    """The ids starting with `prefix` among those seen so far (`resolve()` feeds it page by page)."""

    def __init__(self, prefix: str) -> None:
        job_path(prefix)  # ValueError for what can never be an id
        self.prefix = prefix
        self.found: list[str] = []
        self.scanned = 0

    def feed(self, ids: list[str]) -> bool:
        """True once enough is known: more candidates than are shown."""
        self.scanned += len(ids)
        self.found.extend(job_id for job_id in ids if job_id.startswith(self.prefix) and job_id not in self.found)
        return len(self.found) > RESOLVE_CANDIDATES

    def result(self) -> str:
        if len(self.found) == 1:
            return self.found[0]
        if not self.found:
            raise UnknownJobId(self.prefix, self.scanned)
        raise AmbiguousJobId(self.prefix, self.found[:RESOLVE_CANDIDATES])


# -- Server-Sent Events (https://html.spec.whatwg.org/multipage/server-sent-events.html) --


@dataclass(frozen=True)
class SSEEvent:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class SSEDecoder:
    """Feed it the stream's lines one by one; it returns an event at each blank line that ends one."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self.last_id: str | None = None
        self.retry_ms: int | None = None

    def feed(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent(self._event or "message", "\n".join(self._data), self.last_id)
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


def stream_unavailable(response: httpx.Response) -> bool:
    """True when the server offers no event stream here (no such route, or not SSE): poll instead."""
    if response.status_code in (404, 405, 406, 501):
        return True
    content_type = response.headers.get("content-type", "")
    return response.is_success and not content_type.startswith(EVENT_STREAM)


# -- waiting for a job --


class Waiter:
    """The decisions of `wait()`: which progress reports are new, how long to sleep, when to give up."""

    #: Longest a stream may stay silent before the client reconnects (and so re-reads the state).
    STREAM_IDLE = 30.0
    #: Longest the service may stay unreachable (refused connections, dropped streams: a web restart or
    #: deploy) before `wait()` gives up with `TransportError`; the caller's `timeout` still applies.
    OUTAGE_TOLERANCE = 60.0

    def __init__(
        self,
        job_id: str,
        timeout: float | None,
        on_progress: ProgressCallback | None,
        poll_interval: float,
        max_poll_interval: float,
        on_output: OutputCallback | None = None,
    ) -> None:
        self.job_id = job_id
        self.on_output = on_output
        self._output_seq = 0
        #: `Last-Event-ID` of the first connection: "0" replays the job's events from its start, so whoever
        #: follows the output sees all of it that is kept, also when joining a job that already wrote some.
        self.resume_from = "0" if on_output is not None else None
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.on_progress = on_progress
        self.min_interval = poll_interval
        self.max_interval = max(poll_interval, max_poll_interval)
        self.interval = poll_interval
        self.last: Job | None = None
        self._seen: set[tuple[Any, Any, float]] = set()
        self._last_progress = 0.0
        self._unreachable_since: float | None = None

    # deadline
    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def check_deadline(self) -> None:
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise WaitTimeout(self.job_id, self.timeout or 0, self.last)

    def stream_timeout(self, base: float) -> httpx.Timeout:
        remaining = self.remaining()
        read = self.STREAM_IDLE if remaining is None else max(0.05, min(self.STREAM_IDLE, remaining))
        return httpx.Timeout(base, read=read)

    # reachability
    def reached(self) -> None:
        """The service answered: an outage, if any, is over."""
        self._unreachable_since = None

    def unreachable(self, what: str, exc: Exception) -> None:
        """A transport error: fine for a while (the caller retries), `TransportError` after OUTAGE_TOLERANCE."""
        now = time.monotonic()
        if self._unreachable_since is None:
            self._unreachable_since = now
        elif now - self._unreachable_since >= self.OUTAGE_TOLERANCE:
            raise TransportError(f"{what}: unreachable for {now - self._unreachable_since:.0f} s: {exc}") from exc

    # progress
    def _emit(self, progress: float, message: str | None, when: Any) -> bool:
        key = (when, message, progress)
        if message is not None and key in self._seen:
            return False
        if message is None and progress == self._last_progress:
            return False
        if message is not None:
            self._seen.add(key)
        self._last_progress = progress
        if self.on_progress is not None:
            self.on_progress(ProgressEvent(progress, message, parse_time(when)))
        return True

    def saw_progress(self, data: Mapping[str, Any]) -> bool:
        """A progress report (SSE `progress` event); True if it was new."""
        message = data.get("message")
        return self._emit(float(data.get("progress") or 0), message, data.get("time") if message else None)

    def saw_view(self, view: dict[str, Any]) -> tuple[Job, bool]:
        """A job view (poll answer or SSE `status` event): report unseen messages; True if anything changed."""
        job = Job.from_json(view)
        changed = self.last is None or job.status != self.last.status
        for entry in view.get("messages") or []:
            changed |= self._emit(float(entry.get("progress") or 0), entry.get("message"), entry.get("time"))
        if not job.ended:
            changed |= self._emit(job.progress, None, None)
        self.last = job
        return job, changed

    def saw_output(self, data: Mapping[str, Any]) -> bool:
        """A chunk of streamed output (SSE `output` event); True if it was new (chunks come once, in order)."""
        chunk = OutputChunk.from_json(dict(data))
        if chunk.seq and chunk.seq <= self._output_seq:
            return False
        self._output_seq = chunk.seq or self._output_seq
        if self.on_output is not None:
            self.on_output(chunk)
        return True

    def saw_event(self, event: SSEEvent) -> Job | None:
        """An SSE event; the job once its final status arrived."""
        if event.event == "progress":
            self.saw_progress(event.json())
        elif event.event == "output":
            self.saw_output(event.json())
        elif event.event == "status":
            job, _ = self.saw_view(event.json())
            if job.ended:
                return job
        return None

    # sleeping
    def next_delay(self, changed: bool, retry_after: float | None = None) -> float:
        """Seconds until the next poll: back off while nothing changes, honor Retry-After, stop at the deadline."""
        self.check_deadline()
        self.interval = self.min_interval if changed else min(self.max_interval, self.interval * 1.5)
        delay = self.interval if retry_after is None else max(retry_after, self.min_interval)
        remaining = self.remaining()
        return delay if remaining is None else max(0.0, min(delay, remaining))

    def retry_after(self, exc: APIError) -> float | None:
        """For 429/503 answers while waiting: how long to wait before asking again (else re-raise)."""
        if isinstance(exc, RateLimited | ServiceUnavailable):
            return exc.retry_after if exc.retry_after is not None else self.interval * 2
        raise exc
