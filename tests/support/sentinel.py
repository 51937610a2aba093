"""A primary, its replicas and three Sentinels on loopback: the embedded `valkey-server` in both roles.

The Sentinels watch the primary with a short `down-after-milliseconds`, so a SIGKILLed primary is
replaced within a few seconds. `wait_ready` returns once every Sentinel knows every replica and the
other Sentinels (they learn them from each other's hello messages, every 2 s): only then can they
agree on a failover.
"""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis

from stack.redis_server import EmbeddedRedis, free_port
from tests.support.procs import wait_for

MASTER = "mymaster"


class Replica(EmbeddedRedis):
    """A node started as a replica of `primary_port`."""

    def __init__(self, data_dir: Path, primary_port: int) -> None:
        super().__init__(data_dir, appendonly=False, extra_args=("--replicaof", "127.0.0.1", str(primary_port)))


class SentinelProcess(EmbeddedRedis):
    """`valkey-server <config> --sentinel`; the config file is its own (Sentinel rewrites it)."""

    def __init__(self, data_dir: Path, primary_port: int, down_after_ms: int, failover_timeout_ms: int) -> None:
        super().__init__(data_dir, appendonly=False)
        self.config = self.data_dir / "sentinel.conf"
        self.primary_port = primary_port
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    def command(self) -> list[str]:
        binary = super().command()[0]
        return [binary, str(self.config), "--sentinel"]

    def start(self, timeout: float = 10.0) -> SentinelProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndaemonize no\ndir {self.data_dir}\nlogfile {self.log_path}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {self.primary_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} {self.down_after_ms}\n"
            f"sentinel failover-timeout {MASTER} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {MASTER} 2\n"
        )
        super().start(timeout)
        return self


@dataclass
class SentinelCluster:
    """Start with `start()`, stop with `stop()`; `primary` follows the failovers `kill_primary` causes."""

    data_dir: Path
    replicas: int = 2
    down_after_ms: int = 1000
    failover_timeout_ms: int = 5000
    nodes: list[EmbeddedRedis] = field(default_factory=list)
    sentinels: list[SentinelProcess] = field(default_factory=list)

    def start(self) -> SentinelCluster:
        primary = EmbeddedRedis(self.data_dir / "node-0", appendonly=False).start()
        self.nodes.append(primary)
        for index in range(1, self.replicas + 1):
            self.nodes.append(Replica(self.data_dir / f"node-{index}", primary.port).start())
        for index in range(3):
            sentinel = SentinelProcess(
                self.data_dir / f"sentinel-{index}", primary.port, self.down_after_ms, self.failover_timeout_ms
            )
            self.sentinels.append(sentinel.start())
        self.wait_ready(primary.port)
        return self

    @property
    def sentinel_spec(self) -> str:
        """`REDIS_SENTINELS` for this cluster."""
        return ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)

    def env(self, **extra: str) -> dict[str, str]:
        """Settings that make a process find the primary through these Sentinels."""
        return {"REDIS_SENTINELS": self.sentinel_spec, "REDIS_SENTINEL_MASTER": MASTER, **extra}

    def primary_port(self) -> int | None:
        """The primary's port as the first Sentinel that answers names it."""
        for sentinel in self.sentinels:
            if not sentinel.is_running():
                continue
            try:
                with sentinel.client() as client:
                    address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
            except redis.RedisError:
                continue
            if address:
                return int(address[1])
        return None

    @property
    def primary(self) -> EmbeddedRedis:
        port = self.primary_port()
        return next(node for node in self.nodes if node.port == port)

    def node_client(self, node: EmbeddedRedis) -> redis.Redis:
        return redis.Redis(host=node.host, port=node.port, socket_timeout=5)

    def wait_ready(self, primary_port: int, timeout: float = 30) -> None:
        """Every replica online at `primary_port`, every Sentinel knowing them and the other Sentinels."""
        live_nodes = [node for node in self.nodes if node.is_running() and node.port != primary_port]

        def replication_online() -> bool:
            with redis.Redis(port=primary_port, socket_timeout=1) as client:
                info = client.info("replication")
            online = [key for key, value in info.items() if key.startswith("slave") and value.get("state") == "online"]
            return len(online) >= len(live_nodes)

        def sentinels_agree() -> bool:
            for sentinel in self.sentinels:
                with sentinel.client() as client:
                    address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
                    replicas = client.execute_command("SENTINEL", "REPLICAS", MASTER)
                    peers = client.execute_command("SENTINEL", "SENTINELS", MASTER)
                known = [r for r in replicas if "s_down" not in _fields(r).get("flags", "")]
                if int(address[1]) != primary_port or len(known) < len(live_nodes) or len(peers) < 2:
                    return False
            return True

        wait_for(replication_online, timeout, interval=0.1, what="replicas online")
        wait_for(sentinels_agree, timeout, interval=0.2, what="Sentinels knowing every replica and each other")

    def kill_primary(self) -> EmbeddedRedis:
        """SIGKILL the current primary (a lost machine); returns it."""
        node = self.primary
        node.kill()
        return node

    def wait_failover(self, old_port: int, timeout: float = 20) -> EmbeddedRedis:
        """The replica every Sentinel names once they replaced the primary on `old_port`."""

        def promoted() -> bool:
            ports = set()
            for sentinel in self.sentinels:
                with sentinel.client() as client:
                    ports.add(int(client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)[1]))
            return len(ports) == 1 and old_port not in ports

        wait_for(promoted, timeout, interval=0.1, what="a replica promoted by the Sentinels")
        return self.primary

    def pause(self, node: EmbeddedRedis) -> None:
        """SIGSTOP a node (it stops acknowledging); `resume` undoes it."""
        assert node.process is not None
        node.process.send_signal(signal.SIGSTOP)

    def resume(self, node: EmbeddedRedis) -> None:
        assert node.process is not None
        node.process.send_signal(signal.SIGCONT)

    def logs(self) -> str:
        parts = []
        for process in [*self.nodes, *self.sentinels]:
            text = process.log_path.read_text(errors="replace") if process.log_path.exists() else ""
            parts.append(f"--- {process.data_dir.name} (port {process.port})\n{text[-4000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        for process in [*self.sentinels, *self.nodes]:
            try:
                process.kill()
            except (ProcessLookupError, subprocess.SubprocessError):
                pass


def _fields(reply: object) -> dict[str, str]:
    """A Sentinel's flat [name, value, ...] reply (or redis-py's parsed dict) as a dict of text."""
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    assert isinstance(reply, list)
    items = [item.decode() if isinstance(item, bytes) else str(item) for item in reply]
    return dict(zip(items[::2], items[1::2], strict=True))


__all__ = ["MASTER", "SentinelCluster", "free_port"]
