"""Listing cursors: opaque (base64 of JSON) records of the order a page belongs to and the position of
the last entry it settled, so the next page resumes strictly after it however many jobs were added."""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

Position = tuple[Any, ...]


class InvalidCursorError(ValueError):
    """A listing cursor that this service did not issue (or issued for another order)."""


def score_position(position: Position) -> tuple[float, str]:
    """A (score, member) position from a cursor, checked: a finite number and a string."""
    if len(position) != 2 or not isinstance(position[0], int | float) or not isinstance(position[1], str):
        raise InvalidCursorError("bad position")
    try:
        score = float(position[0])
    except OverflowError as exc:
        raise InvalidCursorError("bad position") from exc
    if not math.isfinite(score):
        raise InvalidCursorError("bad position")
    return score, position[1]


def encode_cursor(order: str, position: Position) -> str:
    raw = json.dumps([order, *position], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order: str) -> Position:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise InvalidCursorError(cursor) from exc
    if not isinstance(raw, list) or not raw or raw[0] != order:
        raise InvalidCursorError(cursor)
    return tuple(raw[1:])
