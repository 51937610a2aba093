"""Flow-control limits: the settings `TYPE_CONCURRENCY`, `TYPE_RATE_LIMIT`, `KEY_CONCURRENCY` and the limits job
types declare in code, parsed once at start-up into one `Limits`.

A malformed entry (unknown type, zero, negative, bad unit, bad syntax) raises `FlowSettingError` naming the
setting and the entry; web and workers call `parse_limits` at start-up and stop on it. The setting wins over
the value a job type declares in code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from core.settings import Settings

#: Seconds in each unit `TYPE_RATE_LIMIT` accepts.
UNITS = {"second": 1, "minute": 60, "hour": 3600}

_RATE = re.compile(r"^\s*(-?\d+)\s*/\s*([a-z]+?)s?\s*$")


class FlowSettingError(ValueError):
    """A flow-control setting (or a job type's declared limit) that cannot be applied."""


@dataclass(frozen=True)
class Rate:
    """At most `count` starts in any `unit` window."""

    count: int
    unit: str

    @property
    def window_ms(self) -> int:
        return UNITS[self.unit] * 1000

    def __str__(self) -> str:
        return f"{self.count}/{self.unit}"


@dataclass(frozen=True)
class Limits:
    """The limits in force: per job type (running at once, starts per window) and per owner (running at once)."""

    concurrency: Mapping[str, int] = field(default_factory=dict)
    rates: Mapping[str, Rate] = field(default_factory=dict)
    key_concurrency: int | None = None
    fair: bool = True

    def limited_types(self) -> list[str]:
        return sorted(set(self.concurrency) | set(self.rates))

    def script_args(self) -> list[str | int]:
        """The limits as the claim script's ARGV tail: fair, key limit, type count, then per type
        name, concurrency (0: none), starts (0: none), window in ms."""
        args: list[str | int] = [1 if self.fair else 0, self.key_concurrency or 0, len(self.limited_types())]
        for name in self.limited_types():
            rate = self.rates.get(name)
            args += [name, self.concurrency.get(name, 0), rate.count if rate else 0, rate.window_ms if rate else 0]
        return args


def _entries(setting: str, raw: str) -> Iterable[tuple[str, str, str]]:
    """(entry, type, value) for each `type=value` of a comma-separated setting."""
    for entry in raw.split(","):
        if not entry.strip():
            continue
        name, sep, value = entry.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise FlowSettingError(f"{setting}: {entry.strip()!r} is not type=value")
        yield entry.strip(), name.strip(), value.strip()


def _positive(setting: str, entry: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise FlowSettingError(f"{setting}: {entry!r}: {value!r} is not a whole number") from None
    if number < 1:
        raise FlowSettingError(f"{setting}: {entry!r}: the limit must be at least 1")
    return number


def parse_rate(setting: str, entry: str, value: str) -> Rate:
    """`N/second`, `N/minute` or `N/hour` (a plural unit is accepted)."""
    match = _RATE.match(value.lower())
    if match is None:
        raise FlowSettingError(f"{setting}: {entry!r} is not N/second, N/minute or N/hour")
    count, unit = match.groups()
    if unit not in UNITS:
        raise FlowSettingError(f"{setting}: {entry!r}: unknown unit {unit!r} (second, minute or hour)")
    return Rate(_positive(setting, entry, count), unit)


def _known(setting: str, entry: str, name: str, known: set[str]) -> str:
    if name not in known:
        raise FlowSettingError(f"{setting}: {entry!r}: unknown job type {name!r}")
    return name


@dataclass(frozen=True)
class Declared:
    """The limits a job type declares in code (`JobSpec.concurrency`, `JobSpec.rate_limit`)."""

    concurrency: int | None = None
    rate_limit: str | None = None


def parse_limits(
    *,
    type_concurrency: str = "",
    type_rate_limit: str = "",
    key_concurrency: str = "",
    fair: bool = True,
    known_types: Iterable[str],
    declared: Mapping[str, Declared] | None = None,
) -> Limits:
    """The limits in force, the settings overriding what job types declare. Raises `FlowSettingError`."""
    known = set(known_types)
    concurrency: dict[str, int] = {}
    rates: dict[str, Rate] = {}
    for name, spec in (declared or {}).items():
        if spec.concurrency is None and spec.rate_limit is None:
            continue
        where = f"job type {name}"
        if spec.concurrency is not None:
            concurrency[name] = _positive(where, f"concurrency={spec.concurrency}", str(spec.concurrency))
        if spec.rate_limit is not None:
            rates[name] = parse_rate(where, f"rate_limit={spec.rate_limit}", spec.rate_limit)
    for entry, name, value in _entries("TYPE_CONCURRENCY", type_concurrency):
        concurrency[_known("TYPE_CONCURRENCY", entry, name, known)] = _positive("TYPE_CONCURRENCY", entry, value)
    for entry, name, value in _entries("TYPE_RATE_LIMIT", type_rate_limit):
        rates[_known("TYPE_RATE_LIMIT", entry, name, known)] = parse_rate("TYPE_RATE_LIMIT", entry, value)
    key_limit = None
    if key_concurrency.strip():
        key_limit = _positive("KEY_CONCURRENCY", key_concurrency.strip(), key_concurrency.strip())
    return Limits(concurrency, rates, key_limit, fair)


class DeclaresLimits(Protocol):
    """What `limits_from` reads of a job type (`jobs.registry.JobSpec`)."""

    @property
    def name(self) -> str: ...
    @property
    def concurrency(self) -> int | None: ...
    @property
    def rate_limit(self) -> str | None: ...


def limits_from(settings: Settings, job_types: Iterable[DeclaresLimits]) -> Limits:
    """The limits in force for a process with `settings` running `job_types` (every registered type, internal
    ones included). Raises `FlowSettingError` naming the setting and the entry."""
    types = list(job_types)
    return parse_limits(
        type_concurrency=settings.type_concurrency,
        type_rate_limit=settings.type_rate_limit,
        key_concurrency=settings.key_concurrency,
        fair=settings.fair_turns,
        known_types=[spec.name for spec in types],
        declared={spec.name: Declared(spec.concurrency, spec.rate_limit) for spec in types},
    )
