"""Example `POST /jobs` bodies, one per registered job type, and its `Cache-Status` answers, for the
OpenAPI document.

Each example's `args` names the type's required arguments (from the schema's own `examples`
where it has them, else the smallest value its constraints allow) and those with a default other
than null, at that default. An example is kept only when the type's argument model accepts it, so whatever the
document offers, Swagger UI's "Try it out" included, the service accepts as it stands.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from jobs.registry import JobSpec

SAMPLE_TEXT = "example"


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _resolve(defs.get(ref.rsplit("/", 1)[1], {}), defs)
    return schema


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
    value = max(low + (1 if "exclusiveMinimum" in schema else 0), 1)
    value = min(value, schema.get("maximum", value))
    return int(value) if integer else float(value)


def sample(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """A value `schema` accepts, as small as its constraints allow."""
    schema = _resolve(schema, defs)
    for keyword in ("examples", "enum"):
        if schema.get(keyword):
            return schema[keyword][0]
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return schema["default"]
    branches = [branch for branch in schema.get("anyOf", schema.get("oneOf", [])) if branch.get("type") != "null"]
    if branches:
        return sample(branches[0], defs)
    kind = schema.get("type")
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return False
    if kind == "string":
        return (SAMPLE_TEXT * (1 + schema.get("minLength", 0) // len(SAMPLE_TEXT)))[: schema.get("maxLength")]
    if kind == "array":
        return [sample(schema.get("items", {}), defs) for _ in range(max(1, schema.get("minItems", 0)))]
    if kind == "object" or "properties" in schema:
        properties, required = schema.get("properties", {}), schema.get("required", [])
        return {
            name: sample(prop, defs)
            for name, prop in properties.items()
            if name in required or prop.get("default") is not None
        }
    return None


def example_args(spec: JobSpec) -> dict[str, Any] | None:
    """`args` the type accepts: required arguments and defaults; None when none could be built."""
    schema = spec.args_schema()
    args = sample(schema, schema.get("$defs", {}))
    if not isinstance(args, dict):
        return None
    try:
        spec.args_model.model_validate(args)
    except ValidationError:
        return None
    return args


def submit_examples(specs: Iterable[JobSpec]) -> dict[str, dict[str, Any]]:
    """OpenAPI `examples` of `POST /jobs`: job type name -> {summary, value}."""
    examples: dict[str, dict[str, Any]] = {}
    for spec in specs:
        args = example_args(spec) if not spec.on_complete_only else None  # refused by POST /jobs
        if args is not None:
            examples[spec.name] = {
                "summary": f"{spec.name}: {spec.description}",
                "value": {"type": spec.name, "args": args},
            }
    return examples


def add_submit_examples(document: dict[str, Any], submit_schema: dict[str, Any], specs: Iterable[JobSpec]) -> None:
    """Put the examples in the OpenAPI `document`: on `POST /jobs`' media type (Swagger UI's "Try it out"
    offers them instead of a generic `additionalProp1`), on the `SubmitRequest` schema and on its `args`."""
    examples = submit_examples(specs)
    if not examples or "properties" not in submit_schema:
        return
    bodies = [example["value"] for example in examples.values()]
    submit_schema["examples"] = bodies
    submit_schema["properties"]["args"]["examples"] = [body["args"] for body in bodies]
    for methods in document["paths"].values():
        for entry in methods.values():
            content = entry.get("requestBody", {}).get("content", {}).get("application/json", {})
            if content.get("schema") == {"$ref": "#/components/schemas/SubmitRequest"}:
                content["examples"] = examples


#: `Cache-Status` of `POST /jobs` by status: a reused job that finished 60 s ago (cache_ttl 600); a new job.
CACHE_STATUS_EXAMPLES = {"200": "jobsvc; hit; ttl=540", "202": "jobsvc; fwd=miss"}


def add_cache_status_examples(document: dict[str, Any]) -> None:
    """Show what `Cache-Status` looks like on `POST /jobs`' answers (RFC 9211: the cache, then its parameters)."""
    responses = document["paths"].get("/jobs", {}).get("post", {}).get("responses", {})
    for status, example in CACHE_STATUS_EXAMPLES.items():
        header = responses.get(status, {}).get("headers", {}).get("Cache-Status")
        if header is not None:
            header["example"] = example
