"""OpenAPI 3.1 for every route, built from the pydantic models the routes validate with.

`OPERATIONS` is the one table of every route (the jobs' here, each other resource's in its own module,
vocabulary in `app.operations`): method, path, the request
models (body, query) and a response per status. Problem responses (401, 404, 422, 429, 503 …)
share one `Problem` schema; protected operations carry the bearer security scheme. A unit test
checks that the table and the app's routes name the same operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from app.batches_openapi import BATCH_OPERATIONS
from app.examples import add_cache_status_examples, add_submit_examples
from app.listing.statuses import LISTED_STATUSES
from app.operations import (
    BODY_REFUSED,
    CACHE_STATUS_HEADER,
    JOB_ID,
    PROBLEM_REF,
    REDIS_DOWN,
    REF,
    SECURITY_SCHEME,
    Operation,
    Reply,
)
from app.response_models import Health, JobPage, JobTypeInfo, JobView, Problem, Ready, Stats
from app.routes.jobs import ListQuery
from app.schedules_openapi import SCHEDULE_OPERATIONS
from app.schemas import SubmitRequest
from core.settings import Settings
from jobs.catalog import registry

JOB_OPERATIONS: list[Operation] = [
    Operation(
        "POST", "/jobs", "submitJob", "Submit a job",
        body=SubmitRequest,
        replies={
            200: Reply(
                "Nothing enqueued: the job an identical request made (result reuse, `Cache-Status: jobsvc; hit`), "
                "or the one the same Idempotency-Key and body made",
                JobView,
                headers={"Location": "`/jobs/{id}`", **CACHE_STATUS_HEADER},
            ),
            202: Reply(
                "Accepted and queued", JobView, headers={"Location": "`/jobs/{id}`", **CACHE_STATUS_HEADER}
            ),
        },
        problems={
            400: "Malformed JSON or a body that is not an object",
            **BODY_REFUSED,
            422: "Unknown type, invalid args or options, nesting or strings beyond the limits",
            429: "RATE_LIMIT or MAX_ACTIVE_JOBS reached for this API key (see `Retry-After`)",
            **REDIS_DOWN,
        },
    ),
    Operation(
        "GET", "/jobs", "listJobs", "List jobs, newest first or in the status's order (a key sees its own; admin all)",
        query=ListQuery,
        replies={200: Reply("One page of jobs", JobPage)},
        problems={422: "A filter, limit or cursor is invalid", **REDIS_DOWN},
    ),
    Operation(
        "GET", "/jobs/{job_id}", "getJob", "Status, progress, messages and result of one job",
        path_params=JOB_ID,
        replies={200: Reply("The job", JobView)},
        problems={404: "No such job, it expired, or another API key's job", **REDIS_DOWN},
    ),
    Operation(
        "GET", "/jobs/{job_id}/events", "streamJobEvents",
        "Live progress as Server-Sent Events: the current state, then `progress` and `status` events until the end",
        path_params=JOB_ID,
        replies={200: Reply("An event stream (`text/event-stream`)", media_type="text/event-stream",
                            schema={"type": "string"})},
        problems={404: "No such job, it expired, or another API key's job",
                  422: "Last-Event-ID is not an event id of this stream", **REDIS_DOWN},
    ),
    Operation(
        "GET", "/jobs/{job_id}/output", "getJobOutput",
        "The job's streamed output so far (whole once it ended): its newest OUTPUT_MAX_BYTES, as plain text",
        path_params=JOB_ID,
        replies={200: Reply("The output (`text/plain; charset=utf-8`)", media_type="text/plain",
                            schema={"type": "string"})},
        problems={404: "No such job, it expired, or another API key's job", **REDIS_DOWN},
    ),
    Operation(
        "DELETE", "/jobs/{job_id}", "cancelJob",
        "Cancel a waiting job (200) or stop a running one (202; its status becomes `stopped`)",
        path_params=JOB_ID,
        replies={200: Reply("Canceled", JobView), 202: Reply("Stop requested", JobView)},
        problems={404: "No such job, it expired, or another API key's job", 409: "The job has already ended",
                  **REDIS_DOWN},
    ),
    Operation(
        "POST", "/jobs/{job_id}/retry", "retryJob",
        "Put a failed or stopped job back on its queue with its retry budget restored",
        path_params=JOB_ID,
        replies={202: Reply("Requeued", JobView, headers={"Location": "`/jobs/{id}`"})},
        problems={404: "No such job, it expired, or another API key's job",
                  409: "The job is neither failed nor stopped",
                  429: "MAX_ACTIVE_JOBS reached for this API key (see `Retry-After`)", **REDIS_DOWN},
    ),
    Operation(
        "GET", "/metrics", "getMetrics", "Prometheus metrics (queue depths, jobs by status, submissions, durations)",
        replies={200: Reply("Prometheus text format", media_type="text/plain", schema={"type": "string"})},
        problems={401: "METRICS_TOKEN is set and the bearer token is missing or wrong"},
        public=True, tag="operations",
    ),
    Operation(
        "GET", "/stats", "getStats", "Counts per queue and worker counts",
        replies={200: Reply("Counters", Stats)}, problems=REDIS_DOWN, tag="operations",
    ),
    Operation(
        "GET", "/job-types", "listJobTypes", "Registered job types with their argument JSON Schemas",
        replies={200: Reply("Job types", JobTypeInfo, many=True)}, tag="operations",
    ),
    Operation(
        "GET", "/healthz", "healthz", "Liveness: the process serves (never touches Redis)",
        replies={200: Reply("Alive", Health)}, public=True, tag="operations",
    ),
    Operation(
        "GET", "/readyz", "readyz", "Readiness: Redis answers",
        replies={200: Reply("Ready", Ready)}, problems=REDIS_DOWN, public=True, tag="operations",
    ),
    Operation(
        "GET", "/openapi.json", "getOpenAPI", "This API description (OpenAPI 3.1)",
        replies={200: Reply("The OpenAPI document", schema={"type": "object"})}, public=True, tag="docs",
    ),
    Operation(
        "GET", "/docs", "getDocs", "Swagger UI for this API description (served by this process, no CDN)",
        replies={200: Reply("An HTML page", media_type="text/html", schema={"type": "string"})},
        public=True, tag="docs",
    ),
    Operation(
        "GET", "/", "home", "The console: a redirect to `/console/`, the browser UI built on this API",
        replies={307: Reply("Redirect to the console", headers={"Location": "`/console/`"})}, public=True,
        tag="docs",
    ),
]  # fmt: skip

#: Every described operation: the jobs' above, then each resource's own table.
OPERATIONS: list[Operation] = [*JOB_OPERATIONS, *SCHEDULE_OPERATIONS, *BATCH_OPERATIONS]

PROBLEM_HEADERS = {
    401: {"WWW-Authenticate": 'Bearer challenge, e.g. `Bearer realm="jobs", error="invalid_token"`'},
    429: {"Retry-After": "Seconds to wait before trying again"},
    503: {"Retry-After": "Seconds to wait before trying again"},
}


def build_openapi(
    operations: list[Operation] | None = None, *, settings: Settings | None = None, title: str = "jobs service"
) -> dict[str, Any]:
    """The document; with `settings`, it also names this deployment's job types and limits."""
    operations = OPERATIONS if operations is None else operations
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Problem, "serialization")]
    for op in operations:
        models.extend((m, "validation") for m in (op.body, op.query) if m is not None)
        models.extend((r.model, "serialization") for r in op.replies.values() if r.model is not None)
    unique = list(dict.fromkeys(models))
    refs, top = models_json_schema(unique, ref_template=REF)
    components: dict[str, Any] = dict(top.get("$defs", {}))

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": _parameters(op, components),
            "responses": _responses(op, refs),
        }
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
            if op.examples:
                entry["requestBody"]["content"]["application/json"]["examples"] = {
                    name: {"summary": name, "value": value} for name, value in op.examples.items()
                }
        if op.public:
            entry["security"] = []
        if not entry["parameters"]:
            del entry["parameters"]
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": "1",
            "description": "Long-running jobs on RQ and Redis. Every error is an RFC 9457 problem document.",
        },
        "servers": [{"url": "/"}],
        "security": [{SECURITY_SCHEME: []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from API_KEYS: `Authorization: Bearer <key>`",
                }
            },
        },
    }
    add_cache_status_examples(document)
    if settings is not None:
        _deployment_limits(document, settings)
    return document


