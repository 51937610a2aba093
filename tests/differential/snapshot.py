"""Every key of a Redis database as comparable data, with what differs run to run normalised away.

A snapshot maps each key (its name normalised) to `Entry(type, ttl, value)`:

- TTLs and timestamp scores are bucketed: a TTL rounds up to a multiple of `BUCKET` seconds (RQ's
  TTLs are round numbers the run's few seconds have eaten into), a registry score that is a time
  becomes its offset from the run's start, rounded down the same way;
- ids that are fresh on every run (execution ids, worker names, stream entry ids), timestamps,
  pids and host names are replaced by placeholders;
- a traceback keeps its last line, the exception: its frames are the worker's own call stack (and a
  job thread's timeout, recorded by the concurrent worker's loop, has no frame of the job).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis import Redis

from tests.support.replies import text

#: Seconds TTLs and time scores are rounded to.
BUCKET = 10

_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?")
_EPOCH = re.compile(r"^1\d{9}(?:\.\d+)?$")
_HEX_ID = re.compile(r"\b[0-9a-f]{32}\b|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_STREAM_ID = re.compile(r"^\d{13}-\d+$")
_ZLIB_BASE64 = re.compile(r"^eJ[A-Za-z0-9+/]+=*$")

#: Worker hash fields that describe the process, not the jobs it ran.
PROCESS_FIELDS = {"pid", "hostname", "ip_address", "python_version", "version"}
#: Worker hash fields that add up how long jobs ran: compared as zero or not.
DURATION_FIELDS = {"total_working_time"}


@dataclass(frozen=True)
class Entry:
    type: str
    ttl: int
    value: Any


Snapshot = dict[str, Entry]


class Normaliser:
    """Replaces what is new on every run: the given names (worker, executions) and anything shaped like an id or
    a time."""

    def __init__(self, started: float, names: dict[str, str]) -> None:
        self.started = started
        self.names = names

    def text(self, raw: bytes | str) -> Any:
        if isinstance(raw, bytes):
            try:
                decoded = raw.decode()
            except UnicodeDecodeError:
                return self.compressed(raw)
            raw = decoded
        if _ZLIB_BASE64.match(raw):  # RQ's `exc_string` in a result: base64 of zlib
            try:
                return {"zlib": self.text(zlib.decompress(base64.b64decode(raw)))}
            except (binascii.Error, zlib.error):
                pass
        if "Traceback (most recent call last)" in raw:
            return self.traceback(raw)
        for name, placeholder in self.names.items():
            raw = raw.replace(name, placeholder)
        if raw[:1] in "[{":
            try:
                return self.structure(json.loads(raw))
            except ValueError:
                pass
        if _EPOCH.match(raw) or _STREAM_ID.match(raw):
            return "<time>"
        return _HEX_ID.sub("<id>", _ISO_TIME.sub("<time>", raw))

    def compressed(self, raw: bytes) -> Any:
        try:
            return {"zlib": self.text(zlib.decompress(raw))}
        except zlib.error:
            return raw

    def structure(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {self.text(k): self.structure(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.structure(item) for item in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    @staticmethod
    def traceback(raw: str) -> str:
        lines = [line for line in raw.strip().splitlines() if line.strip()]
        return f"<traceback> {lines[-1].strip()}"

    def score(self, score: float) -> Any:
        if math.isinf(score):
            return str(score)
        if score > 1e9:  # a time: when the entry expires, or was added
            return f"start{math.floor((score - self.started) / BUCKET) * BUCKET:+d}s"
        return score

    @staticmethod
    def ttl(ttl: int) -> int:
        return ttl if ttl < 0 else math.ceil(ttl / BUCKET) * BUCKET


def take(connection: Redis, normaliser: Normaliser) -> Snapshot:
    state: Snapshot = {}
    for raw_key in sorted(connection.keys("*")):
        kind = text(connection.type(raw_key))
        key = normaliser.text(raw_key)
        state[key] = Entry(kind, normaliser.ttl(connection.ttl(raw_key)), _value(connection, raw_key, kind, normaliser))
    return state


def _worker_field(field: str, value: bytes | str, norm: Normaliser) -> Any:
    if field in PROCESS_FIELDS:
        return "<process>"
    if field in DURATION_FIELDS:
        return "<seconds>" if float(value) > 0 else "0"
    return norm.text(value)


def _value(connection: Redis, key: bytes | str, kind: str, norm: Normaliser) -> Any:
    if kind == "hash":
        fields = connection.hgetall(key)
        is_worker = text(key).startswith("rq:worker:")
        return {norm.text(f): _worker_field(text(f), v, norm) if is_worker else norm.text(v) for f, v in fields.items()}
    if kind == "zset":
        pairs: list[tuple[bytes, float]] = connection.zrange(key, 0, -1, withscores=True)  # type: ignore[assignment]  # redis-py types withscores replies loosely
        return sorted((norm.text(m), norm.score(s)) for m, s in pairs)
    if kind == "set":
        return sorted(norm.text(m) for m in connection.smembers(key))
    if kind == "list":
        return [norm.text(item) for item in connection.lrange(key, 0, -1)]
    if kind == "stream":
        entries: list[tuple[bytes, dict[bytes, bytes]]] = connection.xrange(key)  # type: ignore[assignment]  # redis-py: Any | None
        return [{norm.text(f): norm.text(v) for f, v in fields.items()} for _, fields in entries]
    if kind == "string":
        return norm.text(connection.get(key) or b"")
    return f"<{kind}>"


@dataclass(frozen=True)
class Difference:
    #: `key`, `key [field]` or `key TTL`.
    where: str
    rq: Any
    ours: Any

    def __str__(self) -> str:
        if self.rq is _ABSENT:
            return f"+ {self.where}: only ours writes it: {self.ours!r}"
        if self.ours is _ABSENT:
            return f"- {self.where}: only RQ writes it: {self.rq!r}"
        return f"~ {self.where}: RQ {self.rq!r}, ours {self.ours!r}"


_ABSENT: Any = object()


def differences(expected: Snapshot, actual: Snapshot) -> list[Difference]:
    """`expected` (RQ's) against `actual` (ours): every key, TTL or hash field that differs."""
    found: list[Difference] = []
    for key in sorted(set(expected) | set(actual)):
        want, got = expected.get(key), actual.get(key)
        if want is None or got is None:
            found.append(Difference(key, want or _ABSENT, got or _ABSENT))
        else:
            found.extend(_entry_differences(key, want, got))
    return found


def _entry_differences(key: str, want: Entry, got: Entry) -> Iterable[Difference]:
    if want.type != got.type:
        yield Difference(f"{key} type", want.type, got.type)
        return
    if want.ttl != got.ttl:
        yield Difference(f"{key} TTL", want.ttl, got.ttl)
    if want.type == "hash":
        for field in sorted(set(want.value) | set(got.value), key=str):
            rq, ours = want.value.get(field, _ABSENT), got.value.get(field, _ABSENT)
            if rq != ours:
                yield Difference(f"{key} [{field}]", rq, ours)
    elif want.value != got.value:
        yield Difference(key, want.value, got.value)
