"""`/schedules` in the OpenAPI document: its request and response models and its operations.

`app.openapi.OPERATIONS` takes them in beside the jobs' operations.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, ConfigDict, Field, StrictStr, UrlConstraints

from app.operations import BODY_REFUSED, REDIS_DOWN, Operation, Reply
from app.schedules import ScheduleFields
from app.schemas import JobFields


class ScheduleRequest(ScheduleFields, JobFields):
    """Body of `POST /schedules`: what each run submits (as `POST /jobs`) and when runs are due."""

    model_config = ConfigDict(extra="forbid")

    callback_url: Annotated[AnyHttpUrl, UrlConstraints(max_length=2000)] | None = Field(
        None, description="Receives a signed POST when each run ends"
    )


def _without_defaults(schema: dict[str, Any]) -> None:
    """A field left out of a PATCH keeps its value: no default is shown, so none is sent by a form."""
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


class ScheduleChange(ScheduleRequest):
    """Body of `PATCH /schedules/{id}`: any subset of the fields; the result is validated whole."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_without_defaults)

    type: Annotated[StrictStr, Field(min_length=1, max_length=200)] | None = None  # type: ignore[assignment]


class ScheduleView(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    type: str
    args: dict[str, Any]
    queue: str
    description: str
    cron: str | None
    every: int | None
    timezone: str
    enabled: bool
    overlap: bool
    next_run_at: AwareDatetime | None = Field(description="Null while disabled")
    last_run_at: AwareDatetime | None = Field(description="The due time of the newest run")
    last_job_id: str | None
    runs: int = Field(ge=0)
    skipped: int = Field(ge=0, description="Due times that fired no run: overlap, misfires, quota")
    owner: str = Field(description="The API key that created it; `service` for schedules declared in code")
    created_at: AwareDatetime


class SchedulePage(BaseModel):
    schedules: list[ScheduleView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class ScheduleListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=400)


SCHEDULE_ID = {"schedule_id": "The schedule's id, as returned by `POST /schedules`"}
INVALID = "Invalid job fields (as POST /jobs), cron string (the field of the expression named), time zone or interval"

SCHEDULE_OPERATIONS = [
    Operation(
        "POST", "/schedules", "createSchedule", "Create a periodic schedule (cron in a time zone, or every n seconds)",
        body=ScheduleRequest,
        examples={
            "every ten minutes": {"type": "demo.noop", "every": 600},
            "weekday mornings in Paris": {
                "type": "demo.steps", "args": {"steps": 3}, "cron": "30 7 * * mon-fri", "timezone": "Europe/Paris",
            },
        },
        replies={201: Reply("Created", ScheduleView, headers={"Location": "`/schedules/{id}`"})},
        problems={400: "Malformed JSON", 409: "MAX_SCHEDULES reached for this key", 422: INVALID, **BODY_REFUSED,
                  **REDIS_DOWN},
        tag="schedules",
    ),
    Operation(
        "GET", "/schedules", "listSchedules", "List schedules, oldest first (a key sees its own and the service's)",
        query=ScheduleListQuery, replies={200: Reply("One page of schedules", SchedulePage)},
        problems={422: "limit or cursor invalid", **REDIS_DOWN}, tag="schedules",
    ),
    Operation(
        "GET", "/schedules/{schedule_id}", "getSchedule", "One schedule, with its next due time and counters",
        path_params=SCHEDULE_ID, replies={200: Reply("The schedule", ScheduleView)},
        problems={404: "No such schedule (or another key's)", **REDIS_DOWN}, tag="schedules",
    ),
    Operation(
        "PATCH", "/schedules/{schedule_id}", "updateSchedule", "Change any fields; `enabled: false` pauses it",
        path_params=SCHEDULE_ID, body=ScheduleChange, replies={200: Reply("The changed schedule", ScheduleView)},
        examples={"pause": {"enabled": False}, "resume": {"enabled": True}, "let runs overlap": {"overlap": True}},
        problems={400: "Malformed JSON", 404: "No such schedule (or another key's)",
                  409: "A service schedule and not an admin key", 422: INVALID, **BODY_REFUSED, **REDIS_DOWN},
        tag="schedules",
    ),
    Operation(
        "DELETE", "/schedules/{schedule_id}", "deleteSchedule", "Delete a schedule (its runs are kept)",
        path_params=SCHEDULE_ID, replies={204: Reply("Deleted")},
        problems={404: "No such schedule (or another key's)", 409: "A service schedule and not an admin key",
                  **REDIS_DOWN},
        tag="schedules",
    ),
]  # fmt: skip