def _deployment_limits(document: dict[str, Any], settings: Settings) -> None:
    """What the pydantic models leave to run-time checks: registered type names and configured maxima."""
    names = [spec.name for spec in registry]
    schemas = document["components"]["schemas"]
    for name in ("SubmitRequest", "BatchMember"):
        _job_limits(schemas.get(name, {}).get("properties", {}), names, settings)
    add_submit_examples(document, schemas.get("SubmitRequest", {}), registry)
    for methods in document["paths"].values():
        for entry in methods.values():
            for param in entry.get("parameters", []):
                if param["in"] == "query" and param["name"] == "type":
                    param["schema"]["enum"] = names


def _job_limits(fields: dict[str, Any], names: list[str], settings: Settings) -> None:
    """A job body's registered type names and configured maxima, on the `fields` of its schema that have them."""
    if "type" in fields:
        fields["type"]["enum"] = names
    for field_name, keyword, value in (
        ("timeout", "maximum", settings.job_max_timeout),
        ("retries", "maximum", settings.job_max_retries),
        ("description", "maxLength", settings.max_description_chars),
        ("cache_ttl", "maximum", settings.result_ttl),
    ):
        for branch in fields.get(field_name, {}).get("anyOf", []):
            if branch.get("type") != "null":
                branch[keyword] = value


