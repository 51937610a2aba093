"""`JobsClient`: the blocking client."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from jobs_client._core import (
    DEFAULT_TIMEOUT,
    EVENT_STREAM,
    RESOLVE_SCAN,
    OutputCallback,
    PrefixMatch,
    ProgressCallback,
    SSEDecoder,
    Waiter,
    checked,
    checked_text,
    client_headers,
    job_path,
    list_params,
    retry_after_header,
    stream_unavailable,
    submit_request,
    submitted,
)
from jobs_client._exceptions import NotFound, TransportError, error_for
from jobs_client._models import Job, JobType, Page
from jobs_client._schedules import SchedulesMixin
from jobs_client.batches import Batches

JobTypes = list[JobType]


class JobsClient(SchedulesMixin):
    """Talks to the jobs service over HTTP. `transport=` swaps the network (tests, proxies)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url, headers=client_headers(api_key, headers), timeout=timeout, transport=transport
        )

    def __enter__(self) -> JobsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def batches(self) -> Batches:
        """The `/batches` resource: create, get, list, cancel, wait (`jobs_client.batches`)."""
        return Batches(self)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise TransportError(f"{method} {self.base_url}{path}: {exc}") from exc

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        return checked(self._send(method, path, **kwargs))

    def submit(self, type: str, args: Mapping[str, Any] | None = None, **options: Any) -> Job:
        """Enqueue a job: `options` are the API's fields (queue, timeout, retries, description, delay,
        run_at, depends_on, callback_url, cache_ttl) plus `idempotency_key` and `refresh`.

        With `cache_ttl` (or a job type that declares one) the service may answer with an identical job it
        already has (waiting, running, or finished less than `cache_ttl` seconds ago): then `job.reused` is
        True. `refresh=True` asks for a new job all the same (which later identical submissions reuse)."""
        body, headers = submit_request(type, args, options)
        return submitted(self._send("POST", "/jobs", json=body, headers=headers))

    def get(self, id: str) -> Job:
        return Job.from_json(self._request("GET", job_path(id)))

    def output(self, id: str) -> str:
        """The text the job streamed so far (all of it once the job ended): `GET /jobs/{id}/output`.

        When the service kept only the newest `OUTPUT_MAX_BYTES`, the first line says what was dropped."""
        return checked_text(self._send("GET", f"{job_path(id)}/output", headers={"Accept": "text/plain"}))

    def resolve(self, id_or_prefix: str) -> str:
        """The full id of the one job whose id is, or starts with, `id_or_prefix`.

        A full id is checked with `GET /jobs/{id}`; a prefix is looked up among the newest
        `RESOLVE_SCAN` jobs listed. `UnknownJobId` when none matches, `AmbiguousJobId` (with
        `.candidates`) when several do."""
        try:
            return (self.get(id_or_prefix)).id
        except NotFound:
            pass
        match = PrefixMatch(id_or_prefix)
        for page in self.list(limit=200):
            if match.feed([job.id for job in page]) or match.scanned >= RESOLVE_SCAN:
                break
        return match.result()

    def cancel(self, id: str) -> Job:
        """Cancel a waiting job or stop a running one; `Conflict` if it already ended."""
        return Job.from_json(self._request("DELETE", job_path(id)))

    def types(self) -> JobTypes:
        return [JobType.from_json(item) for item in self._request("GET", "/job-types")]

    def list(
        self,
        *,
        status: str | None = None,
        queue: str | None = None,
        type: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Iterator[Page]:
        """Pages of `GET /jobs`, newest first, following `next_cursor` until the last page."""
        params = list_params(status, queue, type, limit)
        while True:
            if cursor:
                params["cursor"] = cursor
            data = self._request("GET", "/jobs", params=params)
            page = Page([Job.from_json(item) for item in data["jobs"]], data.get("next_cursor"))
            yield page
            cursor = page.next_cursor
            if not cursor:
                return

    def wait(
        self,
        id: str,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        *,
        on_output: OutputCallback | None = None,
        stream: bool = True,
        poll_interval: float = 0.25,
        max_poll_interval: float = 2.0,
    ) -> Job:
        """Block until the job ends and return it; `on_progress(event)` sees each report once, in order,
        and `on_output(chunk)` each chunk of the text the job streams (`chunk.text`), once, in order.

        Follows `GET /jobs/{id}/events` (SSE) when the server offers it, else polls with backoff,
        honoring `Retry-After` (polling sees progress, not streamed output: read it with `output()`).
        Raises `WaitTimeout` after `timeout` seconds."""
        waiter = Waiter(id, timeout, on_progress, poll_interval, max_poll_interval, on_output)
        if stream:
            job = self._follow_stream(waiter)
            if job is not None:
                return job
        return self._poll(waiter)

    def _follow_stream(self, waiter: Waiter) -> Job | None:
        """The ended job, or None when the server has no event stream (then the caller polls).

        A dropped stream or a refused connection (a web restart, a deploy) is not a missing stream: it
        reconnects with backoff and `Last-Event-ID`, so no report is lost or repeated, until the deadline or
        `Waiter.OUTAGE_TOLERANCE`. 429/503 answers are retried after their `Retry-After`."""
        decoder = SSEDecoder()
        decoder.last_id = waiter.resume_from
        path = f"{job_path(waiter.job_id)}/events"
        while True:
            waiter.check_deadline()
            headers = {"Accept": EVENT_STREAM}
            if decoder.last_id:
                headers["Last-Event-ID"] = decoder.last_id
            retry_after: float | None = None
            try:
                with self._http.stream(
                    "GET", path, headers=headers, timeout=waiter.stream_timeout(self.timeout)
                ) as response:
                    waiter.reached()
                    if stream_unavailable(response):
                        response.read()
                        if response.status_code == 404:
                            self.get(waiter.job_id)  # NotFound when the job itself is unknown
                        return None
                    if not response.is_success:
                        response.read()
                        retry_after = waiter.retry_after(error_for(response))
                    else:
                        for line in response.iter_lines():
                            event = decoder.feed(line)
                            job = event and waiter.saw_event(event)
                            if not job:
                                waiter.check_deadline()
                                continue
                            return job if "result" in job.raw else self.get(job.id)
            except httpx.ReadTimeout:
                continue  # a quiet job; reconnecting re-reads its state
            except httpx.TransportError as exc:
                waiter.unreachable(f"GET {self.base_url}{path}", exc)
            if decoder.retry_ms is not None and retry_after is None:
                retry_after = decoder.retry_ms / 1000
            time.sleep(waiter.next_delay(False, retry_after))

    def _poll(self, waiter: Waiter) -> Job:
        while True:
            retry_after = None
            changed = False
            try:
                response = self._http.get(job_path(waiter.job_id))
                waiter.reached()
                if response.is_success:
                    job, changed = waiter.saw_view(response.json())
                    if job.ended:
                        return job
                    retry_after = retry_after_header(response)
                else:
                    retry_after = waiter.retry_after(error_for(response))
            except httpx.TransportError as exc:
                waiter.unreachable(f"GET {self.base_url}{job_path(waiter.job_id)}", exc)
            time.sleep(waiter.next_delay(changed, retry_after))
