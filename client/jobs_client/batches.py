"""Batches: many jobs submitted in one request, with one status, one progress and one end.

`client.batches` (a `Batches`) creates, reads, lists, cancels and watches them; `Batch` is the
batch view the API returns.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from jobs_client._core import EVENT_STREAM, SSEDecoder
from jobs_client._exceptions import WaitTimeout
from jobs_client._models import Job, parse_time

if TYPE_CHECKING:
    from jobs_client._client import JobsClient

#: Called with `{"progress", "counts"}` for each progress event of a watched batch.
BatchProgressCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Batch:
    id: str
    status: str
    total: int
    counts: dict[str, int]
    progress: float
    description: str | None = None
    created_at: datetime | None = None
    ended_at: datetime | None = None
    on_complete_job_id: str | None = None
    callback: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Batch:
        return cls(
            id=str(data["id"]),
            status=str(data.get("status")),
            total=int(data.get("total") or 0),
            counts={str(k): int(v) for k, v in (data.get("counts") or {}).items()},
            progress=float(data.get("progress") or 0),
            description=data.get("description"),
            created_at=parse_time(data.get("created_at")),
            ended_at=parse_time(data.get("ended_at")),
            on_complete_job_id=data.get("on_complete_job_id"),
            callback=data.get("callback"),
            raw=data,
        )

    @property
    def ended(self) -> bool:
        """Every member has ended (a canceled batch ends once its running members have stopped)."""
        return self.ended_at is not None


def batch_path(batch_id: str) -> str:
    return f"/batches/{quote(batch_id, safe='')}"


class Batches:
    """The `/batches` resource, through a `JobsClient`'s connection."""

    def __init__(self, client: JobsClient) -> None:
        self._client = client

    def create(
        self,
        jobs: Sequence[Mapping[str, Any]],
        *,
        description: str | None = None,
        callback_url: str | None = None,
        on_complete: Mapping[str, Any] | None = None,
    ) -> Batch:
        """Submit `jobs` (`POST /jobs` bodies) as one batch; `ValidationError` names an invalid member."""
        body: dict[str, Any] = {"jobs": list(jobs)}
        for name, value in (("description", description), ("callback_url", callback_url)):
            if value is not None:
                body[name] = value
        if on_complete is not None:
            body["on_complete"] = dict(on_complete)
        return Batch.from_json(self._client._request("POST", "/batches", json=body))

    def get(self, id: str) -> Batch:
        return Batch.from_json(self._client._request("GET", batch_path(id)))

    def cancel(self, id: str) -> Batch:
        """Cancel the waiting members and stop the running ones; `Conflict` if the batch already ended."""
        return Batch.from_json(self._client._request("DELETE", batch_path(id)))

    def list(self, *, limit: int | None = None) -> Iterator[list[Batch]]:
        """Pages of `GET /batches`, newest first."""
        params: dict[str, Any] = {"limit": limit} if limit else {}
        while True:
            data = self._client._request("GET", "/batches", params=params)
            yield [Batch.from_json(item) for item in data["batches"]]
            if not data.get("next_cursor"):
                return
            params["cursor"] = data["next_cursor"]

    def members(self, id: str, *, limit: int | None = None) -> Iterator[builtins.list[Job]]:
        """Pages of the batch's members."""
        params: dict[str, Any] = {"limit": limit} if limit else {}
        while True:
            data = self._client._request("GET", f"{batch_path(id)}/jobs", params=params)
            yield [Job.from_json(item) for item in data["jobs"]]
            if not data.get("next_cursor"):
                return
            params["cursor"] = data["next_cursor"]

    def wait(self, id: str, timeout: float | None = None, on_progress: BatchProgressCallback | None = None) -> Batch:
        """Follow the batch's event stream until it ends; `WaitTimeout` after `timeout` seconds. A dropped
        stream is opened again (it starts with the current state)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise WaitTimeout(id, timeout or 0, None)
            try:
                ended = self._follow(id, left, on_progress)
            except httpx.TransportError:
                ended = None
                time.sleep(0.5)
            if ended is not None:
                return ended

    def _follow(self, id: str, left: float | None, on_progress: BatchProgressCallback | None) -> Batch | None:
        decoder = SSEDecoder()
        read_timeout = httpx.Timeout(self._client.timeout, read=min(left, 30.0) if left is not None else 30.0)
        path = f"{batch_path(id)}/events"
        with self._client._http.stream("GET", path, headers={"Accept": EVENT_STREAM}, timeout=read_timeout) as reply:
            if not reply.is_success:
                reply.read()
                return self.get(id)  # raises the API's error (404 ...)
            for line in reply.iter_lines():
                event = decoder.feed(line)
                if event is None:
                    continue
                data = event.json()
                if event.event == "progress" and on_progress is not None:
                    on_progress(data)
                elif event.event == "status" and data.get("ended_at"):
                    return Batch.from_json(data)
        return None
