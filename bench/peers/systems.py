"""The systems compared: how each one's worker starts, how its client is driven, how the bench counts its
finished jobs (one cheap command on the server, polled), and the setting it runs at."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import redis

from bench.common import ROOT, Bench
from bench.peers import envs

#: Clients of the bench server by database number (peers keep results in database 1).
Clients = Mapping[int, redis.Redis]
#: Finished jobs of `total` queued, read from the server.
Counter = Callable[[Clients, int], int]
#: Jobs in flight at once in workload B, for every system.
IO_CONCURRENCY = 50


@dataclass(frozen=True)
class System:
    """One system at one setting (a peer with and without results are two systems)."""

    key: str  # what `--only` matches (or its peer's name)
    peer: str  # service, saq, dramatiq, arq, taskiq, celery, bullmq
    label: str
    results: bool  # keeps each job's result (and record) after it finished
    concurrency: int  # jobs in flight in workloads A and D
    setting: str  # the worker's command line settings, as stated in the report
    command: Callable[[int], str] | None  # the worker command line at a concurrency (None: the service's Procfile)
    done: Counter
    env: Mapping[str, str] = field(default_factory=dict)
    latency_jobs: int | None = None  # fewer jobs in workload D (a slow poller)
    sync: bool = False  # runs B's waits in threads (time.sleep) rather than on an event loop
    io: bool = True  # runs B (a pool that runs one job at a time cannot reach concurrency 50)
    drain_jobs: int | None = None  # fewer jobs in workload A (a slow drain)


def _finished(key: str) -> Counter:
    return lambda clients, total: int(clients[0].zcard(key))


def _left_in_zset(key: str) -> Counter:
    return lambda clients, total: total - int(clients[0].zcard(key))


def _left_in_hash(key: str) -> Counter:
    return lambda clients, total: total - int(clients[0].hlen(key))


def _result_keys(clients: Clients, total: int) -> int:
    return int(clients[1].dbsize())


def _bullmq_left(clients: Clients, total: int) -> int:
    client = clients[0]
    return total - int(client.llen("bull:bench:wait")) - int(client.llen("bull:bench:active"))


def _bin(peer: str) -> str:
    return str(envs.VENVS / peer / "bin")


SERVICE = System(
    "service", "service", "this service (Procfile worker)", True, 20, "WORKER_CONCURRENCY=20 (the default)", None,
    _finished("rq:finished:default"),
)  # fmt: skip
#: The service with everything new configured but unused (a schedule defined, a concurrency limit on another
#: job type; tracing and streamed output are off by default and stay unused).
SERVICE_FEATURED = System(
    "service-featured", "service", "this service, features configured, unused", True, 20,
    "WORKER_CONCURRENCY=20, TYPE_CONCURRENCY=demo.sleep=4, one schedule defined", None,
    _finished("rq:finished:default"), env={"TYPE_CONCURRENCY": "demo.sleep=4"},
)  # fmt: skip

_SAQ = "{bin}/saq bench.peers.saq_peer.settings"
_DRAMATIQ = "{bin}/dramatiq bench.peers.dramatiq_peer --processes 1 --threads {n}"
_ARQ = "{bin}/arq bench.peers.arq_peer.WorkerSettings"
_TASKIQ = "{bin}/taskiq worker bench.peers.taskiq_peer:broker --workers 1 --max-async-tasks {n} --log-level WARNING"
_CELERY = (
    "{bin}/celery -A bench.peers.celery_peer worker --pool={pool} --concurrency={n} --loglevel=warning "
    "--without-gossip --without-mingle --without-heartbeat"
)
_BULLMQ = "node bench/peers/bullmq/peer.js worker"


def _command(template: str, peer: str, **fields: str) -> Callable[[int], str]:
    return lambda n: template.format(bin=_bin(peer), n=n, **fields)


PEERS = (
    System("saq", "saq", "SAQ", True, 20, "concurrency 20", _command(_SAQ, "saq"),
           _left_in_zset("saq:default:incomplete")),
    System("saq-nores", "saq", "SAQ, no results (ttl=0)", False, 20, "concurrency 20", _command(_SAQ, "saq"),
           _left_in_zset("saq:default:incomplete"), env={"BENCH_RESULTS": "0"}),
    System("dramatiq", "dramatiq", "Dramatiq + Results", True, 8, "--processes 1 --threads 8 (default threads)",
           _command(_DRAMATIQ, "dramatiq"), _left_in_hash("dramatiq:default.msgs"), sync=True),
    System("dramatiq-nores", "dramatiq", "Dramatiq, no results", False, 8,
           "--processes 1 --threads 8 (default threads)", _command(_DRAMATIQ, "dramatiq"),
           _left_in_hash("dramatiq:default.msgs"), env={"BENCH_RESULTS": "0"}, sync=True),
    System("arq", "arq", "arq (default 0.5 s poll)", True, 10,
           "max_jobs 10 (default), poll_delay 0.5 s; A on 5,000 jobs, D on 40",
           _command(_ARQ, "arq"), _left_in_zset("arq:queue"), env={"BENCH_POLL": "0.5"}, latency_jobs=40,
           drain_jobs=5000),
    System("arq-5ms", "arq", "arq (5 ms poll)", True, 10, "max_jobs 10 (default), poll_delay 5 ms",
           _command(_ARQ, "arq"), _left_in_zset("arq:queue"), env={"BENCH_POLL": "0.005"}),
    System("arq-5ms-nores", "arq", "arq (5 ms poll), no results (keep_result=0)", False, 10,
           "max_jobs 10 (default), poll_delay 5 ms", _command(_ARQ, "arq"), _left_in_zset("arq:queue"),
           env={"BENCH_POLL": "0.005", "BENCH_RESULTS": "0"}),
    System("taskiq", "taskiq", "taskiq + taskiq-redis", True, 100, "--workers 1, --max-async-tasks 100 (default)",
           _command(_TASKIQ, "taskiq"), _result_keys),
    System("celery-solo", "celery", "Celery, solo pool", True, 1, "--pool=solo", _command(_CELERY, "celery",
           pool="solo"), _result_keys, sync=True, io=False),
    System("celery-threads", "celery", "Celery, threads pool", True, 8, "--pool=threads --concurrency=8",
           _command(_CELERY, "celery", pool="threads"), _result_keys, sync=True),
    System("bullmq", "bullmq", "BullMQ (Node)", True, 50, "concurrency 50", _command(_BULLMQ, "bullmq"),
           _finished("bull:bench:completed")),
    System("bullmq-nores", "bullmq", "BullMQ, no results (removeOnComplete)", False, 50, "concurrency 50",
           _command(_BULLMQ, "bullmq"), _bullmq_left, env={"BENCH_RESULTS": "0"}),
)  # fmt: skip


def peer_env(bench: Bench, system: System, concurrency: int) -> dict[str, str]:
    """What a peer's worker and client processes see: the server, the setting, where their code is."""
    env = {
        "BENCH_REDIS": bench.url.rsplit("/", 1)[0],
        "BENCH_RESULTS": "1",
        "BENCH_CONCURRENCY": str(concurrency),
        "PYTHONPATH": str(ROOT),
        **system.env,
    }
    if system.peer == "bullmq":
        env["NODE_PATH"] = str(envs.node_modules())
    return env


