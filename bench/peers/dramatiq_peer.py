"""The Dramatiq peer (runs in .venv-bench/dramatiq): `dramatiq bench.peers.dramatiq_peer --processes 1
--threads N` is its worker. Redis broker in database 0; with `BENCH_RESULTS=1` the Results middleware
stores every result in database 1 (Redis backend) and the client waits with `get_result(block=True)`.
Without it, nothing is kept once a message is acknowledged.
"""
# mypy: disable-error-code="import-not-found,untyped-decorator,no-untyped-call,no-any-return,misc"

from __future__ import annotations

import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from bench.peers.driver import RESULTS, SLEEP, main, url

broker = RedisBroker(url=url(0))
options = {}
if RESULTS:
    broker.add_middleware(Results(backend=RedisBackend(url=url(1)), result_ttl=3600 * 1000))
    options["store_results"] = True
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop", queue_name="default", **options)
def noop() -> None:
    return None


@dramatiq.actor(actor_name="sleep", queue_name="default", **options)
def sleep() -> None:
    time.sleep(SLEEP)


ACTORS = {"noop": noop, "sleep": sleep}


class Client:
    def enqueue(self, kind: str) -> None:
        ACTORS[kind].send()

    def round_trip(self) -> None:
        noop.send().get_result(block=True, timeout=30_000)

    def close(self) -> None:
        broker.close()


if __name__ == "__main__":
    main(Client)
