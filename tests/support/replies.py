"""Redis replies as text: redis-py types a reply as `bytes | str` (it cannot know `decode_responses`)."""

from __future__ import annotations


def text(reply: bytes | str | None) -> str:
    """A reply the test expects to exist, as `str` (a missing one fails the test here)."""
    assert reply is not None, "expected a Redis reply, got None"
    return reply.decode() if isinstance(reply, bytes) else reply
