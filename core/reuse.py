"""Result reuse: which submissions are identical, and what the submission script needs to find the
job an identical one made.

Two submissions are identical when the same owner asks for the same job type on the same queue with
the same arguments, compared as canonical JSON (keys sorted, no whitespace, a number written one way:
`1`, `1.0` and `1e0` are one number). Every submission records its job under the digest of those four
(`keys.reuse`); one that allows reuse (`cache_ttl`) first looks there. The rule of what may be reused
(waiting, running, or finished less than `cache_ttl` seconds ago) is written once, in the submission
script (`core.rqadapter.scripts`), which looks up and writes in one step.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rq.utils import utcformat

from core import keys

#: Floats beyond this are not all integers exactly: kept as floats.
_EXACT_INTEGERS = 2**53


def _canonical_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_INTEGERS:
        return int(value)
    if isinstance(value, dict):
        return {key: _canonical_numbers(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical_numbers(item) for item in value]
    return value


def canonical_json(value: Any) -> str:
    """`value` as canonical JSON: sorted keys, no whitespace, integral numbers without a fraction."""
    return json.dumps(_canonical_numbers(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def reuse_key(owner: str, job_type: str, queue: str, args: dict[str, Any]) -> str:
    """The Redis key under which identical submissions (`owner`, `job_type`, `queue`, `args`) meet."""
    identity = canonical_json([owner, job_type, queue, args])
    return keys.reuse(hashlib.sha256(identity.encode()).hexdigest())


@dataclass(frozen=True)
class Reuse:
    """A submission's part in result reuse: it records its job under `key` for `key_ttl` seconds, and
    with `cache_ttl` it first looks for a job to reuse (unless `refresh`: then it only records)."""

    key: str
    key_ttl: int  # at most RESULT_TTL: the entry never outlives the result of a job that ended after it was set
    cache_ttl: int | None = None  # None: record only, never reuse
    refresh: bool = False  # the client asked for a new job (Cache-Control: no-cache) and to record it

    @property
    def looks_up(self) -> bool:
        return self.cache_ttl is not None and not self.refresh

    def fresh_since(self, now: datetime) -> str:
        """The oldest `ended_at` (as RQ writes it, so the script compares strings) of a finished job still
        fresh for this submission; '' when it reuses nothing."""
        if self.cache_ttl is None:
            return ""
        return utcformat(now - timedelta(seconds=self.cache_ttl))
