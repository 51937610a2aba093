"""`REDIS_MIN_REPLICAS_ACK`: a submission is answered 2xx only once that many replicas hold it.

Wraps the routes that create or change what a client must not lose — `POST /jobs`, `POST /batches`,
`POST /schedules`, `PATCH /schedules/{id}` — from outside: when one is about to answer 2xx, the
record it names (its `Location`, or the schedule in its path) is confirmed with
`core.replication.confirm_replicated` before the answer leaves. Not confirmed in time, the answer
becomes a 503 with `Retry-After`: the write may exist, so clients retry with the same
`Idempotency-Key` and get the original job (confirmed in its turn) rather than a second one.
"""

from __future__ import annotations

import logging
import re

import redis
from rq.job import Job
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import problem
from core import keys
from core.connection import REDIS_DOWN
from core.replication import NotReplicatedError, confirm_replicated

logger = logging.getLogger("app.replication")

_LOCATION = re.compile(r"^/(jobs|batches|schedules)/([^/?#]+)$")
_SCHEDULE_PATH = re.compile(r"^/schedules/([^/]+)$")
_RECORD_KEY = {"jobs": Job.key_for, "batches": keys.batch, "schedules": keys.schedule}


def written_key(method: str, path: str, status: int, headers: list[tuple[bytes, bytes]]) -> str | None:
    """The Redis key of the record a 2xx answer to a submission names; None for any other answer."""
    if status not in (200, 201, 202):
        return None
    if method == "POST" and path in ("/jobs", "/batches", "/schedules"):
        location = next((value.decode("latin-1") for name, value in headers if name.lower() == b"location"), "")
        found = _LOCATION.match(location)
        if found is None or found.group(1) != path[1:]:
            return None
        return str(_RECORD_KEY[found.group(1)](found.group(2)))
    if method == "PATCH" and (found := _SCHEDULE_PATH.match(path)):
        return keys.schedule(found.group(1))
    return None


class ReplicaAckMiddleware:
    def __init__(self, app: ASGIApp, replicas: int, timeout: float) -> None:
        self.app = app
        self.replicas = replicas
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PATCH"):
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_confirmed(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the body of an answer replaced by a 503
            if message["type"] == "http.response.start":
                key = written_key(scope["method"], scope["path"], message["status"], message.get("headers", []))
                if key is not None and (refusal := await self._refusal(scope, key)) is not None:
                    replaced = True
                    await refusal(scope, receive, send)
                    return
            await send(message)

        await self.app(scope, receive, send_confirmed)

    async def _refusal(self, scope: Scope, key: str) -> ASGIApp | None:
        store = scope["app"].state.store
        try:
            await confirm_replicated(store.aio, key, self.replicas, self.timeout)
        except NotReplicatedError as exc:
            logger.warning("%s %s answered 503: %s", scope["method"], scope["path"], exc)
            return problem(
                503,
                "not-replicated",
                "Service unavailable",
                f"The write was not confirmed by {self.replicas} replica(s) within {self.timeout:g} s "
                f"({exc}); it may exist. Retry with the same Idempotency-Key.",
                headers={"Retry-After": "2"},
            )
        except REDIS_DOWN as exc:
            logger.warning(
                "%s %s answered 503, Redis unavailable while confirming: %s", scope["method"], scope["path"], exc
            )
            return problem(
                503,
                "redis-unavailable",
                "Service unavailable",
                "The job store (Redis) became unreachable before the write was confirmed; it may exist. "
                "Retry with the same Idempotency-Key.",
                headers={"Retry-After": "5"},
            )
        except redis.RedisError as exc:  # WAIT refused (some managed servers), an ACL...: a setup problem, said loudly
            logger.error("%s %s answered 503, write not confirmed: %r", scope["method"], scope["path"], exc)
            return problem(
                503,
                "not-replicated",
                "Service unavailable",
                "The write could not be confirmed on the replicas (see the service's log); it may exist. "
                "Retry with the same Idempotency-Key.",
                headers={"Retry-After": "5"},
            )
        return None
