"""Request size limits: a body cap enforced while bytes arrive, and JSON depth/string bounds.

`BodySizeLimitMiddleware` answers 413 before calling the app when Content-Length already says
too much, and otherwise counts the bytes the app receives: chunked bodies and bodies longer than
their Content-Length claimed are cut off at `MAX_BODY_BYTES + 1` bytes, never read whole.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PayloadTooLargeError, ValidationFailedError, problem


def too_large(max_bytes: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"request body is larger than {max_bytes} bytes (MAX_BODY_BYTES)")


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            error = too_large(self.max_bytes) if declared.isdigit() else None
            response = (
                problem(error.status, error.slug, error.title, error.detail, headers={"Connection": "close"})
                if error
                else problem(400, "malformed-request", "Malformed request", "Content-Length is not a number")
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise too_large(self.max_bytes)  # rendered as a 413 problem by the exception handlers
            return message

        await self.app(scope, limited_receive, send)


def check_json_limits(value: Any, max_depth: int, max_string_chars: int) -> None:
    """422 naming the place where `value` nests deeper than `max_depth`, holds a string longer than
    `max_string_chars` (keys included), or a lone surrogate (not encodable as UTF-8)."""
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 1, ())]
    while stack:
        node, depth, loc = stack.pop()
        if isinstance(node, dict | list) and depth > max_depth:
            raise ValidationFailedError.field(list(loc), f"nested deeper than {max_depth} levels (MAX_JSON_DEPTH)")
        if isinstance(node, dict):
            for key, item in node.items():
                _check_string(key, loc, max_string_chars, "a key")
                stack.append((item, depth + 1, (*loc, key)))
        elif isinstance(node, list):
            stack.extend((item, depth + 1, (*loc, index)) for index, item in enumerate(node))
        elif isinstance(node, str):
            _check_string(node, loc, max_string_chars, "string")


def _check_string(text: str, loc: tuple[str | int, ...], max_chars: int, what: str) -> None:
    if len(text) > max_chars:
        raise ValidationFailedError.field(
            list(loc), f"{what} longer than {max_chars} characters (MAX_STRING_CHARS): got {len(text)}"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationFailedError.field(list(loc), f"{what} is not valid Unicode (lone surrogate)") from None
