"""`Idempotency-Key`: the same key and body within IDEMPOTENCY_TTL give the same job, once.

The key is claimed in the same Redis transaction that enqueues the job (WATCH on the claim,
MULTI/EXEC: Redis's check-and-set), so concurrent identical requests on any number of web
processes create exactly one job. Claims are scoped per owner: "anonymous" until API keys
exist, then the API key's name (set `request.state.owner`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from app.errors import ValidationFailedError
from jobs import keys

HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 255
ANONYMOUS = "anonymous"


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


def request_owner(request: Request) -> str:
    """Whose keys these are: the authenticated API key's name once auth exists, else "anonymous"."""
    owner = getattr(request.state, "owner", None)
    return str(owner) if owner else ANONYMOUS


def fingerprint(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim_for(request: Request, body: dict[str, Any], ttl: int) -> Claim | None:
    """The claim this request makes, or None without the header; 422 for a malformed key."""
    value = request.headers.get(HEADER)
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_KEY_CHARS or not all(" " <= char <= "~" for char in value):
        raise ValidationFailedError.field(
            ["header", HEADER], f"must be 1 to {MAX_KEY_CHARS} printable ASCII characters"
        )
    digest = hashlib.sha256(value.encode()).hexdigest()
    return Claim(keys.idempotency(request_owner(request), digest), fingerprint(body), ttl)
