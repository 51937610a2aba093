"""Reading request bodies: JSON objects only, size-capped while streaming, depth and strings bounded."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from app.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError, ValidationFailedError
from app.sizelimit import check_json_limits
from core.settings import Settings


def is_json_media_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes `max_bytes` (whatever Content-Length claims)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLargeError(f"request body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(f"request body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def malformed(exc: ValueError) -> str:
    """Why the body is not JSON, and where: line, column and character position (or byte, for bad UTF-8)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed JSON at line {exc.lineno}, column {exc.colno} (character {exc.pos}): {exc.msg}"
    if isinstance(exc, UnicodeDecodeError):
        return f"malformed JSON: not valid UTF-8 at byte {exc.start} ({exc.reason})"
    return "malformed JSON: not valid UTF-8 JSON"


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    if not is_json_media_type(request.headers.get("content-type", "")):
        raise UnsupportedMediaTypeError("send the body as JSON with Content-Type: application/json")
    raw = await read_body(request, max_bytes)
    settings: Settings = request.app.state.settings
    try:
        body = json.loads(raw)
    except RecursionError:
        raise ValidationFailedError.field(
            [], f"body nested deeper than {settings.max_json_depth} levels (MAX_JSON_DEPTH)"
        ) from None
    except ValueError as exc:
        raise BadRequestError(malformed(exc)) from None
    if not isinstance(body, dict):
        raise BadRequestError(f"the body must be a JSON object, not {type(body).__name__}")
    check_json_limits(body, settings.max_json_depth, settings.max_string_chars)
    return body
