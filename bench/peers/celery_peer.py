"""The Celery peer (runs in .venv-bench/celery): `celery -A bench.peers.celery_peer worker --pool=solo`
(or `--pool=threads`) is its worker. Redis broker in database 0, Redis result backend in database 1
(results kept, as RQ keeps them); the client waits with `AsyncResult.get()` (pub/sub).
"""
# mypy: disable-error-code="import-not-found,untyped-decorator,no-untyped-call,no-any-return,misc"

from __future__ import annotations

import time

from celery import Celery

from bench.peers.driver import SLEEP, main, url

app = Celery("bench", broker=url(0), backend=url(1))
app.conf.update(
    task_serializer="json", result_serializer="json", accept_content=["json"], worker_hijack_root_logger=False,
    result_expires=3600,
)  # fmt: skip


@app.task(name="noop")
def noop() -> None:
    return None


@app.task(name="sleep")
def sleep() -> None:
    time.sleep(SLEEP)


TASKS = {"noop": noop, "sleep": sleep}


class Client:
    def enqueue(self, kind: str) -> None:
        TASKS[kind].delay()

    def round_trip(self) -> None:
        noop.delay().get(timeout=30)

    def close(self) -> None:
        app.close()


if __name__ == "__main__":
    main(Client)