def install(system: System) -> None:
    """Make the peer's environment now (not inside a timed run)."""
    if system.peer == "bullmq":
        envs.node_modules()
    elif system.peer != "service":
        envs.python_env(system.peer)


class PeerClient:
    """A peer's own client, run in its own environment: one process per command (bench.peers.driver)."""

    def __init__(self, bench: Bench, system: System) -> None:
        self.bench = bench
        self.system = system

    def _run(self, *args: str) -> dict[str, object]:
        if self.system.peer == "bullmq":
            command = ["node", str(envs.BULLMQ_SOURCE / "peer.js"), *args]
        else:
            command = [f"{_bin(self.system.peer)}/python", "-m", f"bench.peers.{self.system.peer}_peer", *args]
        env = self.bench.env(**peer_env(self.bench, self.system, self.system.concurrency))
        out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        if out.returncode:
            raise RuntimeError(f"{self.system.key} {' '.join(args)}: {out.stderr[-2000:]}")
        result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
        return result

    def fill(self, kind: str, count: int) -> None:
        self._run("enqueue", kind, str(count))

    def submit_rate(self, count: int) -> float:
        return float(self._run("submit", str(count))["rate"])  # type: ignore[arg-type]

    def latencies(self, count: int) -> list[float]:
        return [float(ms) for ms in self._run("latency", str(count))["ms"]]  # type: ignore[attr-defined]
