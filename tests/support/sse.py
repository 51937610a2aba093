"""A small Server-Sent Events reader for tests (the wire format, parsed by hand on purpose)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx


class LineStream(Protocol):
    """A streamed response read line by line: httpx's, or the one Starlette's TestClient returns."""

    def iter_lines(self) -> Iterator[str]: ...


@dataclass(frozen=True)
class SSE:
    event: str
    data: Any
    id: str | None


@dataclass
class Parser:
    event: str = "message"
    data: list[str] = field(default_factory=list)
    id: str | None = None

    def feed(self, line: str) -> SSE | str | None:
        """One line in; an event at its blank line, a comment (keep-alive) as the line itself, else None."""
        if line.startswith(":"):
            return line
        if line == "":
            done = SSE(self.event, json.loads("\n".join(self.data)), self.id) if self.data else None
            self.event, self.data, self.id = "message", [], None
            return done
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "id":
            self.id = value
        return None


def items(response: LineStream) -> Iterator[SSE | str]:
    parser = Parser()
    for line in response.iter_lines():
        item = parser.feed(line)
        if item is not None:
            yield item


def events(response: LineStream) -> Iterator[SSE]:
    for item in items(response):
        if isinstance(item, SSE):
            yield item


async def aevents(response: httpx.Response) -> AsyncIterator[SSE]:
    parser = Parser()
    async for line in response.aiter_lines():
        item = parser.feed(line)
        if isinstance(item, SSE):
            yield item


def order(event_id: str | None) -> int:
    """An event id as its number (progress events are numbered per job)."""
    assert event_id is not None and event_id.isdigit(), event_id
    return int(event_id)
