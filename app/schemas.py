"""Request models: the shapes clients send, validated with pydantic."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, UrlConstraints

from core.queues import QueueName


class JobFields(BaseModel):
    """What a job is: the fields `POST /jobs` and a schedule's runs share."""

    model_config = ConfigDict(extra="forbid")

    type: Annotated[StrictStr, Field(min_length=1, max_length=200, description="A registered job type")]
    args: dict[str, Any] = Field(default_factory=dict, description="Validated against the type's argument schema")
    queue: QueueName | None = Field(None, description="Defaults to the job type's queue")
    timeout: Annotated[StrictInt, Field(ge=1)] | None = Field(None, description="Run-time limit in seconds")
    retries: Annotated[StrictInt, Field(ge=0)] | None = Field(None, description="Extra attempts after a failure")
    description: StrictStr | None = Field(None, description="Free text shown in the status and rq-dashboard")


class BatchMember(JobFields):
    """A member of `POST /batches`: a `POST /jobs` body without dependencies or result reuse."""

    # -- job control --
    delay: Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)] | None = Field(
        None, description="Run no earlier than now + delay seconds"
    )
    run_at: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = Field(
        None, description="Run no earlier than this ISO 8601 time (with a UTC offset or Z)"
    )

    # -- completion callbacks --
    callback_url: Annotated[AnyHttpUrl, UrlConstraints(max_length=2000)] | None = Field(
        None, description="http(s) URL that receives a signed POST when the job ends"
    )


class SubmitRequest(BatchMember):
    """Body of `POST /jobs` (API.md section 1): a batch member's fields, and what a lone job may add."""

    depends_on: (
        Annotated[list[Annotated[StrictStr, Field(min_length=1, max_length=200)]], Field(max_length=100)] | None
    ) = Field(None, description="Start only after all these jobs finished")

    # -- result reuse --
    cache_ttl: Annotated[StrictInt, Field(ge=1)] | None = Field(
        None,
        description="Reuse an identical job (same type, queue and args) of this API key instead of enqueuing a "
        "new one while it waits or runs, or up to this many seconds (1..RESULT_TTL) after it finished: answered "
        "200 with `Cache-Status: jobsvc; hit`. Defaults to the job type's `cache_ttl` (see /job-types). "
        "POST /jobs only",
    )
