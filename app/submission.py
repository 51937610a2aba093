"""Turn a request body into a validated submission: the job type, its arguments and options."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from app.errors import ValidationFailedError
from app.field_errors import Hint, Loc, field_errors, summary
from app.scheduling import due_time
from app.schemas import SubmitRequest
from core.settings import Settings
from jobs.registry import JobSpec, Registry


@dataclass(frozen=True)
class Submission:
    spec: JobSpec
    args: dict[str, Any]
    queue: str
    timeout: int
    retries: int
    description: str
    run_at: datetime | None = None  # scheduled start (whole second); None: now
    depends_on: tuple[str, ...] = ()
    callback_url: str | None = None
    cache_ttl: int | None = None  # reuse an identical job up to this long after it finished; None: never

    def job_fields(self) -> dict[str, Any]:
        """What `JobStore.build_job` takes from this submission (all but the meta and dependencies)."""
        return {
            "func_path": self.spec.func_path,
            "kwargs": self.args,
            "queue": self.queue,
            "timeout": self.timeout,
            "retries": self.retries,
            "description": self.description,
        }


def validate_model(model: type[BaseModel], data: Any, prefix: Loc = (), hint: Hint | None = None) -> Any:
    """`model` validated from `data`; a 422 whose every field problem says what to fix otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # the accepted fields are listed for an argument model; a request model's callers know its siblings
        errors = field_errors(exc, prefix, model if prefix else None, hint)
        raise ValidationFailedError(summary(errors), errors=errors) from None


def misplaced_args(body: dict[str, Any], registry: Registry) -> Hint:
    """A hint for a request field that is an argument of the body's job type: `did you mean args.steps?`"""
    job_type = body.get("type")
    arg_names = (
        registry.get(job_type).args_model.model_fields if isinstance(job_type, str) and job_type in registry else {}
    )

    def hint(loc: Loc) -> str | None:
        if len(loc) == 1 and loc[0] in arg_names:
            return f'did you mean args.{loc[0]}? A job\'s arguments go inside "args"'
        if len(loc) == 1:
            fields = ", ".join(SubmitRequest.model_fields)
            return f"the request's fields are {fields}; a job's arguments go inside \"args\""
        return None

    return hint


def _cache_ttl(request: SubmitRequest, spec: JobSpec, settings: Settings, reuse: bool) -> int | None:
    """The request's `cache_ttl` (1..RESULT_TTL), else the type's own (at most RESULT_TTL); None where
    results are never reused (`reuse` False: a batch member, a schedule's run)."""
    if request.cache_ttl is not None and not reuse:
        raise ValidationFailedError.field(
            ["cache_ttl"], "result reuse is for POST /jobs only: a batch member or a schedule's run is always a new job"
        )
    if request.cache_ttl is not None and request.cache_ttl > settings.result_ttl:
        raise ValidationFailedError.field(
            ["cache_ttl"],
            f"must be between 1 and {settings.result_ttl} seconds (RESULT_TTL, how long results are kept)",
        )
    if not reuse:
        return None
    if request.cache_ttl is not None:
        return request.cache_ttl
    return min(spec.cache_ttl, settings.result_ttl) if spec.cache_ttl is not None else None


def parse_submission(
    body: dict[str, Any], registry: Registry, settings: Settings, *, on_complete: bool = False, reuse: bool = False
) -> Submission:
    """`body` validated as `POST /jobs` takes it; `on_complete`: as a batch's `on_complete` job. `reuse`:
    the submission may reuse an identical job (`cache_ttl`, POST /jobs only)."""
    request: SubmitRequest = validate_model(SubmitRequest, body, hint=misplaced_args(body, registry))
    if request.type not in registry:
        known = ", ".join(spec.name for spec in registry)
        raise ValidationFailedError.field(["type"], f"unknown job type {request.type!r}; registered: {known}")
    spec = registry.get(request.type)
    if spec.on_complete_only and not on_complete:
        raise ValidationFailedError.field(
            ["type"], f"{spec.name} runs only as a batch's on_complete job: POST /batches with on_complete.type"
        )
    args = validate_model(spec.args_model, request.args, ("args",)).model_dump(mode="json")

    timeout = spec.timeout if request.timeout is None else request.timeout
    if not 1 <= timeout <= settings.job_max_timeout:
        raise ValidationFailedError.field(["timeout"], f"must be between 1 and {settings.job_max_timeout} seconds")
    retries = spec.retries if request.retries is None else request.retries
    if not 0 <= retries <= settings.job_max_retries:
        raise ValidationFailedError.field(["retries"], f"must be between 0 and {settings.job_max_retries}")
    description = request.description if request.description is not None else spec.name
    if len(description) > settings.max_description_chars:
        raise ValidationFailedError.field(["description"], f"at most {settings.max_description_chars} characters")
    depends_on = tuple(dict.fromkeys(request.depends_on or ()))
    if depends_on and (request.delay is not None or request.run_at is not None):
        raise ValidationFailedError.field(["depends_on"], "cannot be combined with delay or run_at")
    run_at = due_time(request.delay, request.run_at, settings.job_max_delay)
    queue = request.queue or spec.queue
    callback_url = str(request.callback_url) if request.callback_url is not None else None
    cache_ttl = _cache_ttl(request, spec, settings, reuse)
    return Submission(spec, args, queue, timeout, retries, description, run_at, depends_on, callback_url, cache_ttl)
