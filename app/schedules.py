"""A `/schedules` request body -> a validated schedule definition.

The job fields (`type`, `args`, `queue`, `timeout`, `retries`, `description`, `callback_url`) go
through `parse_submission`, the very validation `POST /jobs` runs, so a schedule accepts exactly
the runs `POST /jobs` would; the timing fields are checked here (cron string, IANA zone, interval).
A PATCH is merged into the stored definition and the result validated as a whole.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from redis import Redis

from app.callback_url import callback_meta
from app.errors import ValidationFailedError
from app.submission import parse_submission, validate_model
from core.schedules.model import JOB_FIELDS, Definition
from core.schedules.store import ScheduleStore
from core.schedules.timing import CronError, TimezoneError, check_cron, zone
from core.settings import Settings
from jobs.catalog import registry
from jobs.registry import Registry
from jobs.schedules import register_all


class ScheduleFields(BaseModel):
    """The timing and switches of a schedule (the job fields are validated as `POST /jobs`)."""

    model_config = ConfigDict(extra="forbid")

    cron: Annotated[StrictStr, Field(min_length=1, max_length=200)] | None = Field(
        None, description="5-field cron string: minute hour day-of-month month day-of-week"
    )
    every: Annotated[StrictInt, Field(ge=1, le=366 * 86400)] | None = Field(
        None, description="Interval in seconds, counted from the schedule's creation"
    )
    timezone: Annotated[StrictStr, Field(min_length=1, max_length=64)] = Field(
        "UTC", description="IANA zone the cron string is read in"
    )
    enabled: StrictBool = Field(True, description="A disabled schedule fires nothing")
    overlap: StrictBool = Field(False, description="False: skip a run while the previous one waits or runs")


def _split(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    job = {name: value for name, value in body.items() if name in JOB_FIELDS}
    rest = {name: value for name, value in body.items() if name not in JOB_FIELDS}
    return job, rest


async def parse_schedule_body(
    body: dict[str, Any], registry: Registry, settings: Settings, owner: str, created_at: float | None = None
) -> Definition:
    """The definition a POST body (or a PATCH merged with the stored fields) describes; 422 naming the field."""
    job_body, rest = _split(body)
    fields: ScheduleFields = validate_model(ScheduleFields, rest)
    submission = parse_submission(job_body, registry, settings)
    await callback_meta(submission.callback_url, settings)  # refused where POST /jobs would refuse it
    if (fields.cron is None) == (fields.every is None):
        loc = "every" if fields.cron is not None else "cron"
        raise ValidationFailedError.field([loc], "give exactly one of cron and every")
    try:
        zone(fields.timezone)
    except TimezoneError as exc:
        raise ValidationFailedError.field(["timezone"], str(exc)) from None
    cron = None
    if fields.cron is not None:
        try:
            cron = check_cron(fields.cron)
        except CronError as exc:
            raise ValidationFailedError(
                f"cron: {exc}", errors=[{"loc": ["cron"], "msg": str(exc), "field": exc.field}]
            ) from None
    return Definition(
        type=submission.spec.name,
        args=submission.args,
        queue=submission.queue,
        timeout=submission.timeout,
        retries=submission.retries,
        description=submission.description,
        callback_url=submission.callback_url,
        cron=cron,
        every=fields.every,
        timezone=fields.timezone,
        enabled=fields.enabled,
        overlap=fields.overlap,
        owner=owner,
        created_at=time.time() if created_at is None else created_at,
    )


def patched_body(current: Definition, patch: dict[str, Any]) -> dict[str, Any]:
    """The stored fields with `patch` applied: what the changed schedule's body would be."""
    body: dict[str, Any] = {
        "type": current.type,
        "args": current.args,
        "queue": current.queue,
        "timeout": current.timeout,
        "retries": current.retries,
        "description": current.description,
        "cron": current.cron,
        "every": current.every,
        "timezone": current.timezone,
        "enabled": current.enabled,
        "overlap": current.overlap,
    }
    if current.callback_url is not None:
        body["callback_url"] = current.callback_url
    if "type" in patch and patch["type"] != current.type and "args" not in patch:
        body["args"] = {}  # another job type: the old arguments do not carry over
    body.update(patch)
    if patch.get("cron") is not None and "every" not in patch:
        body["every"] = None  # switching to cron drops the interval, and the other way round
    if patch.get("every") is not None and "cron" not in patch:
        body["cron"] = None
    return {name: value for name, value in body.items() if value is not None or name in ("cron", "every")}


def declare_schedules(connection: Redis) -> int:
    """Create or update the schedules declared in code (`jobs.schedules`), at start-up."""
    return register_all(ScheduleStore(connection), registry)
