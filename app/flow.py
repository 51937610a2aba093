"""Flow control as the web sees it: the limits in force (checked at start-up), `/stats`' `limits`, and why a
queued job is held back (a job view's `waiting`)."""

from __future__ import annotations

from typing import Any

from rq.job import Job, JobStatus
from starlette.requests import Request

from core.flow.limits import Limits, limits_from
from core.flow.state import read_state_async, waiting_reason_async
from core.meta import OWNER, TYPE
from core.rqadapter.jobdata import readable_meta
from core.settings import Settings
from jobs.catalog import registry


def app_limits(settings: Settings) -> Limits:
    """The limits in force; raises `FlowSettingError` (naming the setting and the entry) for a bad setting."""
    return limits_from(settings, registry.every())


def _limits(request: Request) -> Limits:
    limits: Limits = request.app.state.flow_limits
    return limits


async def limits_view(request: Request) -> dict[str, dict[str, int]]:
    """`/stats`' `limits`: name -> running, limit, waiting."""
    state = await read_state_async(request.app.state.store.aio, _limits(request))
    return {name: limit.as_json() for name, limit in state.limits.items()}


async def waiting_of(request: Request, job: Job) -> str | None:
    """Why `job` (queued) cannot start now, or None."""
    if job.get_status(refresh=False) != JobStatus.QUEUED:
        return None
    meta: dict[str, Any] = readable_meta(job)
    job_type, owner = meta.get(TYPE), meta.get(OWNER)
    if not isinstance(job_type, str):
        return None
    return await waiting_reason_async(request.app.state.store.aio, _limits(request), job.id, job_type, str(owner or ""))
