"""rq-dashboard at `/dashboard`, served by the web process (on Heroku only `web` receives HTTP).

- rq-dashboard is a Flask blueprint; a2wsgi runs it in a small thread pool, off the event loop.
- It uses the API's own blocking Redis client (`store.sync`, built by `core.connection.sync_redis`:
  timeouts, TLS options), never a connection of its own per request.
- Job data is JSON: rq-dashboard 0.9.0 passes its configured serializer in some places only, so
  the RQ classes it names are swapped for ones that default to the JSON serializer.
- HTTP basic auth (`DASHBOARD_USERNAME`/`DASHBOARD_PASSWORD`, constant-time comparison) guards
  every path below `/dashboard`, static files and state-changing POSTs included, before Flask
  sees the request. With API keys configured and no dashboard credentials the dashboard is
  disabled (404), never open.

`app/dashboard_service.py` serves the same dashboard as a service of its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import secrets
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any, cast

import redis
import rq_dashboard
import rq_dashboard.web as dashboard_web
from a2wsgi import WSGIMiddleware
from flask import Flask, abort, current_app, request
from rq import Queue, Worker, requeue_job
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import problem
from app.store import JobStore
from core.connection import display_address
from core.queues import QUEUE_NAMES, SERIALIZER, JsonJob, make_queue
from core.settings import Settings

logger = logging.getLogger("app.dashboard")

PATH = "/dashboard"
REALM = "jobs dashboard"


class Access(Enum):
    OPEN = "open"
    PROTECTED = "protected"
    DISABLED = "disabled"


def access(settings: Settings) -> Access:
    username, password = settings.dashboard_username, settings.dashboard_password.get_secret_value()
    if username and password:
        return Access.PROTECTED
    if username or password or settings.api_keys.strip():
        return Access.DISABLED  # half-configured credentials, or an API that needs keys: fail closed
    return Access.OPEN


# -- rq-dashboard with the JSON serializer ------------------------------------------------------


def _json_defaults(options: dict[str, Any]) -> dict[str, Any]:
    return {
        **options,
        "job_class": options.get("job_class") or JsonJob,
        "serializer": options.get("serializer") or SERIALIZER,
    }


class _JSONQueue(Queue):
    def __init__(self, name: str = "default", **kwargs: Any) -> None:
        super().__init__(name, **_json_defaults(kwargs))


class _JSONWorker(Worker):
    def __init__(self, queues: Any, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(queues, name, **_json_defaults(kwargs))


def _requeue_json_job(job_id: str, connection: redis.Redis, serializer: Any = None) -> Job:
    return requeue_job(job_id, connection=connection, serializer=serializer or SERIALIZER)


def _use_json_serializer() -> None:
    """Make every job lookup in rq-dashboard's views decode JSON (idempotent)."""
    dashboard_web.config.serializer = SERIALIZER
    dashboard_web.Job = JsonJob
    dashboard_web.Queue = _JSONQueue
    dashboard_web.Worker = _JSONWorker
    dashboard_web.requeue_job = _requeue_json_job


def build_flask_app(connection: Callable[[], redis.Redis], settings: Settings) -> Flask:
    """rq-dashboard's blueprint on a Flask app of its own, reading Redis through `connection()`."""
    _use_json_serializer()
    # Its templates link both the app's and the blueprint's /static: both serve rq-dashboard's files.
    flask_app = Flask("jobs_dashboard", static_folder=str(Path(rq_dashboard.blueprint.root_path) / "static"))
    flask_app.config.update(RQ_DASHBOARD_REDIS_URL=(display_address(settings),))
    flask_app.register_blueprint(rq_dashboard.blueprint, url_prefix="")
    # rq-dashboard opens a new connection from RQ_DASHBOARD_REDIS_URL on every request that names
    # an instance number; replace that hook with one that hands out the service's client.
    hooks = flask_app.before_request_funcs.get(rq_dashboard.blueprint.name, [])
    hooks[:] = [hook for hook in hooks if hook is not dashboard_web.push_rq_connection]

    listed: list[bool] = []

    @flask_app.before_request
    def use_service_connection() -> None:
        instance = (request.view_args or {}).get("instance_number")
        if instance not in (None, 0):
            abort(404)
        client = connection()
        if not listed:
            # RQ lists a queue only once a job was enqueued to it; show the service's queues from the start.
            client.sadd(Queue.redis_queues_keys, *(make_queue(name, client).key for name in QUEUE_NAMES))
            listed.append(True)
        current_app.redis_conn = client  # type: ignore[attr-defined]

    @flask_app.errorhandler(NoSuchJobError)
    def no_such_job(exc: NoSuchJobError) -> tuple[str, int]:
        return "No such job (it never existed or has expired)", 404

    @flask_app.errorhandler(InvalidJobOperation)
    def invalid_operation(exc: InvalidJobOperation) -> tuple[str, int]:
        return "The job's state does not allow that (only failed jobs can be requeued)", 409

    return flask_app


# -- access control -------------------------------------------------------------------------------


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


class BasicAuthMiddleware:
    """401 unless the request carries the configured user and password; compared in constant time."""

    def __init__(self, app: ASGIApp, username: str, password: str, realm: str = REALM) -> None:
        self.app = app
        self._username = _digest(username)
        self._password = _digest(password)
        self.realm = realm

    def authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        username, colon, password = decoded.partition(":")
        user_ok = secrets.compare_digest(_digest(username), self._username)
        password_ok = secrets.compare_digest(_digest(password), self._password)
        return bool(colon) and user_ok and password_ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"authorization"), None)
        if self.authorized(header):
            await self.app(scope, receive, send)
            return
        response = problem(
            401,
            "unauthorized",
            "Authentication required",
            "The dashboard needs HTTP basic auth (DASHBOARD_USERNAME / DASHBOARD_PASSWORD).",
            headers={"WWW-Authenticate": f'Basic realm="{self.realm}", charset="UTF-8"'},
        )
        await response(scope, receive, send)


async def _disabled(scope: Scope, receive: Receive, send: Send) -> None:
    response = problem(
        404,
        "dashboard-disabled",
        "Dashboard disabled",
        "The dashboard needs credentials here: set DASHBOARD_USERNAME and DASHBOARD_PASSWORD.",
    )
    await response(scope, receive, send)


def dashboard_app(
    connection: Callable[[], redis.Redis], settings: Settings, *, require_credentials: bool = False
) -> ASGIApp:
    """The dashboard as an ASGI app, guarded as `settings` say; `require_credentials` refuses to run it open."""
    mode = access(settings)
    if mode is Access.OPEN and require_credentials:
        mode = Access.DISABLED
    if mode is Access.DISABLED:
        logger.warning("dashboard disabled: set both DASHBOARD_USERNAME and DASHBOARD_PASSWORD to serve it")
        return _disabled
    wsgi = cast(ASGIApp, WSGIMiddleware(build_flask_app(connection, settings), workers=4))  # type: ignore[arg-type]
    if mode is Access.OPEN:
        logger.warning("dashboard open without credentials: set DASHBOARD_USERNAME and DASHBOARD_PASSWORD")
        return wsgi
    return BasicAuthMiddleware(wsgi, settings.dashboard_username, settings.dashboard_password.get_secret_value())


def mount_dashboard(app: Starlette, settings: Settings) -> None:
    """Serve rq-dashboard under `/dashboard` of the API app, through the app's own Redis client."""

    def connection() -> redis.Redis:
        store: JobStore = app.state.store
        return store.sync

    app.mount(PATH, dashboard_app(connection, settings), name="dashboard")
