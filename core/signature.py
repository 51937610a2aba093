"""Signing completion callbacks, and checking a signature on the receiving side.

The service sends `X-Signature: sha256=<hex HMAC-SHA256 of the raw request body>`, keyed
with `CALLBACK_SECRET`. A receiver checks it over the exact bytes it received, before
parsing them. This module needs nothing but the standard library: copy it into a receiver.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Signature"
SCHEME = "sha256="


def sign(body: bytes, secret: str | bytes) -> str:
    """The `X-Signature` value for `body`."""
    return SCHEME + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str | None, secret: str | bytes) -> bool:
    """True when `signature` (the `X-Signature` header) signs `body` with `secret`; constant-time."""
    if not signature or not _key(secret):
        return False
    return hmac.compare_digest(sign(body, secret).encode(), signature.strip().encode())


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret
