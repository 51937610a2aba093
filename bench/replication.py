"""`POST /jobs` with `REDIS_MIN_REPLICAS_ACK=1` against a local replica, as a ratio to the same run without.

Section `replication` of `python -m bench`, or alone: `python -m bench.replication` (its own
primary and replica). A replica of the bench's server is started beside it; two web processes
(the Procfile's line) serve the same primary, one waiting for the replica's acknowledgement of
each submission and one not, measured in alternating rounds so the shared machine's other load
hits both alike.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import load
from bench.common import Bench, Figure, compact, median
from stack.redis_server import EmbeddedRedis

SUBMIT_BODY = json.dumps({"type": "demo.noop"}).encode()
CONNECTIONS = 32
RUNS = 3


def start_replica(bench: Bench, data_dir: Path) -> EmbeddedRedis:
    """A replica of the bench's server, in sync before it returns."""
    server = bench.server
    replica = EmbeddedRedis(data_dir, appendonly=False, extra_args=("--replicaof", server.host, str(server.port)))
    replica.start()
    with replica.client() as client:
        for _ in range(200):
            if client.info("replication").get("master_link_status") == "up":
                return replica
            time.sleep(0.05)
    raise RuntimeError("the replica did not sync with the bench's server")


def run(bench: Bench) -> None:
    print(f"replication: {CONNECTIONS} connections, {RUNS} rounds x {bench.seconds:g}s per mode", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-replica-") as data_dir:
        replica = start_replica(bench, Path(data_dir))
        try:
            urls = {
                "no wait": bench.web("web-replication-off", "app.main:app")[1],
                "wait 1": bench.web("web-replication-on", "app.main:app", REDIS_MIN_REPLICAS_ACK="1")[1],
            }
            for url in urls.values():
                load.run(f"{url}/jobs", seconds=1, connections=CONNECTIONS, method="POST", body=SUBMIT_BODY)
            runs: dict[str, list[load.LoadResult]] = {name: [] for name in urls}
            with bench.client() as client:
                for _ in range(RUNS):
                    for name, url in urls.items():
                        client.flushdb()
                        compact(client)
                        result = load.run(
                            f"{url}/jobs",
                            seconds=bench.seconds,
                            connections=CONNECTIONS,
                            method="POST",
                            body=SUBMIT_BODY,
                        )
                        if result.errors:
                            raise RuntimeError(f"{name}: {result.errors} errors under load")
                        runs[name].append(result)
        finally:
            bench.stop_all()
            replica.stop()
    on, off = (median([r.rps for r in runs[name]]) for name in ("wait 1", "no wait"))
    p99 = median([r.p99_ms for r in runs["wait 1"]])
    bench.notes["replication_runs"] = "; ".join(
        f"{name}: {', '.join(f'{r.rps:,.0f}' for r in measured)} req/s" for name, measured in runs.items()
    )
    bench.add(
        Figure("replication", "POST /jobs, REDIS_MIN_REPLICAS_ACK=1 (local replica)", on, "req/s",
               "same, REDIS_MIN_REPLICAS_ACK=0", off, note=f"p99 {p99:.1f} ms; runs {bench.notes['replication_runs']}")
    )  # fmt: skip


def main() -> int:
    seconds = float(os.environ.get("BENCH_SECONDS", "4"))
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as data_dir:
        server = EmbeddedRedis(Path(data_dir)).start()
        bench = Bench(server, seconds)
        try:
            run(bench)
        finally:
            bench.stop_all()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
