"""The Celery peer for the throughput figure (runs in .venv-bench only): a no-op task, Redis broker
and Redis result backend (results stored, as RQ stores them)."""

from __future__ import annotations

import os

from celery import Celery  # type: ignore[import-not-found]

broker = os.environ["BENCH_CELERY_BROKER"]
backend = os.environ["BENCH_CELERY_BACKEND"]
app = Celery("bench", broker=broker, backend=backend)
app.conf.update(
    task_serializer="json", result_serializer="json", accept_content=["json"], worker_hijack_root_logger=False
)


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]  # celery is absent where mypy runs (.venv)
def noop() -> None:
    return None


if __name__ == "__main__":  # enqueue N tasks: python -m bench.celery_app N
    import sys

    for _ in range(int(sys.argv[1])):
        noop.delay()
