"""`python -m bench.peers [--quick] [--rounds N] [--only PEER ...]` (also `python -m bench peers ...`):
start a private valkey-server, run the workloads on the service and its peers, print every figure, and
write the peers section of docs/BENCHMARKS.md (in place, between its markers) and its plot.

`--quick`: fewer jobs and one round, for development. `--only dramatiq` reruns the service beside one
peer (a peer's name, or a system's key such as `arq-5ms`); such a run prints its figures but leaves the
document alone unless `--write` is given. `--from-saved` renders the last run's figures again (kept in
.data/bench), e.g. after the notes changed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import pickle
import tempfile
import time
from pathlib import Path

from bench.common import LOG_DIR, Bench
from bench.peers import report, rounds
from stack.redis_server import EmbeddedRedis

#: The last run's figures, kept so that the report can be rendered again without running anything.
SAVED = LOG_DIR / "peers-results.pickle"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer jobs, one round (development)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3; 1 with --quick)")
    parser.add_argument("--only", nargs="+", default=[], help="peers to run beside the service")
    parser.add_argument("--write", action="store_true", help="write docs/BENCHMARKS.md even for --quick/--only")
    parser.add_argument(
        "--from-saved", action="store_true", help=f"render the last run's figures again ({SAVED}), writing as it would"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.from_saved:
        results, context = pickle.loads(SAVED.read_bytes())
        if not context.finished:
            context = dataclasses.replace(context, finished=_utc(SAVED.stat().st_mtime))
        return _report(results, context, write=args.write or not (results.plan.quick or context.only))
    plan = rounds.QUICK if args.quick else rounds.FULL
    if args.rounds:
        plan = dataclasses.replace(plan, rounds=args.rounds)
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as data_dir:
        server = EmbeddedRedis(Path(data_dir)).start()
        bench = Bench(server, plan.web_seconds)
        try:
            server_version = report.server_version(bench)
            results = rounds.run(bench, plan, args.only)
        finally:
            bench.stop_all()
            server.stop()
    elapsed = time.perf_counter() - started
    context = report.Context(load_before, os.getloadavg(), elapsed, server_version, args.only, _utc(time.time()))
    SAVED.write_bytes(pickle.dumps((results, context)))
    return _report(results, context, write=args.write or not (args.quick or args.only))


def _utc(timestamp: float) -> str:
    return f"{datetime.datetime.fromtimestamp(timestamp, datetime.UTC):%Y-%m-%d %H:%M} UTC"


def _report(results: rounds.Results, context: report.Context, write: bool) -> int:
    text = report.section(results, context)
    print(text, flush=True)
    if write:
        path = report.write(text, report.svg(results))
        print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
