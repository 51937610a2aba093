"""Pydantic's validation errors as the API's field problems, each saying what to fix.

`{"loc": ["args", "steps"], "msg": "expected an integer, got \"five\""}` rather than pydantic's
"Input should be a valid integer, unable to parse string as an integer": the expected type, the
value that was sent, and for a field the model does not have, the fields it does (or, for a
request field that belongs under `args`, where it goes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

Loc = tuple[str | int, ...]
#: Extra words for an unknown field at `loc` (a hint where it belongs), or None.
Hint = Callable[[Loc], str | None]

EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer (no fraction)",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "string_type": "a string",
    "bool_type": "a boolean (true or false)",
    "bool_parsing": "a boolean (true or false)",
    "dict_type": "a JSON object",
    "model_type": "a JSON object",
    "model_attributes_type": "a JSON object",
    "list_type": "a JSON array",
    "none_required": "null",
    "url_type": "a URL string",
}
SHOWN_CHARS = 60
UNKNOWN = "unknown field, not permitted here"


def shown(value: Any) -> str:
    """The value a client sent, as JSON, cut to a readable length."""
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        value = value[:SHOWN_CHARS] + "…"
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:
        text = repr(value)
    return text if len(text) <= SHOWN_CHARS + 2 else text[:SHOWN_CHARS] + "…"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds: itself, or the item model of `list[Turn]`, `Turn | None`…"""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _fields_of(model: type[BaseModel] | None, loc: Loc) -> list[str]:
    """The field names of the (nested) model that holds `loc`'s last part."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue  # an item of a list: the same item model
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return []
        model = _model_in(field.annotation)
    return list(model.model_fields) if model is not None else []


def message(error: ErrorDetails, model: type[BaseModel] | None = None, hint: Hint | None = None) -> str:
    """One error's `msg`: what was expected and what came instead."""
    kind = error["type"]
    loc = tuple(error["loc"])
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        extra = hint(loc) if hint is not None else None
        if extra:
            return f"{UNKNOWN}; {extra}"
        known = _fields_of(model, loc)
        return f"{UNKNOWN}; accepted: {', '.join(known)}" if known else UNKNOWN
    if kind in EXPECTED:
        return f"expected {EXPECTED[kind]}, got {shown(error['input'])}"
    text = error["msg"].removeprefix("Value error, ")
    if text.startswith("Input should "):
        text = text[len("Input should ") :]
    elif text[1:2].islower():  # `String should…` reads on after the field name; `URL scheme…` keeps its case
        text = text[:1].lower() + text[1:]
    if text.startswith("be "):
        text = "must " + text
    return f"{text}, got {shown(error['input'])}"


def field_errors(
    exc: ValidationError, prefix: Loc = (), model: type[BaseModel] | None = None, hint: Hint | None = None
) -> list[dict[str, Any]]:
    """`{"loc": [...], "msg": "..."}` items, `prefix` put before each loc."""
    return [
        {"loc": [*prefix, *error["loc"]], "msg": message(error, model, hint)} for error in exc.errors(include_url=False)
    ]


def summary(errors: Iterable[dict[str, Any]]) -> str:
    """The problem's `detail`: every field and what to fix, `args.steps: expected an integer, got "five"`."""
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)
