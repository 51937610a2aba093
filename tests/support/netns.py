"""A private LAN of "hosts" made of Linux network namespaces, for tests that need several machines.

Each host is a namespace with one veth pair into a bridge that lives in a namespace of its
own (the switch), and one address on 10.77.0.0/24. No namespace has a route anywhere else and
the root namespace gets no interface or address, so traffic stays between the hosts made here.
A process runs on a host through `ip netns exec`; the test itself talks from a host through a
thread that joined that host's namespace (`Host.call`).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

SUBNET = "10.77.0"
_CLONE_NEWNET = 0x40000000


class NamespacesUnavailableError(RuntimeError):
    """Network namespaces cannot be made here (no iproute2, not root, or the kernel refuses)."""


def _ip(ip: str, *args: str) -> None:
    done = subprocess.run([ip, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise NamespacesUnavailableError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")


def _join_namespace(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({path}): {os.strerror(errno)}")
    finally:
        os.close(fd)


@dataclass
class Host:
    name: str
    namespace: str
    address: str
    _thread: ThreadPoolExecutor | None = field(default=None, repr=False)

    def command(self, argv: list[str], ip: str = "ip") -> list[str]:
        """`argv` run on this host (the process's PID stays that of `argv`: ip execs it)."""
        return [ip, "netns", "exec", self.namespace, *argv]

    def call(self, func: Callable[..., T], *args: object) -> T:
        """Run `func(*args)` in a thread whose sockets live in this host's namespace."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=self.name, initializer=_join_namespace,
                initargs=(f"/run/netns/{self.namespace}",),
            )  # fmt: skip
        return self._thread.submit(func, *args).result()

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None


class Lan:
    def __init__(self, ip: str) -> None:
        self.ip = ip
        self.tag = uuid.uuid4().hex[:6]
        self.switch = f"jobsvc-{self.tag}-sw"
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []
        try:
            self._add_namespace(self.switch)
            _ip(ip, "-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip(ip, "-n", self.switch, "link", "set", "br0", "up")
        except NamespacesUnavailableError:
            self.close()
            raise

    def _add_namespace(self, namespace: str) -> None:
        _ip(self.ip, "netns", "add", namespace)
        self._namespaces.append(namespace)
        _ip(self.ip, "-n", namespace, "link", "set", "lo", "up")

    def add_host(self, name: str) -> Host:
        index = len(self.hosts) + 2
        namespace = f"jobsvc-{self.tag}-{name}"
        self._add_namespace(namespace)
        port, nic = f"p{index}", "eth0"
        # Both ends are made inside the namespaces: the root namespace never sees them.
        _ip(self.ip, "-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", nic, "netns", namespace)
        _ip(self.ip, "-n", self.switch, "link", "set", port, "master", "br0")
        _ip(self.ip, "-n", self.switch, "link", "set", port, "up")
        address = f"{SUBNET}.{index}"
        _ip(self.ip, "-n", namespace, "addr", "add", f"{address}/24", "dev", nic)
        _ip(self.ip, "-n", namespace, "link", "set", nic, "up")
        host = Host(name, namespace, address)
        self.hosts[name] = host
        return host

    def close(self) -> None:
        """Delete every namespace made here (their veth pairs and the bridge go with them)."""
        for host in self.hosts.values():
            host.close()
        for namespace in reversed(self._namespaces):
            subprocess.run([self.ip, "netns", "delete", namespace], capture_output=True)
        self._namespaces.clear()
