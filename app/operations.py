"""The vocabulary of the OpenAPI table: an operation, its replies, and the problems many routes share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

REF = "#/components/schemas/{model}"
PROBLEM_REF = {"$ref": REF.format(model="Problem")}
SECURITY_SCHEME = "apiKey"


@dataclass(frozen=True)
class Reply:
    """One documented response: a model (JSON), a raw schema for another media type, or no body."""

    description: str
    model: type[BaseModel] | None = None
    media_type: str = "application/json"
    schema: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # name -> description
    many: bool = False  # a JSON array of `model`


@dataclass(frozen=True)
class Operation:
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    operation_id: str
    summary: str
    replies: Mapping[int, Reply]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path_params: Mapping[str, str] = field(default_factory=dict)  # name -> description
    problems: Mapping[int, str] = field(default_factory=dict)  # status -> when
    public: bool = False  # served without an API key
    examples: Mapping[str, Any] = field(default_factory=dict)  # request bodies by name (Swagger UI offers them)
    tag: str = "jobs"


JOB_ID = {"job_id": "The job's id, as returned by `POST /jobs`"}
REDIS_DOWN = {503: "Redis is unreachable, or full (its maxmemory reached); nothing was changed (see `Retry-After`)"}
#: The header of a submission that may reuse an identical job (`cache_ttl`): RFC 9211's syntax, cache `jobsvc`.
CACHE_STATUS_HEADER = {
    "Cache-Status": "Only when the submission may reuse a job (`cache_ttl`, from the request or its job type): "
    "`jobsvc; hit` (200; with `ttl=<s>`, the remaining freshness, once the job finished), `jobsvc; fwd=miss` "
    "(202, a new job), `jobsvc; fwd=request` (202: `Cache-Control: no-cache` passed over a reusable job)"
}
#: What any route taking a JSON body may answer before reading it.
BODY_REFUSED = {413: "Body over MAX_BODY_BYTES", 415: "Body is not JSON"}
