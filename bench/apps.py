"""The baselines the web figures are divided by, served exactly like the Procfile's web line.

- `hello`: a bare Starlette `GET /hello` — the ceiling of the server stack itself.
- `naive`: the routes as first written: `Queue.enqueue` and `Job.fetch` (blocking redis-py)
  in Starlette's threadpool, with the same validation and job view as the service.
"""

from __future__ import annotations

from typing import Any

from rq import Queue, Retry
from rq.job import Job
from rq.results import Result
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.body import read_json_object
from app.submission import parse_submission
from app.views import job_view
from core.connection import sync_redis
from core.meta import MESSAGES, PROGRESS, TYPE
from core.queues import QUEUE_NAMES, SERIALIZER
from core.settings import get_settings
from core.submitting import retry_intervals
from jobs.catalog import registry


async def hello(request: Request) -> Response:
    return JSONResponse({"hello": "world"})


hello_app = Starlette(routes=[Route("/hello", hello)])

_settings = get_settings()
_redis = sync_redis(_settings)
#: Stock RQ, as a naive route would use it: RQ's own `Job` class (not the service's `JsonJob`).
_queues: dict[str, Queue] = {name: Queue(name, connection=_redis, serializer=SERIALIZER) for name in QUEUE_NAMES}


async def naive_submit(request: Request) -> Response:
    body = await read_json_object(request, _settings.max_body_bytes)
    sub = parse_submission(body, registry, _settings)

    def enqueue() -> Job:
        retry = Retry(sub.retries, retry_intervals(sub.retries, 5, 600)) if sub.retries else None
        return _queues[sub.queue].enqueue_call(
            sub.spec.func_path, kwargs=sub.args, timeout=sub.timeout, result_ttl=_settings.result_ttl,
            failure_ttl=_settings.failure_ttl, description=sub.description, retry=retry,
            meta={TYPE: sub.spec.name, PROGRESS: 0, MESSAGES: []},
        )  # fmt: skip

    job = await run_in_threadpool(enqueue)
    return JSONResponse(job_view(job), status_code=202, headers={"Location": f"/jobs/{job.id}"})


def naive_status(request: Request) -> Response:  # a plain def: Starlette runs it in its threadpool
    job = Job.fetch(request.path_params["job_id"], connection=_redis, serializer=SERIALIZER)
    result: Result | None = job.latest_result()
    position: Any = job.get_position() if job.get_status() == "queued" else None
    return JSONResponse(job_view(job, result=result, position=position))


naive_app = Starlette(
    routes=[Route("/jobs", naive_submit, methods=["POST"]), Route("/jobs/{job_id}", naive_status, methods=["GET"])]
)
naive_app.state.settings = _settings  # what the service's body reader looks up (app/body.py)
