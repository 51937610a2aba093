"""A batch's callback whose worker is SIGKILLed while the receiver holds its POST: delivery is at least
once (API.md section 7), so the receiver gets it again from the retried delivery job, with the same
signed bytes and the next `X-Callback-Attempt`: a receiver that counts deliveries by batch id and
attempt, or treats batch id + status as idempotent, sees one callback. The batch still ended once, with
one delivery job."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import redis

from core import keys, signature
from tests.factories import noop_job
from tests.integration.test_batches import wait_ended
from tests.integration.test_callbacks import SECRET, WORKER_ENV, Delivery, Receiver
from tests.integration.test_spine import view
from tests.reliability.test_chaos_features import api, chaos_web  # noqa: F401
from tests.support.procs import ProcessFactory, wait_for
from tests.support.replies import text


class HeldReceiver(Receiver):
    """Records every POST; holds the first one unanswered until `release` is set."""

    release: threading.Event


@pytest.fixture
def held_receiver() -> Iterator[HeldReceiver]:
    state = HeldReceiver()
    state.release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.deliveries.append(Delivery(time.monotonic(), dict(self.headers.items()), body))
            if len(state.deliveries) == 1:
                state.release.wait(60)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/batch-done"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


def test_a_callback_whose_worker_dies_mid_post_is_sent_again_with_the_same_bytes(
    api: httpx.Client,  # noqa: F811
    procs: ProcessFactory,
    rclient: redis.Redis,
    held_receiver: HeldReceiver,
    worker_mode: str,
) -> None:
    procs.env.update(**WORKER_ENV)
    body = {"jobs": [noop_job()], "on_complete": {"type": "demo.batch_report"}, "callback_url": held_receiver.url}
    response = api.post("/batches", json=body)
    assert response.status_code == 202, response.text
    batch_id = response.json()["id"]
    worker = procs.worker()
    held_receiver.wait(1)  # the first POST arrived and is held: its worker now dies
    worker.kill_group()
    held_receiver.release.set()
    procs.worker()

    [first, second] = held_receiver.wait(2, timeout=60)
    wait_for(lambda: api.get(f"/batches/{batch_id}").json()["callback"]["delivered"], 30, what="delivery recorded")
    assert first.body == second.body and signature.verify(second.body, second.headers["X-Signature"], SECRET)
    assert (first.headers["X-Job-Id"], second.headers["X-Job-Id"]) == (batch_id, batch_id)
    assert (first.headers["X-Callback-Attempt"], second.headers["X-Callback-Attempt"]) == ("1", "2")
    ended = wait_ended(api, batch_id, timeout=10)
    assert ended["status"] == "finished" and ended["callback"]["attempts"] == 2
    assert sum(int(n) for n in rclient.hvals(keys.BATCHES_ENDED)) == 1
    delivery = view(api, text(rclient.hget(keys.batch(batch_id), "callback_job_id")))
    assert delivery["status"] == "finished" and delivery["attempt"] == 2
    [lost] = [m["message"] for m in delivery["messages"] if "lost" in m["message"]]
    assert lost.startswith("attempt 1 lost: worker died while running the job; retrying"), lost
    assert len(held_receiver.deliveries) == 2
