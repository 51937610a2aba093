"""`Idempotency-Key`: the same key and body within IDEMPOTENCY_TTL give the same job, once.

The key is claimed in the same script run that enqueues the job (`app.scripts`: a check-and-set
that Redis runs alone), so concurrent identical requests on any number of web
processes create exactly one job. Claims are scoped per owner: "anonymous" until API keys
exist, then the API key's name.

With result reuse (`cache_ttl`, `core.reuse`) the claim is checked first; a new claim on a request
answered with an identical existing job names that job (the script rewrites the stored value's `job`),
so a retry with the same key gets the same answer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from app.errors import ValidationFailedError
from core import keys

HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 255


@dataclass(frozen=True)
class Claim:
    key: str  # the Redis key
    fingerprint: str  # of the request body
    ttl: int

    def value(self, job_id: str) -> str:
        return json.dumps({"job": job_id, "body": self.fingerprint})

    def job_for(self, stored: bytes | str) -> str:
        """The job id a stored claim names; 422 when it was made with another body."""
        record = json.loads(stored)
        if record.get("body") != self.fingerprint:
            raise ValidationFailedError.field(
                ["header", HEADER], "this key was already used with a different request body; use a new key"
            )
        return str(record["job"])


def fingerprint(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim_for(request: Request, body: dict[str, Any], ttl: int, owner: str) -> Claim | None:
    """The claim `owner` (the caller's API key name) makes with this request, or None without the
    header; 422 for a malformed key."""
    value = request.headers.get(HEADER)
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_KEY_CHARS or not all(" " <= char <= "~" for char in value):
        raise ValidationFailedError.field(
            ["header", HEADER], f"must be 1 to {MAX_KEY_CHARS} printable ASCII characters"
        )
    digest = hashlib.sha256(value.encode()).hexdigest()
    return Claim(keys.idempotency(owner, digest), fingerprint(body), ttl)
