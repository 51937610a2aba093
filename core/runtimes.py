"""Job run times as a histogram kept in Redis: workers add to it, `/metrics` reads it.

In Redis rather than in a process, the figures survive web and worker restarts and add up
over every worker. One hash (`keys.JOB_RUNTIME`) with the fields `<type>|<status>|le=<bound>`
(per-bucket counts, not cumulative), `<type>|<status>|count` and `<type>|<status>|sum`. Its
size is bounded: registered job types x outcomes x buckets, whatever the number of jobs.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rq.utils import as_text

from core import keys

#: Upper bounds (seconds) of the buckets; a run longer than the last lands in +Inf.
BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


def bound_label(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def bucket_for(seconds: float) -> float:
    index = bisect.bisect_left(BUCKETS, seconds)
    return BUCKETS[index] if index < len(BUCKETS) else math.inf


def record(pipeline: Any, job_type: str, status: str, seconds: float) -> None:
    """Queue the three increments for one run on `pipeline` (sync or asyncio); the caller executes it."""
    record_many(pipeline, [(job_type, status, seconds)])


def record_many(pipeline: Any, runs: Iterable[tuple[str, str, float]]) -> None:
    """Queue the increments for many `(job type, status, seconds)` runs: one per bucket, count and sum touched."""
    buckets: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    sums: dict[str, float] = {}
    for job_type, status, seconds in runs:
        prefix = f"{job_type}|{status}"
        seconds = max(0.0, seconds)
        buckets[f"{prefix}|le={bound_label(bucket_for(seconds))}"] += 1
        counts[prefix] += 1
        sums[prefix] = sums.get(prefix, 0.0) + seconds
    for field_name, count in buckets.items():
        pipeline.hincrby(keys.JOB_RUNTIME, field_name, count)
    for prefix, count in counts.items():
        pipeline.hincrby(keys.JOB_RUNTIME, f"{prefix}|count", count)
        pipeline.hincrbyfloat(keys.JOB_RUNTIME, f"{prefix}|sum", sums[prefix])


@dataclass
class RunTimes:
    """One (type, status) series: cumulative bucket counts, as Prometheus exposes them."""

    per_bucket: dict[str, int] = field(default_factory=dict)
    count: int = 0
    total: float = 0.0

    def cumulative(self) -> list[tuple[str, int]]:
        running = 0
        out: list[tuple[str, int]] = []
        for bound in (*BUCKETS, math.inf):
            label = bound_label(bound)
            running += self.per_bucket.get(label, 0)
            out.append((label, running))
        return out


def parse(raw: Mapping[Any, Any]) -> dict[tuple[str, str], RunTimes]:
    """The hash as read by HGETALL (bytes or str) -> one `RunTimes` per (type, status)."""
    series: dict[tuple[str, str], RunTimes] = {}
    for raw_field, raw_value in raw.items():
        job_type, status, part = as_text(raw_field).rsplit("|", 2)
        entry = series.setdefault((job_type, status), RunTimes())
        value = as_text(raw_value)
        if part == "count":
            entry.count = int(value)
        elif part == "sum":
            entry.total = float(value)
        elif part.startswith("le="):
            entry.per_bucket[part[3:]] = int(value)
    return series
