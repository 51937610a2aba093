"""Run with no `OTEL_*` variable: submit jobs through the web app (a `traceparent` sent), run them with the
forking worker (its horse included) and the concurrent worker, and print which OpenTelemetry modules
any of these processes imported beyond what `import redis` imports by itself. An audit hook sees every
import, in this process and in a fork of it.

(redis-py imports `opentelemetry.sdk.metrics`, when installed, for its own optional metrics: those
modules come with `import redis`, tracing or not, and are left out; the tracing SDK, the exporter and
`core.tracing.sdk` are not among them.)"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

IMPORTS = Path(tempfile.mkdtemp()) / "imports"


WATCHED = ("opentelemetry", "core.tracing.sdk")


def watch_imports(event: str, args: tuple[Any, ...]) -> None:
    if event == "import" and str(args[0]).startswith(WATCHED) and str(args[0]) not in sys.modules:
        with IMPORTS.open("a") as out:
            out.write(f"{os.getpid()} {args[0]}\n")


def main() -> None:
    assert not any(key.startswith("OTEL_") for key in os.environ), "run without OTEL_* variables"
    import redis  # noqa: F401  (with what it imports by itself, before the hook)

    sys.addaudithook(watch_imports)
    from rq.job import Job
    from starlette.testclient import TestClient

    from app.main import app
    from core.connection import sync_redis
    from core.queues import SERIALIZER
    from core.settings import get_settings
    from workers.concurrent import ConcurrentWorker
    from workers.worker import ServiceWorker

    header = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    connection = sync_redis(get_settings())
    ids = []
    with TestClient(app) as client:
        for worker_class in (ServiceWorker, ConcurrentWorker):
            response = client.post("/jobs", json={"type": "demo.noop"}, headers={"traceparent": header})
            assert response.status_code == 202, response.text
            assert "trace_id" not in response.json()
            ids.append(response.json()["id"])
            worker_class(["high", "default", "low"], connection=connection).work(burst=True)
    finished = sum(
        Job.fetch(job_id, connection=connection, serializer=SERIALIZER).get_status() == "finished" for job_id in ids
    )
    imported = IMPORTS.read_text().splitlines() if IMPORTS.exists() else []
    assert "opentelemetry.sdk.trace" not in sys.modules and "opentelemetry.exporter" not in sys.modules
    print(f"finished: {finished} of {len(ids)}; OpenTelemetry modules imported: {', '.join(imported) or 'none'}")


if __name__ == "__main__":
    main()