def _parameters(op: Operation, components: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "description": text, "schema": {"type": "string"}}
        for name, text in op.path_params.items()
    ]
    if op.query is not None:
        schema = components.pop(op.query.__name__, None) or op.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            prop = _without_null(prop)
            if name == "status" and op.path == "/jobs":  # RQ's enum holds words the API never reports
                prop = {**{k: v for k, v in prop.items() if k != "$ref"}, "type": "string", "enum": [*LISTED_STATUSES]}
            param = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    return params


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query string cannot carry null: drop the null branch pydantic adds for optional fields."""
    branches = schema.get("anyOf")
    if not branches:
        return schema
    kept = [branch for branch in branches if branch.get("type") != "null"]
    rest = {key: value for key, value in schema.items() if key not in ("anyOf", "default")}
    if schema.get("default") is not None:
        rest["default"] = schema["default"]
    return {**kept[0], **rest} if len(kept) == 1 else {**rest, "anyOf": kept}


def _responses(op: Operation, refs: Mapping[tuple[Any, JsonSchemaMode], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, reply in op.replies.items():
        response: dict[str, Any] = {"description": reply.description}
        if reply.model is not None:
            schema = refs[(reply.model, "serialization")]
            schema = {"type": "array", "items": schema} if reply.many else schema
            response["content"] = {reply.media_type: {"schema": schema}}
        elif reply.schema is not None:
            response["content"] = {reply.media_type: {"schema": dict(reply.schema)}}
        if reply.headers:
            response["headers"] = _headers(reply.headers)
        out[str(status)] = response
    problems = dict(op.problems)
    if not op.public:
        problems.setdefault(401, "Missing or invalid API key (where keys are configured)")
    for status in sorted(problems):
        response = {"description": problems[status], "content": {"application/problem+json": {"schema": PROBLEM_REF}}}
        if status in PROBLEM_HEADERS:
            response["headers"] = _headers(PROBLEM_HEADERS[status])
        out[str(status)] = response
    return out


def _headers(headers: Mapping[str, str]) -> dict[str, Any]:
    return {name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()}
