"""Schedules for both clients: `create_schedule`, `schedules`, `get_schedule`, `update_schedule`,
`pause_schedule`, `resume_schedule`, `delete_schedule` and `schedule_runs` (the runs, newest first)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from jobs_client._exceptions import TransportError, error_for
from jobs_client._models import Job, parse_time


@dataclass(frozen=True)
class Schedule:
    id: str
    type: str
    cron: str | None
    every: int | None
    timezone: str
    enabled: bool
    overlap: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_job_id: str | None
    runs: int
    skipped: int
    owner: str | None
    args: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Schedule:
        return cls(
            id=str(data["id"]),
            type=str(data.get("type")),
            cron=data.get("cron"),
            every=data.get("every"),
            timezone=str(data.get("timezone") or "UTC"),
            enabled=bool(data.get("enabled")),
            overlap=bool(data.get("overlap")),
            next_run_at=parse_time(data.get("next_run_at")),
            last_run_at=parse_time(data.get("last_run_at")),
            last_job_id=data.get("last_job_id"),
            runs=int(data.get("runs") or 0),
            skipped=int(data.get("skipped") or 0),
            owner=data.get("owner"),
            args=dict(data.get("args") or {}),
            raw=data,
        )


def schedule_path(schedule_id: str) -> str:
    return f"/schedules/{quote(schedule_id, safe='')}"


def schedule_body(type: str | None, args: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    body = {name: value for name, value in fields.items()}
    if type is not None:
        body["type"] = type
    if args is not None:
        body["args"] = dict(args)
    return body


class _Requests(Protocol):
    _http: httpx.Client

    def _request(self, method: str, path: str, **kwargs: Any) -> Any: ...


class _AsyncRequests(Protocol):
    _http: httpx.AsyncClient

    def _request(self, method: str, path: str, **kwargs: Any) -> Awaitable[Any]: ...


def _no_content(response: httpx.Response) -> None:
    """A 204 answer (no body to decode), or the typed exception."""
    if not response.is_success:
        raise error_for(response)


class SchedulesMixin:
    """The blocking client's schedule methods (`fields`: cron, every, timezone, enabled, overlap, queue,
    timeout, retries, description, callback_url)."""

    def create_schedule(self: _Requests, type: str, args: Mapping[str, Any] | None = None, **fields: Any) -> Schedule:
        return Schedule.from_json(self._request("POST", "/schedules", json=schedule_body(type, args, fields)))

    def schedules(self: _Requests, *, limit: int | None = None) -> Iterator[Schedule]:
        """Every schedule the key sees, oldest first, page after page."""
        cursor: str | None = None
        while True:
            params = {name: value for name, value in (("limit", limit), ("cursor", cursor)) if value is not None}
            data = self._request("GET", "/schedules", params=params)
            yield from (Schedule.from_json(item) for item in data["schedules"])
            cursor = data.get("next_cursor")
            if not cursor:
                return

    def get_schedule(self: _Requests, id: str) -> Schedule:
        return Schedule.from_json(self._request("GET", schedule_path(id)))

    def update_schedule(self: _Requests, id: str, **fields: Any) -> Schedule:
        """Change any fields (None clears `cron`/`every`, to switch from one to the other)."""
        return Schedule.from_json(self._request("PATCH", schedule_path(id), json=fields))

    def pause_schedule(self: _Requests, id: str) -> Schedule:
        return Schedule.from_json(self._request("PATCH", schedule_path(id), json={"enabled": False}))

    def resume_schedule(self: _Requests, id: str) -> Schedule:
        return Schedule.from_json(self._request("PATCH", schedule_path(id), json={"enabled": True}))

    def delete_schedule(self: _Requests, id: str) -> None:
        try:
            response = self._http.request("DELETE", schedule_path(id))
        except httpx.TransportError as exc:
            raise TransportError(f"DELETE {schedule_path(id)}: {exc}") from exc
        _no_content(response)

    def schedule_runs(self: _Requests, id: str, *, limit: int = 50) -> list[Job]:
        """The schedule's newest runs, newest first."""
        data = self._request("GET", "/jobs", params={"schedule": id, "limit": limit})
        return [Job.from_json(item) for item in data["jobs"]]


class AsyncSchedulesMixin:
    """The asyncio client's schedule methods (as `SchedulesMixin`)."""

    async def create_schedule(
        self: _AsyncRequests, type: str, args: Mapping[str, Any] | None = None, **fields: Any
    ) -> Schedule:
        return Schedule.from_json(await self._request("POST", "/schedules", json=schedule_body(type, args, fields)))

    async def schedules(self: _AsyncRequests, *, limit: int | None = None) -> AsyncIterator[Schedule]:
        cursor: str | None = None
        while True:
            params = {name: value for name, value in (("limit", limit), ("cursor", cursor)) if value is not None}
            data = await self._request("GET", "/schedules", params=params)
            for item in data["schedules"]:
                yield Schedule.from_json(item)
            cursor = data.get("next_cursor")
            if not cursor:
                return

    async def get_schedule(self: _AsyncRequests, id: str) -> Schedule:
        return Schedule.from_json(await self._request("GET", schedule_path(id)))

    async def update_schedule(self: _AsyncRequests, id: str, **fields: Any) -> Schedule:
        return Schedule.from_json(await self._request("PATCH", schedule_path(id), json=fields))

    async def pause_schedule(self: _AsyncRequests, id: str) -> Schedule:
        return Schedule.from_json(await self._request("PATCH", schedule_path(id), json={"enabled": False}))

    async def resume_schedule(self: _AsyncRequests, id: str) -> Schedule:
        return Schedule.from_json(await self._request("PATCH", schedule_path(id), json={"enabled": True}))

    async def delete_schedule(self: _AsyncRequests, id: str) -> None:
        try:
            response = await self._http.request("DELETE", schedule_path(id))
        except httpx.TransportError as exc:
            raise TransportError(f"DELETE {schedule_path(id)}: {exc}") from exc
        _no_content(response)

    async def schedule_runs(self: _AsyncRequests, id: str, *, limit: int = 50) -> list[Job]:
        data = await self._request("GET", "/jobs", params={"schedule": id, "limit": limit})
        return [Job.from_json(item) for item in data["jobs"]]
