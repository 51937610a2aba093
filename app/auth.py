"""API keys: `Authorization: Bearer <key>` on every route but the public ones.

`API_KEYS="web=k1,mobile=k2,ops=sha256:9f86…"` names each key; `ADMIN_KEYS="ops"` marks the
names whose keys see every job. Keys are kept as SHA-256 digests only and a presented key is
compared with every digest in constant time. With no keys configured the service is open
(everyone is the admin `anonymous`) and says so loudly at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError, BaseUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from app.errors import problem
from core.settings import Settings

logger = logging.getLogger("app.auth")

#: Paths served without a key: probes, the API description (it holds no data), and /metrics and
#: /dashboard, which have their own credentials (METRICS_TOKEN, DASHBOARD_USERNAME/PASSWORD); the console's
#: pages and files and `/`, its redirect (they hold no data: the page asks for a key and sends it with each
#: API request).
PUBLIC_PATHS = frozenset(
    {"/", "/healthz", "/readyz", "/openapi.json", "/docs", "/docs/init.js", "/metrics", "/dashboard", "/console"}
)
PUBLIC_PREFIXES = ("/docs/static/", "/dashboard/", "/console/")
#: Under a public prefix, but data: the console's stream of job changes asks for a key.
KEYED_PATHS = frozenset({"/console/changes"})
REALM = "jobs"
OPEN_NAME = "anonymous"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class Principal(BaseUser):
    """Who is calling: the name of their key (recorded as a job's owner) and whether it is an admin key."""

    name: str
    admin: bool = False

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.name


@dataclass(frozen=True)
class _Entry:
    name: str
    digest: bytes
    admin: bool


class KeyRing:
    """The configured keys, as digests; `match()` finds the entry for a presented key."""

    def __init__(self, entries: Iterable[_Entry]) -> None:
        self.entries = tuple(entries)

    @property
    def open(self) -> bool:
        return not self.entries

    @classmethod
    def parse(cls, api_keys: str, admin_keys: str = "") -> KeyRing:
        """Parse API_KEYS / ADMIN_KEYS; raises ValueError on anything ambiguous (never logs a key)."""
        admins = {name.strip() for name in admin_keys.split(",") if name.strip()}
        entries: list[_Entry] = []
        for position, item in enumerate((part.strip() for part in api_keys.split(",")), start=1):
            if not item:
                continue
            name, sep, secret = item.partition("=")
            name, secret = name.strip(), secret.strip()
            if not sep or not secret:
                raise ValueError(f"API_KEYS entry {position} must be name=key")
            if not _NAME.match(name):
                raise ValueError(f"API_KEYS entry {position}: name {name!r} must match {_NAME.pattern}")
            if secret.lower().startswith("sha256:"):
                hex_digest = secret[len("sha256:") :]
                if not _HEX_DIGEST.match(hex_digest):
                    raise ValueError(f"API_KEYS entry {name!r}: sha256: must be followed by 64 hex digits")
                digest = bytes.fromhex(hex_digest)
            else:
                digest = hashlib.sha256(secret.encode()).digest()
            entries.append(_Entry(name, digest, name in admins))
        names = [entry.name for entry in entries]
        if len(set(names)) != len(names):
            raise ValueError("API_KEYS names must be unique")
        if len({entry.digest for entry in entries}) != len(entries):
            raise ValueError("API_KEYS holds the same key under two names")
        if unknown := admins - set(names):
            raise ValueError(f"ADMIN_KEYS names {sorted(unknown)} that are not in API_KEYS")
        return cls(entries)

    def match(self, presented: str) -> Principal | None:
        """The principal whose key is `presented` (a header value: latin-1 decoded bytes), in constant time."""
        digest = hashlib.sha256(presented.encode("latin-1")).digest()  # header bytes as sent
        found: _Entry | None = None
        for entry in self.entries:  # no early exit: the time taken does not depend on which entry matched
            if hmac.compare_digest(digest, entry.digest):
                found = entry
        return Principal(found.name, found.admin) if found else None


class AuthProblem(AuthenticationError):
    def __init__(self, detail: str, challenge: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.challenge = challenge


def is_public(path: str) -> bool:
    return (path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)) and path not in KEYED_PATHS


class BearerKeyBackend(AuthenticationBackend):
    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        if self.keyring.open:
            return AuthCredentials(["jobs", "admin"]), Principal(OPEN_NAME, admin=True)
        if is_public(conn.url.path):
            return None
        header = conn.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthProblem(
                "send your API key as 'Authorization: Bearer <key>'",
                f'Bearer realm="{REALM}"',
            )
        principal = self.keyring.match(token.strip())
        if principal is None:
            raise AuthProblem(
                "the API key is not valid",
                f'Bearer realm="{REALM}", error="invalid_token", error_description="the API key is not valid"',
            )
        return AuthCredentials(["jobs", "admin"] if principal.admin else ["jobs"]), principal


def on_auth_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    assert isinstance(exc, AuthProblem)
    return problem(401, "unauthorized", "Unauthorized", exc.detail, headers={"WWW-Authenticate": exc.challenge})


def principal(request: Request) -> Principal:
    """The caller of a protected route (the auth middleware has run)."""
    user = request.scope.get("user")
    if not isinstance(user, Principal):  # a public route has no principal; protected routes always do
        raise RuntimeError(f"{request.url.path} is served without authentication")
    return user


def auth_middleware(settings: Settings) -> Middleware:
    keyring = KeyRing.parse(settings.api_keys, settings.admin_keys)
    if keyring.open:
        logger.warning(
            "!!! API_KEYS is empty: the service is OPEN — anyone who reaches it can submit, read and cancel "
            "every job. Set API_KEYS (and ADMIN_KEYS) before exposing it. !!!"
        )
    else:
        admins = sum(entry.admin for entry in keyring.entries)
        logger.info("API keys configured: %d (%d admin)", len(keyring.entries), admins)
    return Middleware(AuthenticationMiddleware, backend=BearerKeyBackend(keyring), on_error=on_auth_error)
